"""Filters a catalog manager asks for, applied inside the search so that ``k`` results still come back:
tracks with (``where``) or without (``exclude``) given strong tags, at most N per artist, and a catalog
track's own artist left out of its neighbours."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trackrank.coldstart.search import CatalogIndex
from trackrank.errors import QueryError, shortened


@dataclass(frozen=True)
class Filters:
    """``where``/``exclude``: tags as ``tag`` or ``Category=tag`` (its category checked against the
    index's taxonomy); ``max_per_artist``: None for no cap; ``exclude_artists``: artists left out."""

    where: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    max_per_artist: int | None = None
    exclude_artists: tuple[str, ...] = ()

    def allowed(self, index: CatalogIndex) -> np.ndarray | None:
        """A mask over the index's tracks (None: every track), or :class:`QueryError` for a tag the
        index does not know."""
        if not (self.where or self.exclude or self.exclude_artists):
            return None
        categories = index.identity.get("tag_categories") or {}
        if not categories:
            raise QueryError(
                f"index {index.folder} holds no catalog tags to filter on: rebuild it with the catalog's tags"
            )
        strong = index.tracks.tags.map(set)
        mask = np.ones(len(index.tracks), dtype=bool)
        for spec in self.where:
            tag = _tag(spec, categories)
            mask &= strong.map(lambda tags, tag=tag: tag in tags).to_numpy()
        for spec in self.exclude:
            tag = _tag(spec, categories)
            mask &= ~strong.map(lambda tags, tag=tag: tag in tags).to_numpy()
        if self.exclude_artists:
            mask &= ~index.tracks.artist.isin(self.exclude_artists).to_numpy()
        return mask


def _tag(spec: str, categories: dict[str, str]) -> str:
    """The tag a filter names (``tag`` or ``Category=tag``); :class:`QueryError` when it is unknown."""
    category, _, tag = spec.rpartition("=")
    if tag not in categories:
        known = ", ".join(sorted(categories))
        raise QueryError(f"filter '{shortened(spec)}': no tag '{shortened(tag)}' in the catalog (tags: {known})")
    if category and categories[tag] != category:
        raise QueryError(
            f"filter '{shortened(spec)}': tag '{tag}' is in category '{categories[tag]}', not '{shortened(category)}'"
        )
    return tag


#: No filter: every track of the index may come back.
NO_FILTERS = Filters()
