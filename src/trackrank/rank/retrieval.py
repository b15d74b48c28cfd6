"""Rankings from model outputs (paper §4.2), shared by validation during training and the evaluation.

TL systems rank by ascending Euclidean distance between track embeddings; the auto-tagger
ranks by decreasing oracle S of its estimated tags. Ties keep track order (``top_ranked``).
"""

from __future__ import annotations

import numpy as np

from trackrank.rank.oracle import top_ranked
from trackrank.rank.similarity import Oracle


def rank_by_distance(embeddings: np.ndarray, k: int = 20) -> np.ndarray:
    """(n, k) indices of each track's nearest other tracks, nearest first (ties: track order)."""
    squared = (embeddings**2).sum(axis=1)
    distances = squared[:, None] + squared[None, :] - 2.0 * embeddings @ embeddings.T
    return np.stack([top_ranked(-distances[q], q, k) for q in range(len(embeddings))])


def rank_by_oracle(tags: np.ndarray, oracle_template: Oracle, *, k: int = 20) -> np.ndarray:
    """(n, k) indices ranked by decreasing S of estimated tags (the auto-tagger's retrieval)."""
    oracle = oracle_template.with_tags(tags)
    return np.stack([top_ranked(oracle.scores(q), q, k) for q in range(len(tags))])
