"""What a training run reads: the patch cache, its train examples and the validation split, and
the digest of those files that a resume must match."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from trackrank.data.catalog import UNTAGGED, CatalogFiles
from trackrank.data.feature_cache import Cache, PatchCache
from trackrank.digests import file_sha256
from trackrank.learn.batches import TripletTable
from trackrank.learn.kinds import kind_of
from trackrank.learn.online_mining import RankLookup
from trackrank.learn.settings import TrainSettings
from trackrank.rank.metrics import relevant_from_rankings
from trackrank.rank.mining import split_count
from trackrank.rank.parts import TableParts, as_paths, read_parts
from trackrank.rank.similarity import split_oracle

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
    n_positives: int  # Np resolved against the train split (online mining)
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


def load_training_data(
    settings: TrainSettings,
    cache: Cache,
    *,
    catalog: CatalogFiles,
    val_rankings: TableParts,
    triplets: TableParts | None = None,
    train_rankings: TableParts | None = None,
    similarity: dict | None = None,
) -> TrainingData:
    """What one system trains on.

    Parameters
    ----------
    settings : the run's settings; its system decides which of ``triplets`` and ``train_rankings`` it reads.
    cache : the patch cache: its parts (``cache/shard-NNN.index.parquet`` with ``cache/shard-NNN.f16.npy``).
    catalog : the validated catalog's tracks, tags and taxonomy.
    val_rankings : the val split's oracle rankings (a file or its parts, :mod:`trackrank.rank.parts`); a val
        track's first ``settings.n_relevant`` are relevant.
    triplets : the mined triplet table, a file or its parts (offline TL systems only).
    train_rankings : the train split's oracle rankings, a file or its parts (online TL systems, and offline
        ones whose negatives come from the whole batch, ``train.offline_negatives: batch``).
    similarity : the configured S (``name``, ``function``, ``category_weights``): the auto-tagger's
        validation ranks by S of its estimated tags, so it must be the S of the relevant tracks and of
        the test evaluation, not the built-in default.
    """
    cache = PatchCache(cache)
    kind = kind_of(settings)
    tracks = pd.read_parquet(catalog.tracks)
    tags = pd.read_parquet(catalog.tags).set_index("track_id")
    train_ids = [t for t in tracks.loc[tracks.split == "train", "track_id"] if t in cache.position]
    audio_ids = [t for t in unseen_by_test(tracks).track_id if t in cache.position]
    val_ids, val_oracle = split_oracle(catalog, "val", **(similarity or {}))
    kept = [i for i, t in enumerate(val_ids) if t in cache.position]
    if len(kept) < len(val_ids):
        log.warning("%d val tracks have no features and are left out of validation", len(val_ids) - len(kept))
    val_ids = [val_ids[i] for i in kept]
    relevant = relevant_from_rankings(read_parts(val_rankings).to_pandas(), val_ids, n_relevant=settings.n_relevant)
    n_positives = split_count(settings.n_positives, len(train_ids), key="mining.n_positives")
    own = kind.read(
        settings,
        cache,
        train_ids=train_ids,
        tags=tags,
        n_positives=n_positives,
        triplets=triplets,
        train_rankings=train_rankings,
    )
    read = [
        catalog.tracks,
        catalog.tags,
        catalog.taxonomy,
        *(part.index for part in cache.files),
        *as_paths(val_rankings),
    ]
    read += [path for parts in kind.inputs(triplets, train_rankings) for path in as_paths(parts)]
    return TrainingData(
        cache=cache,
        train_tracks=cache.indices(train_ids),
        audio_tracks=cache.indices(audio_ids),
        train_targets=own.get("train_targets"),
        triplets=own.get("triplets"),
        ranks=own.get("ranks"),
        n_positives=n_positives,
        val_ids=val_ids,
        val_tracks=cache.indices(val_ids),
        val_relevant=relevant,
        val_oracle=val_oracle,
        tag_names=list(tags.columns),
        digest=input_digest(
            read, [part.data for part in cache.files], similarity
        ),  # the files just read: a resume needs the same
    )
