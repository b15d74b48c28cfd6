"""Catalog ingestion: a user's (or a built-in) catalog folder validated (:mod:`trackrank.data.catalog_validation`),
split by artist and written as the tables every later stage reads (:class:`CatalogFiles`).

A catalog folder holds ``tags.csv`` (or ``tags.parquet``): ``track_id``, ``path``
(relative to the folder), ``artist``, then one column per tag with a likelihood in
[0, 1]; ``tags_meta.csv``: ``tag``, ``category`` and an optional ``weight``; and the
audio files. An optional ``untagged.csv`` (``track_id``, ``path``, ``artist``) lists audio
without tags: a company has far more of it than tagged audio, and the self-supervised
systems pretrain on it (split ``untagged``: in no ranking, no evaluation; in the index).
Every bad row gets a reason and is skipped (``rejected.csv``); only problems that make
the whole catalog unusable raise :class:`CatalogError`. Nothing is ever written inside
the catalog folder.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from trackrank.atomic import atomic_output
from trackrank.data.catalog_tables import UNTAGGED
from trackrank.data.catalog_validation import validate_catalog
from trackrank.data.split import SPLITS, artist_split
from trackrank.data.withheld_tags import withhold_train_tags
from trackrank.errors import CatalogError, SplitError
from trackrank.logs import CONSOLE

log = logging.getLogger(__name__)


@dataclass
class Catalog:
    """A validated catalog: what every later stage reads."""

    tracks: pd.DataFrame  # track_id, path (absolute), artist, split, duration_s; the untagged tracks last
    tags: pd.DataFrame  # track_id, then one float32 column per tag (the tagged tracks, in their order)
    taxonomy: pd.DataFrame  # tag, category, weight
    rejected: pd.DataFrame  # track_id, path, reason


def ingest(
    folder: str | Path,
    *,
    tracks: str | Path,
    tags: str | Path,
    taxonomy: str | Path,
    rejected: str | Path,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    untagged_train_share: float = 0.0,
    short_tracks: str = "reject",
) -> Catalog:
    """Validate the catalog in ``folder``, split its tagged tracks by artist (the untagged ones get
    split ``untagged``) and write its ``tracks`` and ``tags`` (Parquet), ``taxonomy`` and ``rejected``
    (CSV) tables to those paths.

    Parameters
    ----------
    folder : the catalog folder: ``tags.csv`` (or ``tags.parquet``), ``tags_meta.csv``, optionally
        ``untagged.csv``, and the audio; nothing in it is written.
    tracks, tags, taxonomy, rejected : the four output files, outside ``folder``.
    seed : the artist split's random stream.
    fractions : train/val/test shares of the artists, each in (0, 1), summing to 1 (paper: 60/20/20).
    untagged_train_share : of the train split's tracks, this seeded share enters as untagged
        (:func:`~trackrank.data.withheld_tags.withhold_train_tags`); val and test stay whole.
    short_tracks : ``reject`` or ``pad`` a track shorter than one patch (11.87 s).
    """
    outputs = {"tracks": tracks, "tags": tags, "taxonomy": taxonomy, "rejected": rejected}
    _refuse_outputs_inside(folder, outputs.values())
    catalog = Catalog(*validate_catalog(folder, short_tracks=short_tracks))
    catalog.tracks.insert(3, "split", _split_column(catalog, folder, fractions=fractions, seed=seed))
    if untagged_train_share:
        withheld = withhold_train_tags(catalog.tracks, catalog.tags, untagged_train_share, seed)
        catalog = replace(catalog, tracks=withheld[0], tags=withheld[1])
    for split in (*SPLITS, UNTAGGED):
        chosen = catalog.tracks["split"] == split
        log.info("split %s: %d tracks, %d artists", split, chosen.sum(), catalog.tracks.loc[chosen, "artist"].nunique())
    _write_tables(catalog, outputs)
    if len(catalog.rejected):
        log.warning(
            "%d of %d catalog rows skipped, listed with their reasons in %s",
            len(catalog.rejected),
            len(catalog.rejected) + len(catalog.tracks),
            rejected,
            extra=CONSOLE,
        )
    return catalog


def _refuse_outputs_inside(folder: str | Path, outputs: Iterable[str | Path]) -> None:
    """Raise :class:`CatalogError` for an output inside the catalog folder: a catalog is the user's and
    may be read-only or shared, so trackrank never writes into one."""
    for output in outputs:
        if Path(output).resolve().is_relative_to(Path(folder).resolve()):
            raise CatalogError(
                f"output '{output}' lies inside the catalog '{folder}'; trackrank never writes into a catalog"
            )


def _split_column(
    catalog: Catalog, folder: str | Path, *, fractions: tuple[float, float, float], seed: int
) -> np.ndarray:
    """Each track's split: the tagged tracks split by artist, the untagged ones ``untagged``."""
    tagged = catalog.tracks["track_id"].isin(catalog.tags["track_id"]).to_numpy()
    split = np.full(len(catalog.tracks), UNTAGGED, dtype=object)
    try:
        split[tagged] = artist_split(catalog.tracks["artist"][tagged], fractions=fractions, seed=seed)
    except SplitError as error:
        raise CatalogError(f"catalog '{folder}': {error}") from error
    return split


