"""Tags withheld on purpose: a seeded share of a catalog's tracks enters as untagged audio, a built-in
catalog's when it is written (:func:`withhold_tags`), a catalog's train split when it is ingested
(:func:`withhold_train_tags`). Each draws from its own seeded stream.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from trackrank.data.catalog_tables import REQUIRED_COLUMNS, UNTAGGED
from trackrank.errors import CatalogError

log = logging.getLogger(__name__)


def withhold_tags(table: pd.DataFrame, share: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A built-in catalog as a company has it: the tags table without a seeded ``share`` of its tracks,
    and those tracks as ``untagged.csv`` rows (``track_id``, ``path``, ``artist``); the audio is the same.

    Why: a company has far more audio than tags; withholding tags from a catalog whose tags are known
    measures what its untagged audio is worth (the self-supervised systems pretrain on it)."""
    withheld = seeded_share(len(table), share, [seed, 11])
    return table[~withheld], table.loc[withheld, list(REQUIRED_COLUMNS)]


def seeded_share(n: int, share: float, stream: list[int]) -> np.ndarray:
    """A mask of ``round(share * n)`` of ``n`` items drawn at random from ``stream`` (the tags withheld)."""
    chosen = np.zeros(n, dtype=bool)
    chosen[np.random.default_rng(stream).permutation(n)[: round(share * n)]] = True
    return chosen


def withhold_train_tags(
    tracks: pd.DataFrame, tags: pd.DataFrame, share: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A split catalog's ``tracks`` and ``tags`` tables with a seeded ``share`` of its train split's tracks
    untagged: split ``untagged``, placed with the other untagged tracks (last), their tags rows dropped; val
    and test are untouched.

    Why: "how many tags does a company need, and what is its untagged audio worth?" is answered on a
    catalog whose tags are all known by withholding some; withheld from train alone, every evaluation
    keeps all its queries (``scores.untagged_share`` draws from every track, so the test split shrinks)."""
    train = np.flatnonzero(tracks["split"].to_numpy() == "train")
    chosen = seeded_share(len(train), share, [seed, 13])
    if chosen.all():
        raise CatalogError(
            f"split.untagged_train_share {share} withholds the tags of all {len(train)} train tracks; "
            "training needs some"
        )
    withheld = np.zeros(len(tracks), dtype=bool)
    withheld[train[chosen]] = True
    moved = tracks.assign(split=np.where(withheld, UNTAGGED, tracks["split"]))
    last = moved["split"].to_numpy() == UNTAGGED
    moved = pd.concat([moved[~last], moved[last]], ignore_index=True)
    kept = tags[~tags["track_id"].isin(tracks.loc[withheld, "track_id"])]
    log.info("tags withheld from %d of the %d train tracks (split.untagged_train_share)", withheld.sum(), len(train))
    return moved, kept.reset_index(drop=True)
