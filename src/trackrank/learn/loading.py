"""Reading what a training run trains and validates on from the workflow's files: the common inputs, then
those of the system's kind (:meth:`~trackrank.learn.kinds.SystemKind.read`)."""

from __future__ import annotations

import logging

import pandas as pd

from trackrank.data.catalog import CatalogFiles
from trackrank.data.feature_cache import Cache, PatchCache
from trackrank.learn.kinds import kind_of
from trackrank.learn.settings import TrainSettings
from trackrank.learn.training_data import TrainingData, input_digest, unseen_by_test
from trackrank.rank.metrics import relevant_from_rankings
from trackrank.rank.mining import whole_count
from trackrank.rank.parts import TableParts, as_paths, read_parts
from trackrank.rank.similarity import split_oracle

log = logging.getLogger(__name__)


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

    ``settings``: the run's; its system's kind decides which of ``triplets`` (the mined triplet table,
    offline TL) and ``train_rankings`` (the train split's oracle rankings: online TL, and offline negatives
    from the whole batch) it reads, each a file or its parts (:mod:`trackrank.rank.parts`). ``cache``: the
    patch cache's parts. ``catalog``: the validated catalog's tracks, tags and taxonomy. ``val_rankings``:
    the val split's oracle rankings; a val track's first ``settings.n_relevant`` are relevant.
    ``similarity``: the configured S (``name``, ``function``, ``category_weights``): the auto-tagger's
    validation ranks by S of its estimated tags, so it must be the S of the relevant tracks and of the
    test evaluation, not the built-in default.
    """
    cache, kind = PatchCache(cache), kind_of(settings)
    tracks = pd.read_parquet(catalog.tracks)
    tags = pd.read_parquet(catalog.tags).set_index("track_id")
    train_ids = [t for t in tracks.loc[tracks.split == "train", "track_id"] if t in cache.position]
    audio_ids = [t for t in unseen_by_test(tracks).track_id if t in cache.position]
    val_ids, val_relevant, val_oracle = val_split(cache, catalog, val_rankings, settings.n_relevant, similarity)
    # the systems that mine in the batch read Np; the others hold it at the value their runs had (READ_BY)
    n_positives = whole_count(settings.n_positives, key="mining.n_positives") if settings.reads("n_positives") else 0
    own = kind.read(
        settings,
        cache,
        train_ids=train_ids,
        tags=tags,
        n_positives=n_positives,
        triplets=triplets,
        train_rankings=train_rankings,
        catalog=catalog,
        similarity=similarity,
    )
    read = [catalog.tracks, catalog.tags, catalog.taxonomy, *(part.index for part in cache.files)]
    read += as_paths(val_rankings)
    read += [path for parts in kind.inputs(triplets, train_rankings) for path in as_paths(parts)]
    return TrainingData(
        cache=cache,
        train_tracks=cache.indices(train_ids),
        audio_tracks=cache.indices(audio_ids),
        train_targets=own.get("train_targets"),
        triplets=own.get("triplets"),
        ranks=own.get("ranks"),
        n_positives=n_positives,
        similarity=own.get("similarity"),
        val_ids=val_ids,
        val_tracks=cache.indices(val_ids),
        val_relevant=val_relevant,
        val_oracle=val_oracle,
        tag_names=list(tags.columns),
        digest=input_digest(read, [part.data for part in cache.files], similarity),  # a resume needs the same
    )


def val_split(cache: PatchCache, catalog: CatalogFiles, val_rankings: TableParts, n_relevant: int, similarity):
    """The val tracks that have features, their relevant tracks (positions among them, -1 where a ranking
    runs short) and the oracle over their true tags."""
    val_ids, val_oracle = split_oracle(catalog, "val", **(similarity or {}))
    kept = [i for i, t in enumerate(val_ids) if t in cache.position]
    if len(kept) < len(val_ids):
        log.warning("%d val tracks have no features and are left out of validation", len(val_ids) - len(kept))
    val_ids = [val_ids[i] for i in kept]
    relevant = relevant_from_rankings(read_parts(val_rankings).to_pandas(), val_ids, n_relevant=n_relevant)
    return val_ids, relevant, val_oracle
