"""The cold-start stage's names and config mapping, free of torch and FAISS: the workflow reads them
when it builds its DAG, and the CLI parser offers the same index kinds."""

from __future__ import annotations

from trackrank.learn.settings import TRUNK_SYSTEM, system_spec

#: The longest query accepted by default, in seconds: past any track of a normal album (a whole CD
#: holds at most 80 minutes); the CPU time and memory one request can cost follow from it.
MAX_DURATION_S = 1800.0
#: The largest upload ``trackrank serve`` accepts by default, in MiB (30 minutes of 16-bit stereo WAV
#: at 44.1 kHz is 303 MiB; compressed formats are a tenth of that).
MAX_UPLOAD_MB = 100.0

#: FAISS index kinds: exact inner product, or approximate (graph, inverted lists) for large catalogs.
INDEX_KINDS = ("exact", "hnsw", "ivf")


def indexable(system: str) -> bool:
    """A system that embeds tracks, so an index can hold it: a TL system, or ``at_trunk`` (the auto-tagger's
    trunk); the auto-tagger itself outputs tags."""
    return system == TRUNK_SYSTEM or system_spec(system)[0] != "fcn5_tagger"


def index_part_settings(config: dict) -> dict:
    """``trackrank.coldstart.index.embed_catalog_part``'s settings from a validated workflow config
    (``index.n_patches``, ``train.device``)."""
    return {"n_patches": config["index"]["n_patches"], "device": config["train"]["device"]}


def index_settings(config: dict) -> dict:
    """``trackrank.coldstart.index.build_index``'s settings from a validated workflow config, when it merges the
    parts (``index``, ``train.tag_threshold``): ``n_patches`` is the parts' (:func:`index_part_settings`)."""
    index, train = config["index"], config["train"]
    return {"n_patches": index["n_patches"], "kind": index["kind"], "tag_threshold": train["tag_threshold"]}


def default_index_settings(config: dict) -> dict:
    """``trackrank.coldstart.index.write_default``'s settings: ``index.system`` and the val metric ``best``
    chooses by, nDCG at the evaluation's ``evaluate.k``."""
    return {"system": config["index"]["system"], "metric": f"ndcg@{config['evaluate']['k']}"}
