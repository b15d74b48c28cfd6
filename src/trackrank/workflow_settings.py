"""The one boundary between the workflow's config and the stages: each stage's keyword arguments, read from a
validated config (``config.yaml`` laid over the schema's defaults, ``workflow/schemas/config.schema.yaml``).

Why one module: the stages take typed keyword arguments and know nothing of the config's shape, so a key
renamed or moved changes this file alone (the rules, the bench scripts and the tests read their settings
here). A training system's settings are :func:`trackrank.learn.settings.train_settings`': they follow the
system grammar, which lives with ``TrainSettings``.
"""

from __future__ import annotations

from trackrank.data.split import SPLITS


def ingest_settings(config: dict) -> dict:
    """:func:`trackrank.data.catalog.ingest`'s keyword arguments from a validated workflow config (``seed``, ``split``,
    ``features.short_tracks``)."""
    split = config["split"]
    return {
        "seed": config["seed"],
        "fractions": tuple(split[s] for s in SPLITS),
        "untagged_train_share": split["untagged_train_share"],
        "short_tracks": config["features"]["short_tracks"],
    }


def shard_settings(config: dict) -> dict:
    """:func:`trackrank.data.features.extract_shard`'s settings (its ``workers`` are the job's threads)."""
    return {"short_tracks": config["features"]["short_tracks"]}


def similarity_settings(config: dict) -> dict:
    """The configured S as :func:`trackrank.rank.similarity.split_oracle`'s keyword arguments (``name``,
    ``function``, ``category_weights``): every rule that scores tags passes these."""
    return {key: config["similarity"][key] for key in ("name", "function", "category_weights")}


def ranking_settings(config: dict) -> dict:
    """:func:`trackrank.rank.oracle.write_rankings`' keyword arguments from a validated workflow config."""
    return {"top_k": config["ranking"]["top_k"]}


def mining_settings(config: dict) -> dict:
    """:func:`trackrank.rank.mining.write_triplets`' keyword arguments (``mining``, ``seed``); online mining
    takes its Np from ``mining.n_positives`` too (:func:`trackrank.learn.settings.train_settings`)."""
    mining = config["mining"]
    return {"n_positives": mining["n_positives"], "n_negatives": mining["n_negatives"], "seed": config["seed"]}


def embedding_settings(config: dict) -> dict:
    """The keyword arguments of the test embeddings (``trackrank.learn.embedding.write_embeddings``,
    ``trackrank.evaluate.references.at_trunk.write_trunk_embeddings``) from a validated workflow config."""
    return {"n_patches": config["evaluate"]["n_patches"], "seed": config["seed"], "device": config["train"]["device"]}


def untrained_settings(config: dict) -> dict:
    """``write_untrained_embeddings``'s settings (trackrank.evaluate.references.untrained): the test
    embeddings' and the TL network's shape (``train.width``, ``train.dim``), so that it is the network
    training starts from."""
    return {**embedding_settings(config), "width": config["train"]["width"], "dim": config["train"]["dim"]}


def evaluation_settings(config: dict) -> dict:
    """:func:`trackrank.evaluate.evaluation.evaluate`'s keyword arguments (``evaluate``, ``seed``)."""
    evaluate = config["evaluate"]
    return {"k": evaluate["k"], "n_relevant": evaluate["n_relevant"], "seed": config["seed"]}


def listen_settings(config: dict) -> dict:
    """:func:`trackrank.evaluate.listen.write_listening_page`'s keyword arguments: its relevant tracks are the
    metrics' (``evaluate.n_relevant``)."""
    return {
        "n_queries": config["report"]["listen_queries"],
        "n_relevant": evaluation_settings(config)["n_relevant"],
        "seed": config["seed"],
    }


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
    """``trackrank.coldstart.served.write_default``'s settings: ``index.system`` and the val metric ``best``
    chooses by, nDCG at the evaluation's ``evaluate.k``."""
    return {"system": config["index"]["system"], "metric": f"ndcg@{config['evaluate']['k']}"}
