# Paths and input functions shared by the rules.

import functools
import os
from pathlib import Path

import pandas as pd

from trackrank.data.catalog_tables import UNTAGGED_TABLE
from trackrank.data.features import shard_tracks
from trackrank.learn.settings import MALLOC_SETTINGS, TRUNK_SYSTEM, system_spec
from trackrank.rank.mining import STRATEGIES as MINING_STRATEGIES
from trackrank.rank.parts import n_parts

# Jobs import the trackrank package of this checkout, in a venv, a conda env or on a
# cluster node alike (the node re-reads this file, so it gets the same path). The workflow sets
# PYTHONPATH rather than needing it from the user, so there is nothing for `envvars:` to assert.
os.environ.update(PYTHONPATH=os.pathsep.join(p for p in (f"{workflow.basedir}/src", os.getenv("PYTHONPATH")) if p))
# Keep freed memory in job processes: halves a CPU training step (trackrank.learn.settings).
for name, value in MALLOC_SETTINGS.items():
    os.environ.setdefault(name, value)

DEMO_DIR = "results/demo"
SCORES_DIR = "results/scores"
BUILT_IN_CATALOGS = {"demo": DEMO_DIR, "scores": SCORES_DIR}  # made by the workflow; anything else is a folder
CATALOG_DIR = BUILT_IN_CATALOGS.get(config["catalog"], config["catalog"])
N_SHARDS = lookup(dpath="features/n_shards", within=config)
SHARDS = [f"{i:03d}" for i in range(N_SHARDS)]
ANCHORS_PER_JOB = lookup(dpath="ranking/anchors_per_job", within=config)
# The tables mining writes: the configured strategies and those a trained offline TL system needs.
STRATEGIES = [
    strategy
    for strategy in MINING_STRATEGIES
    if strategy in lookup(dpath="mining/strategies", within=config)
    or any(system_spec(system)[1] == strategy for system in lookup(dpath="train/systems", within=config))
]


wildcard_constraints:
    shard=r"\d{3}",
    part=r"\d\d\d\d+",


def catalog_tags_file(wildcards):
    """The catalog's tags table: tags.csv, or tags.parquet where only that exists."""
    folder = Path(CATALOG_DIR)
    if (
        config["catalog"] not in BUILT_IN_CATALOGS
        and not (folder / "tags.csv").exists()
        and (folder / "tags.parquet").exists()
    ):
        return str(folder / "tags.parquet")
    return str(folder / "tags.csv")


def catalog_untagged_file(wildcards):
    """The catalog's untagged.csv (audio without tags): a built-in catalog's (its rule writes one, empty
    unless its untagged_share says otherwise), or a user catalog's where it has one."""
    path = Path(CATALOG_DIR) / UNTAGGED_TABLE
    return str(path) if config["catalog"] in BUILT_IN_CATALOGS or path.exists() else []


@functools.cache
def read_validated_tracks(path, mtime):
    """The validated tracks (``track_id``, ``path``, ``split``) and the tracks per split, read once per
    version (``mtime``), not once per shard, part and directive: a checkpoint rerun in the same Snakemake
    process writes a new version, which is read anew."""
    tracks = pd.read_parquet(path, columns=["track_id", "path", "split"])
    return tracks, tracks["split"].value_counts().to_dict()


def validated_tracks():
    """:func:`read_validated_tracks` of the catalog checkpoint's table, once the catalog is validated."""
    path = checkpoints.ingest_catalog.get().output.tracks
    return read_validated_tracks(path, os.path.getmtime(path))


def shard_rows(wildcards):
    """(track_id, path) of the shard's tracks."""
    rows = shard_tracks(validated_tracks()[0], int(wildcards.shard), n_shards=N_SHARDS)
    return list(zip(rows["track_id"], rows["path"]))


def anchor_parts(split):
    """The parts ("0000", ...) of a split's rankings or triplets: one job per ``ranking.anchors_per_job``
    anchors (trackrank.rank.parts), known once the catalog is validated."""
    n_anchors = validated_tracks()[1].get(split, 0)
    return [f"{part:04d}" for part in range(n_parts(n_anchors, ANCHORS_PER_JOB))]


def ranking_parts(split, key="rankings"):
    """Input function: every part of a split's rankings (``key="curve"``: their similarity-vs-rank sums)."""
    return lambda wildcards: expand(getattr(rules.rank_split.output, key), split=split, part=anchor_parts(split))


def triplet_parts(strategy):
    """Input function: every part of a mining strategy's triplet table (the train split's anchors)."""
    return lambda wildcards: expand(getattr(rules.mine_triplets.output, strategy), part=anchor_parts("train"))


def shard_audio(wildcards):
    """The audio files of one shard: replacing one reruns its shard only."""
    return [path for _, path in shard_rows(wildcards)]


def catalog_rows(wildcards):
    """(track_id, path) of every validated track."""
    tracks = validated_tracks()[0]
    return list(zip(tracks["track_id"], tracks["path"]))


def catalog_audio(wildcards):
    """Every validated track's audio file: replacing one reruns the MFCC statistics."""
    return [path for _, path in catalog_rows(wildcards)]


def trained(system, key="model"):
    """An output (model, history) of train_<system>, the training rule of ``system`` (training.smk)."""
    return getattr(rules, f"train_{system}").output[key]


def rendered(key):
    """An output (tags, arrangements) of every render_scores_NNN job (scores.smk), one per SCORE_SHARDS."""
    return [getattr(rules, f"render_scores_{shard:03d}").output[key] for shard in SCORE_SHARDS]


def trained_model(wildcards):
    """The model.pt of the system of the job's wildcards."""
    return trained(wildcards.system)


def tagger_model(wildcards):
    """The trained auto-tagger's model.pt (its trunk: the at_trunk reference row)."""
    return trained("at_baseline")


def index_model(wildcards):
    """The model.pt an indexed system embeds with: the auto-tagger's for at_trunk (its trunk), else its own."""
    return tagger_model(wildcards) if wildcards.system == TRUNK_SYSTEM else trained_model(wildcards)


def system_embeddings(wildcards):
    """A system's test embeddings, from their producer (embed or a reference's own); random needs none."""
    if wildcards.system == "random":
        return []
    producer = {
        "mfcc_stats": rules.embed_mfcc_stats,
        "at_trunk": rules.embed_at_trunk,
        "untrained": rules.embed_untrained,
    }.get(wildcards.system, rules.embed)
    return [producer.output.embeddings.format(system=wildcards.system)]
