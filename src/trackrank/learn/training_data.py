"""What a training run reads: the patch cache, its train examples and the validation split, and the digest
of those files that a resume must match (read from disk by :mod:`trackrank.learn.loading`)."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from trackrank.data.catalog import UNTAGGED
from trackrank.data.feature_cache import PatchCache
from trackrank.digests import file_sha256
from trackrank.learn.batches import TripletTable
from trackrank.learn.listwise import BatchSimilarity
from trackrank.learn.online_mining import RankLookup

log = logging.getLogger(__name__)


@dataclass
class TrainingData:
    """What a training run reads: the patch cache, its train examples and the validation split."""

    cache: PatchCache
    train_tracks: np.ndarray  # cache positions
    audio_tracks: np.ndarray  # cache positions of the tracks unseen_by_test (self-supervised systems)
    train_targets: np.ndarray | None  # the train tracks' tag targets (auto-tagger; kinds.tagger_targets)
    triplets: TripletTable | None
    ranks: RankLookup | None  # train split oracle ranks (online mining, offline negatives: batch), over train_tracks
    n_positives: int  # Np, the last rank a positive may have (online mining and listwise; 0 for the others)
    similarity: BatchSimilarity | None  # S between train tracks, from their tags (listwise)
    val_ids: list[str]
    val_tracks: np.ndarray
    val_relevant: np.ndarray  # (n_val, n_relevant) positions in val_ids
    val_oracle: object  # Oracle over the val split's true tags
    tag_names: list[str]
    digest: str = ""  # identity of the inputs it was read from (input_digest): a resume needs the same


def unseen_by_test(tracks: pd.DataFrame) -> pd.DataFrame:
    """The tracks whose audio a system may train on without its tags: every track outside the test
    split, untagged ones included, except the untagged tracks of the test split's artists.

    Why: the test split's tracks are the cold-start queries of the evaluation, and its artists are new
    to the system; their other recordings, tagged or not, would let it learn their sound before the
    test (the artist-disjoint split guards the tagged tracks the same way)."""
    test_artists = tracks.loc[tracks.split == "test", "artist"].unique()
    unseen = (tracks.split != "test") & ~tracks.artist.isin(test_artists)
    held_out = int(((tracks.split == UNTAGGED) & ~unseen).sum())
    if held_out:
        log.info("%d untagged track(s) by the test split's artists stay out of training", held_out)
    return tracks[unseen]


def input_digest(files: list[str | Path], large: list[str | Path], similarity: dict | None) -> str:
    """Identity of what a training run reads: the bytes of ``files``, the size and mtime of the ``large``
    ones (the patch cache, too big to hash at the paper's scale and rewritten whenever rebuilt), and S.

    Why: ``last.pt`` may only resume a run on the same data; Snakemake reruns a training job after a
    changed input too, and resuming that from the old run's epochs would keep weights trained and
    selected on the old triplets, rankings or tags.
    """
    digest = hashlib.sha256(json.dumps(similarity or {}, sort_keys=True).encode())
    for path in files:
        digest.update(file_sha256(path).encode())
    for path in large:
        stat = Path(path).stat()
        digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]
