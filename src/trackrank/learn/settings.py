"""The systems of Table 2 by name, the process environment their jobs run in, and the config
mapping of the stages that run a system's network (training, embedding, index).

Kept free of torch so that the workflow can read it when it builds its DAG: the modules of those
stages import torch, so their ``*_settings(config)`` live here rather than beside their code.
"""

from __future__ import annotations

import re

from trackrank.errors import ConfigError
from trackrank.rank.mining import mining_settings

#: Environment for job processes (set before they start; see workflow/rules/common.smk).
#: glibc hands large freed blocks back to the OS at once, so every CPU training step
#: page-faults its activations in again: about half a step's time at the demo's width,
#: measured. These keep freed memory in the process.
MALLOC_SETTINGS = {
    "MALLOC_TRIM_THRESHOLD_": str(16 << 30),
    "MALLOC_TOP_PAD_": str(1 << 30),
    "MALLOC_MMAP_THRESHOLD_": str(32 << 20),
}

#: Reference rows of the results tables, beside ``random``: rankings that need no ranking
#: training (``evaluate.references`` in the config chooses which are made).
#: ``mfcc_stats``: MFCC mean/std per track (trackrank.evaluate.references.mfcc_stats); ``at_trunk``: the trained
#: auto-tagger's penultimate layer (trackrank.evaluate.references.at_trunk); ``untrained``: the TL network at its
#: initialisation (trackrank.evaluate.references.untrained). All rank by Euclidean distance.
REFERENCES = ("mfcc_stats", "at_trunk", "untrained")


#: Every system: Table 2 of the paper, then online mining (beyond the paper). ``train.systems: all``.
ALL_SYSTEMS = (
    "at_baseline",
    "tl_neighbors",
    "tl_uniform",
    "tl_distance",
    "tl_autopool_distance",
    "tl_online",
    "tl_autopool_online",
    "tl_online_from_at",
)
#: Suffix of a TL system whose trunk starts from the trained auto-tagger's (same FCN-5 trunk).
FROM_TAGGER = "_from_at"


def expand_systems(systems) -> list[str]:
    """``train.systems`` as a list: ``all`` means :data:`ALL_SYSTEMS`."""
    return list(ALL_SYSTEMS) if systems == "all" else list(systems)


def starts_from_tagger(system: str) -> bool:
    """``tl_<strategy>_from_at``: its FCN-5 trunk starts from the trained ``at_baseline``'s, not at random."""
    return system.startswith("tl_") and not system.startswith("tl_autopool_") and system.endswith(FROM_TAGGER)


def system_spec(system: str) -> tuple[str, str | None]:
    """(architecture, mining strategy) of a system name: at_baseline, tl_<strategy>, tl_autopool_<strategy>,
    tl_<strategy>_from_at."""
    if starts_from_tagger(system):
        system = system.removesuffix(FROM_TAGGER)
    if system == "at_baseline":
        return "fcn5_tagger", None
    match = re.fullmatch(r"tl_autopool_(\w+)", system)
    if match:
        return "autopool_triplet", match.group(1)
    match = re.fullmatch(r"tl_(\w+)", system)
    if match:
        return "triplet", match.group(1)
    raise ConfigError(f"unknown system '{system}': expected at_baseline, tl_<strategy> or tl_autopool_<strategy>")


#: config ``train`` keys that are TrainSettings fields under the same name.
TRAIN_KEYS = (
    "width",
    "dim",
    "margin",
    "batch_size",
    "offline_pairs",
    "epochs",
    "batches_per_epoch",
    "patience",
    "min_epochs",
    "smoothing",
    "tag_threshold",
    "val_patches",
    "workers",
    "device",
)


def train_settings(system: str, config: dict) -> dict:
    """The TrainSettings fields of one system from a validated workflow config (one mapping for all callers)."""
    train = config["train"]
    settings = {key: train[key] for key in TRAIN_KEYS}
    architecture, strategy = system_spec(system)
    if strategy not in (None, "online") and train["batch_size"] % train["offline_pairs"]:
        raise ConfigError(
            f"train.batch_size ({train['batch_size']}) must be a multiple of train.offline_pairs "
            f"({train['offline_pairs']}): each (anchor, positive) pair gets batch_size / offline_pairs negatives"
        )
    online = dict(train["online"])
    online_lr = online.pop("lr")
    if strategy == "online":
        settings["lr"] = online_lr
    else:
        settings["lr"] = train["lr_tagger"] if architecture == "fcn5_tagger" else train["lr_triplet"]
    settings["k"] = train["val_k"]
    settings["n_relevant"] = train["val_relevant"]
    settings["seed"] = config["seed"]
    settings["n_positives"] = mining_settings(config)["n_positives"]  # online mining's Np is the miner's
    settings.update({f"online_{key}": value for key, value in online.items()})
    settings.update({f"aug_{key}": value for key, value in train["augment"].items()})
    return settings


def embedding_settings(config: dict) -> dict:
    """The keyword arguments of the test embeddings (``trackrank.learn.embedding.write_embeddings``,
    ``trackrank.evaluate.references.at_trunk.write_trunk_embeddings``) from a validated workflow config."""
    return {"n_patches": config["evaluate"]["n_patches"], "seed": config["seed"], "device": config["train"]["device"]}


def untrained_settings(config: dict) -> dict:
    """``write_untrained_embeddings``'s settings (trackrank.evaluate.references.untrained): the test
    embeddings' and the TL network's shape (``train.width``, ``train.dim``), so that it is the network
    training starts from."""
    return {**embedding_settings(config), "width": config["train"]["width"], "dim": config["train"]["dim"]}


def index_settings(config: dict) -> dict:
    """``trackrank.coldstart.index.build_index``'s settings from a validated workflow config (``index``,
    ``train.device``)."""
    index = config["index"]
    return {"n_patches": index["n_patches"], "kind": index["kind"], "device": config["train"]["device"]}