def _write_tables(catalog: Catalog, outputs: dict[str, str | Path]) -> None:
    """Each table of ``catalog`` to its output: ``tracks`` and ``tags`` as Parquet, the others as CSV."""
    for name, output in outputs.items():
        table = getattr(catalog, name)
        with atomic_output(output) as tmp:
            if name in ("tracks", "tags"):
                table.to_parquet(tmp, index=False)
            else:
                table.to_csv(tmp, index=False)


@dataclass(frozen=True)
class CatalogFiles:
    """The validated catalog's tables by path: a job names each file it reads, so Snakemake sees them all."""

    tracks: Path
    tags: Path
    taxonomy: Path

    @classmethod
    def in_folder(cls, folder: str | Path) -> CatalogFiles:
        """The tables where :func:`ingest` writes them."""
        folder = Path(folder)
        return cls(folder / "tracks.parquet", folder / "tags.parquet", folder / "taxonomy.csv")


def load_split_tags(catalog: CatalogFiles, split: str) -> tuple[list[str], np.ndarray, pd.DataFrame]:
    """The ids and tag matrix (n_tracks, m) of one split, in catalog order, and the taxonomy.

    The matrix is built tag by tag, tag-major (returned as its transposed view, which
    :class:`~trackrank.rank.similarity.Oracle` keeps without a copy): one float64 copy of the split's
    tags, never the whole catalog's.
    """
    tracks = pd.read_parquet(catalog.tracks, columns=["track_id", "split"])
    taxonomy = pd.read_csv(catalog.taxonomy, keep_default_na=False)
    names = taxonomy["tag"].tolist()
    table = pq.read_table(catalog.tags, columns=["track_id", *names])
    tag_ids = table.column("track_id").to_pandas()
    chosen = np.flatnonzero(tag_ids.isin(tracks.loc[tracks["split"] == split, "track_id"]))  # the tags' rows, in order
    columns = np.empty((len(names), len(chosen)))
    for row, name in enumerate(names):
        columns[row] = table.column(name).to_numpy()[chosen]
    return tag_ids.iloc[chosen].tolist(), columns.T, taxonomy


def merge_rejected(paths: dict[str, str | Path], output: str | Path) -> pd.DataFrame:
    """One rejected-tracks report from validation's ``rejected.csv`` and the shards' decode failures.

    ``paths``: stage -> its rejected-tracks CSV (``validation``, ``shard-NNN`` for a feature shard).
    Columns ``track_id``, ``path``, ``stage``, ``reason``.
    """
    tables = []
    for stage, path in paths.items():
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        table.insert(2, "stage", stage)
        tables.append(table)
    merged = (
        pd.concat(tables, ignore_index=True)
        if tables
        else pd.DataFrame(columns=["track_id", "path", "stage", "reason"])
    )
    with atomic_output(output) as tmp:
        merged.to_csv(tmp, index=False)
    if len(merged):
        by_stage = merged["stage"].where(merged["stage"] == "validation", "feature shards").value_counts()
        log.warning(
            "%d track(s) skipped in all (%s), listed with their reasons in %s",
            len(merged),
            ", ".join(f"{stage} {count}" for stage, count in by_stage.items()),
            output,
            extra=CONSOLE,
        )
    return merged
