"""Draws of an anchor's negatives among the tracks ranked after each positive (whose S is below the positive's):
uniform, or in proportion to S (:mod:`trackrank.rank.mining`'s ``uniform`` and ``distance`` strategies).

Draws over "the list after the positive" are made by rejection: draw over all the others, redraw those ranked
at or before the positive; where those hold nearly all of the mass, the draws come from the tracks after the
positive directly. Both give exactly the stated distribution, from the anchor's own random stream.
"""

from __future__ import annotations

import numpy as np

#: Below this share of the mass left after the positive, draw from it directly instead of rejecting.
MIN_ACCEPTANCE = 0.2


def _rejection_draws(sample, below: np.ndarray, scores: np.ndarray, size: int) -> np.ndarray:
    """(len(below), size) draws from ``sample``; row i keeps only tracks whose S is below ``below[i]``
    (its positive's S: ranked after it and not tied with it)."""
    limit = below[:, None]
    draws = sample((len(below), size))
    rejected = scores[draws] >= limit
    while rejected.any():
        draws[rejected] = sample(int(rejected.sum()))
        rejected = scores[draws] >= limit
    return draws


def uniform_draws(
    scores: np.ndarray, anchor: int, below: np.ndarray, size: int, rng: np.random.Generator
) -> np.ndarray:
    """Row i: ``size`` tracks uniform over those whose S is below ``below[i]`` (anchor excluded)."""
    n = len(scores)

    def sample(shape):
        drawn = rng.integers(0, n - 1, size=shape)
        return drawn + (drawn >= anchor)  # skip the anchor

    return _rejection_draws(sample, below, scores, size)


def mass_below(weights: np.ndarray, scores: np.ndarray, below: np.ndarray) -> np.ndarray:
    """For each ``b`` of ``below``, the weight of the tracks whose S is below ``b``: one pass over the split
    for all the positives, not one each."""
    ascending = np.sort(below)
    bucket = np.searchsorted(ascending, scores, side="right")  # how many b are <= a track's S
    cumulative = np.cumsum(np.bincount(bucket, weights=weights, minlength=len(below) + 1))
    return cumulative[np.searchsorted(ascending, below, side="left")]  # S < b: as many b <= S as b < b


def distance_draws(
    weights: np.ndarray, scores: np.ndarray, anchor: int, below: np.ndarray, size: int, rng: np.random.Generator
) -> np.ndarray:
    """Row i: ``size`` tracks whose S is below ``below[i]``, P(n) proportional to ``weights[n]``.

    Rejection from the whole list where the region after the positive holds at least
    :data:`MIN_ACCEPTANCE` of the mass; otherwise a draw from that region directly; uniform
    where it holds no mass at all.
    """
    total = weights.sum()
    after = mass_below(weights, scores, below)  # mass after each positive; decreases
    cdf = np.cumsum(weights)
    n_rejection = int((after > MIN_ACCEPTANCE * total).sum())  # a prefix: after[] decreases
    draws = _rejection_draws(
        lambda shape: np.searchsorted(cdf, rng.random(shape) * total, side="right"), below[:n_rejection], scores, size
    )
    rows = list(draws)
    for b in below[n_rejection:]:
        valid = scores < b
        valid[anchor] = False
        restricted = np.where(valid, weights, 0.0)
        if not restricted.any():  # nothing after the positive has S > 0: uniform there
            restricted = valid.astype(float)
        local = np.cumsum(restricted)
        rows.append(np.searchsorted(local, rng.random(size) * local[-1], side="right"))
    return np.stack(rows) if rows else np.zeros((0, size), dtype=np.int64)
