"""Retrieval on one split and its metrics (paper §4.2): predictions, per-query values, summary.

Every track of the split queries all its other tracks. The test split gives the report's numbers; the val
split gives the numbers choices are made by (the served index, ``bench/learning.py``), so that the test
split's numbers are measured, not selected. TL systems rank by ascending
Euclidean distance between embeddings, the auto-tagger by decreasing oracle S of its
estimated tags, and ``random`` by a seeded random order. The ground truth is each
query's oracle ranking among the other tracks of its split (``rankings/<split>/``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from trackrank.atomic import atomic_output
from trackrank.data.catalog import CatalogFiles
from trackrank.data.feature_cache import cached_track_ids
from trackrank.learn.embedding_table import read_embeddings
from trackrank.rank.metrics import METRICS, mean_and_ci, per_query_metrics, relevant_from_rankings
from trackrank.rank.parts import TableParts, read_parts
from trackrank.rank.retrieval import rank_by_distance, rank_by_oracle
from trackrank.rank.similarity import split_oracle

log = logging.getLogger(__name__)


def random_predictions(n_tracks: int, k: int, *, seed: int = 0) -> np.ndarray:
    """(n, k): each query's others in a seeded random order."""
    rng = np.random.default_rng([seed, 17])
    rows = []
    for query in range(n_tracks):
        others = np.delete(np.arange(n_tracks), query)
        rows.append(rng.permutation(others)[:k])
    return np.stack(rows)


def system_predictions(
    embeddings_path: str | Path | None, track_ids: list[str], *, oracle, k: int, seed: int = 0
) -> np.ndarray:
    """(n_tracks, k) indices into ``track_ids`` (the split's): the system's top k for each query."""
    if embeddings_path is None:
        return random_predictions(len(track_ids), k, seed=seed)
    ids, matrix, column = read_embeddings(embeddings_path)
    if ids != track_ids:
        raise ValueError(
            f"{embeddings_path} holds {len(ids)} tracks, not the split's {len(track_ids)} tracks with features, "
            "in order"
        )
    if column == "tags":
        return rank_by_oracle(matrix.astype(np.float64), oracle, k=k)
    return rank_by_distance(matrix.astype(np.float64), k)


def summarise(per_query: pd.DataFrame, system: str, *, k: int) -> dict:
    """Mean and 95 % CI half-width of each metric, in percent.

    Parameters
    ----------
    per_query : one row per query, each metric in [0, 1].
    system : the row's name in the summary.
    k : the metrics' cut-off, recorded beside them.
    """
    summary = {"system": system, "k": k, "n_queries": len(per_query)}
    for name in METRICS:
        mean, half = mean_and_ci(per_query[name].to_numpy())
        summary[f"{name}@{k}"] = {"mean": 100 * mean, "ci95": 100 * half}
    return summary


def evaluate(
    system: str,
    *,
    track_ids: list[str],
    oracle,
    rankings: TableParts,
    predictions: str | Path,
    summary: str | Path,
    per_query: str | Path,
    embeddings: str | Path | None = None,
    k: int = 20,
    n_relevant: int = 5,
    seed: int = 0,
) -> dict:
    """Write the system's top-k ``predictions`` (Parquet), its ``per_query`` metrics (Parquet) and their
    ``summary`` (JSON).

    Parameters
    ----------
    system : its name in the outputs; ``random`` ranks at random (seeded).
    track_ids, oracle : the split's tracks with features (:func:`evaluated_tracks`) and S over them.
    rankings : the split's oracle rankings, a file or its parts (:mod:`trackrank.rank.parts`); a
        query's first ``n_relevant`` are relevant, graded ``n_relevant``..1.
    predictions, summary, per_query : the output files.
    embeddings : the system's embeddings of the split (``embedding`` ranked by Euclidean distance, ``tags`` by
        S of the estimated tags), aligned with ``track_ids``; None for ``random``.
    k : the cut-off of MAP, recall, RR and nDCG (>= 1; paper: 20); at most the split's other tracks.
    n_relevant : relevant tracks per query (>= 1; paper: 5).
    seed : the ``random`` ranking's stream.
    """
    k_eff = min(k, len(track_ids) - 1)
    predicted = system_predictions(embeddings, track_ids, oracle=oracle, k=k_eff, seed=seed)
    relevant = relevant_from_rankings(read_parts(rankings).to_pandas(), track_ids, n_relevant=n_relevant)
    values = per_query_metrics(predicted, relevant, k=k_eff)
    values.insert(0, "query", track_ids)
    top_k = pd.DataFrame(
        {
            "query": np.repeat(track_ids, k_eff),
            "rank": np.tile(np.arange(1, k_eff + 1), len(track_ids)),
            "track_id": np.asarray(track_ids)[predicted.ravel()],
        }
    )
    means = summarise(values, system, k=k)
    with atomic_output(predictions) as tmp:
        top_k.to_parquet(tmp, index=False)
    with atomic_output(per_query) as tmp:
        values.to_parquet(tmp, index=False)
    with atomic_output(summary) as tmp:
        tmp.write_text(json.dumps(means, indent=2) + "\n")
    log.info("%s: %s", system, ", ".join(f"{m}@{k} {means[f'{m}@{k}']['mean']:.2f}" for m in METRICS))
    return means


def evaluated_tracks(
    catalog: CatalogFiles, cache_index: str | Path | Sequence[str | Path], *, split: str = "test", **similarity
) -> tuple[list[str], object]:
    """The tracks of ``split`` that have features (the cache's index file(s) list them; catalog order) and the
    oracle S (as configured) over the split."""
    ids, oracle = split_oracle(catalog, split, **similarity)
    cached = set(cached_track_ids(cache_index))
    return [t for t in ids if t in cached], oracle


def split_tracks_with_features(
    tracks: str | Path, cache_index: str | Path | Sequence[str | Path], *, split: str
) -> list[str]:
    """The tracks of ``split`` that have CQT features, in catalog order: for ``test``, the ids of
    :func:`evaluated_tracks`, which every system's embeddings must list in this order."""
    tracks = pd.read_parquet(tracks, columns=["track_id", "split"])
    cached = set(cached_track_ids(cache_index))
    return [t for t in tracks.loc[tracks["split"] == split, "track_id"] if t in cached]
