"""Artist-disjoint train/val/test split (paper §4.1: 60/20/20, no artist in two splits)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trackrank.errors import SplitError

SPLITS = ("train", "val", "test")


def artist_split(
    artists: pd.Series, *, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2), seed: int = 0
) -> np.ndarray:
    """Assign every track to a split so that each artist lies in exactly one split.

    Artists are visited in a seeded random order, largest first, and each goes to the
    split furthest below its target number of tracks, so the proportions come close
    to ``fractions`` whatever the artists' sizes.

    Parameters
    ----------
    artists : the artist of each track.
    fractions : target share of tracks for train, val, test (summing to 1).

    Returns
    -------
    split : np.ndarray of str, one of ``SPLITS`` per track, aligned with ``artists``.
    """
    fractions = np.asarray(fractions, dtype=float)
    if fractions.shape != (3,) or (fractions < 0).any() or not np.isclose(fractions.sum(), 1.0):
        raise SplitError(f"split fractions must be three numbers >= 0 summing to 1, got {list(fractions)}")
    sizes = artists.value_counts(sort=False)
    needed = int((fractions > 0).sum())
    if len(sizes) < needed:
        raise SplitError(
            f"an artist-disjoint split into {needed} non-empty splits needs at least "
            f"{needed} artists; the catalog has {len(sizes)}"
        )
    rng = np.random.default_rng([seed, 7])
    order = sizes.index[rng.permutation(len(sizes))]
    order = sorted(order, key=lambda artist: -sizes[artist])  # stable: ties keep the random order
    targets = fractions * len(artists)
    counts = np.zeros(3)
    assignment = {}
    for artist in order:
        empty = (counts == 0) & (fractions > 0)
        # Fill every requested split once before balancing, so none stays empty.
        candidates = np.flatnonzero(empty) if empty.any() else np.flatnonzero(fractions > 0)
        best = candidates[np.argmax(targets[candidates] - counts[candidates])]
        assignment[artist] = SPLITS[best]
        counts[best] += sizes[artist]
    return artists.map(assignment).to_numpy()
