"""Retrieval metrics of paper §4.2, per query, at k.

The relevant tracks of a query are the first ``n_relevant`` of its oracle ranking,
with graded relevance n_relevant, ..., 1 (5, 4, 3, 2, 1 for r1..r5):

* AP@k = (1/n_relevant) sum_{i<=k} P@i [rel_i > 0]
* Recall@k = |relevant in the top k| / n_relevant
* RR@k = 1 / rank of the first relevant track, 0 if none is in the top k
* nDCG@k = DCG / IDCG, DCG = sum_{i<=k} g_i / log2(i + 1)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import stdtrit  # Student-t quantiles; scipy.stats costs each job ~1 s to import

METRICS = ("map", "recall", "rr", "ndcg")


def per_query_metrics(predicted: np.ndarray, relevant: np.ndarray, *, k: int = 20) -> pd.DataFrame:
    """Metrics of each query.

    Parameters
    ----------
    predicted : np.ndarray, shape (n_queries, >= k): each query's ranked track indices.
    relevant : np.ndarray, shape (n_queries, n_relevant): the oracle's first tracks, best first.

    Returns
    -------
    pd.DataFrame with columns ``map``, ``recall``, ``rr``, ``ndcg`` (fractions in [0, 1]).
    """
    predicted = np.asarray(predicted)[:, :k]
    relevant = np.asarray(relevant)
    n_relevant = relevant.shape[1]
    # gain[q, i]: graded relevance of the i-th prediction (0 when not relevant)
    matches = predicted[:, :, None] == relevant[:, None, :]  # (q, k, n_relevant)
    gains = (matches * np.arange(n_relevant, 0, -1)).sum(axis=2).astype(float)
    hits = gains > 0
    ranks = np.arange(1, predicted.shape[1] + 1)
    precision_at = np.cumsum(hits, axis=1) / ranks
    average_precision = (precision_at * hits).sum(axis=1) / n_relevant
    recall = hits.sum(axis=1) / n_relevant
    first = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, np.inf)
    reciprocal_rank = 1.0 / first
    discounts = 1.0 / np.log2(ranks + 1)
    n_ideal = min(n_relevant, len(discounts))  # IDCG: the relevant tracks, best first, within k
    ideal = (np.arange(n_relevant, 0, -1)[:n_ideal] * discounts[:n_ideal]).sum()
    ndcg = (gains * discounts).sum(axis=1) / ideal
    return pd.DataFrame({"map": average_precision, "recall": recall, "rr": reciprocal_rank, "ndcg": ndcg})


def mean_and_ci(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of its Student-t confidence interval."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float(values.mean()) if len(values) else float("nan"), float("nan")
    half = stdtrit(len(values) - 1, 0.5 + confidence / 2) * values.std(ddof=1) / np.sqrt(len(values))
    return float(values.mean()), float(half)


def paired_difference(a: np.ndarray, b: np.ndarray, *, confidence: float = 0.95) -> tuple[float, float]:
    """Mean of ``a - b`` over the same queries and the half-width of its paired Student-t interval.

    Why paired: two systems evaluated on the same queries share each query's difficulty, so
    their per-query values are correlated. Comparing their two separate intervals ignores that
    and calls real, consistent differences "overlapping"; the interval of the per-query
    differences removes the shared part and is the honest test of "a beats b".

    Parameters
    ----------
    a, b : np.ndarray, shape (n_queries,)
        One metric per query for two systems, in the same query order.

    Returns
    -------
    (mean, half_width) : mean difference a - b and the half-width of its ``confidence``
        interval (NaN with fewer than two queries).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values need the same queries: got shapes {a.shape} and {b.shape}")
    return mean_and_ci(a - b, confidence)


def seed_and_query_interval(
    a: np.ndarray, b: np.ndarray, *, confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of ``a - b`` and its percentile bootstrap interval over training seeds **and** queries.

    Why: :func:`paired_difference` of seed-averaged queries leaves out what reseeding a system moves, so
    two systems can differ there by more than their training seeds do. Here each resample draws seeds with
    replacement and, independently, queries with replacement, and takes the mean difference over the drawn
    (seed, query) cells: the interval widens with the seed-to-seed spread as well as with the queries'.
    With one seed it is the query bootstrap alone.

    Parameters
    ----------
    a, b : np.ndarray, shape (n_seeds, n_queries)
        One metric per training seed (rows, the same seeds in both) and query (columns, the same order).
    confidence : the interval's coverage.
    n_resamples : bootstrap draws.
    seed : the draws' random stream (the same inputs give the same interval).

    Returns
    -------
    (mean, low, high) : the mean difference and the interval's bounds.
    """
    a, b = np.atleast_2d(np.asarray(a, dtype=float)), np.atleast_2d(np.asarray(b, dtype=float))
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same seeds and queries: got shapes {a.shape} and {b.shape}")
    differences = a - b
    n_seeds, n_queries = differences.shape
    rng = np.random.default_rng([seed, 23])
    seeds = rng.integers(0, n_seeds, (n_resamples, n_seeds))  # every draw at once: one call, not one per draw
    queries = rng.integers(0, n_queries, (n_resamples, n_queries))
    # the mean over each drawn (seed, query) grid: how often each query was drawn, times each seed's row
    offsets = (np.arange(n_resamples) * n_queries)[:, None]
    counts = np.bincount((queries + offsets).ravel(), minlength=n_resamples * n_queries)
    per_seed = counts.reshape(n_resamples, n_queries) @ differences.T  # (draw, seed): the drawn queries' sums
    means = np.take_along_axis(per_seed, seeds, axis=1).sum(axis=1) / (n_seeds * n_queries)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(differences.mean()), float(low), float(high)


def verdict(mean: float, half_width: float) -> str:
    """The reading of a paired difference: ``better`` or ``worse`` where its interval excludes 0.

    Otherwise ``no difference`` (also with an undefined interval): the data do not tell the
    two systems apart, whatever the sign of the mean.
    """
    return interval_verdict(mean - half_width, mean + half_width)


def interval_verdict(low: float, high: float) -> str:
    """:func:`verdict` of an interval given by its bounds (e.g. :func:`seed_and_query_interval`'s)."""
    if np.isfinite(low) and low > 0:
        return "better"
    if np.isfinite(high) and high < 0:
        return "worse"
    return "no difference"


def relevant_from_rankings(rankings: pd.DataFrame, track_ids: list[str], *, n_relevant: int = 5) -> np.ndarray:
    """(n_tracks, n_relevant) indices into ``track_ids`` of each track's first oracle-ranked tracks.

    Ranked tracks that are not in ``track_ids`` (e.g. skipped for lack of features) are
    passed over, so the next ones count. A set of n tracks offers n - 1 others:
    ``n_relevant`` is cut to that. Missing entries are -1.
    """
    n_relevant = min(n_relevant, len(track_ids) - 1)
    position = {t: i for i, t in enumerate(track_ids)}
    anchors = rankings["anchor"].astype(str).map(position)
    others = rankings["other"].astype(str).map(position)
    kept = pd.DataFrame({"anchor": anchors, "other": others, "rank": rankings["rank"]}).dropna()
    kept = kept.sort_values(["anchor", "rank"], kind="stable")
    kept["place"] = kept.groupby("anchor").cumcount()
    kept = kept[kept["place"] < n_relevant]
    relevant = np.full((len(track_ids), n_relevant), -1, dtype=np.int64)
    relevant[kept["anchor"].astype(int), kept["place"]] = kept["other"].astype(int)
    return relevant
