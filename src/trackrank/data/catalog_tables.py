"""A catalog folder's tables, read as text and checked for what the whole catalog needs (required columns,
a taxonomy that matches the tag columns); each row is checked by :mod:`trackrank.data.catalog_validation`.

Why text: a row with a bad cell must be rejected with its reason, not fail the whole table's parsing.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from trackrank.errors import CatalogError

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("track_id", "path", "artist")
#: The optional table of audio without tags, and the split its tracks get.
UNTAGGED_TABLE = "untagged.csv"
UNTAGGED = "untagged"


def _read_table(path: Path) -> pd.DataFrame:
    """A catalog table, every cell as text, its required columns checked."""
    try:
        if path.suffix == ".csv":
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
        else:
            table = pd.read_parquet(path).astype(str)
    except Exception as error:
        raise CatalogError(f"cannot read {path}: {error}") from error
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise CatalogError(
            f"{path} lacks the required column(s) {', '.join(missing)} (it has: {', '.join(table.columns)})"
        )
    return table


def read_tags_table(folder: Path) -> tuple[pd.DataFrame, str]:
    """The raw tags table, every cell as text, and the file name to cite in messages."""
    for name in ("tags.csv", "tags.parquet"):
        path = folder / name
        if path.is_file():
            return _read_table(path), name
    raise CatalogError(f"catalog '{folder}' has no tags.csv (or tags.parquet)")


def read_untagged_table(folder: Path, tag_columns: list[str]) -> pd.DataFrame:
    """``untagged.csv``'s ``track_id``, ``path``, ``artist`` as text (no rows where the file is absent).

    A tag column there is refused rather than ignored: its track would lose tags the user gave."""
    path = folder / UNTAGGED_TABLE
    if not path.is_file():
        return pd.DataFrame(columns=list(REQUIRED_COLUMNS))
    table = _read_table(path)
    tagged = [c for c in table.columns if c in tag_columns]
    if tagged:
        raise CatalogError(
            f"{path} has tag column(s) {', '.join(tagged)}: it lists audio without tags; "
            f"put tagged tracks in the tags table"
        )
    ignored = [c for c in table.columns if c not in REQUIRED_COLUMNS]
    if ignored:
        log.info("%s: column(s) %s are ignored", path, ", ".join(ignored))
    return table[list(REQUIRED_COLUMNS)]


def read_taxonomy(folder: Path, tag_columns: list[str]) -> pd.DataFrame:
    """``tags_meta.csv`` checked against the tag columns of the tags table."""
    path = folder / "tags_meta.csv"
    if not path.is_file():
        raise CatalogError(f"catalog '{folder}' has no tags_meta.csv (columns: tag, category, weight)")
    meta = pd.read_csv(path, dtype={"tag": str, "category": str}, keep_default_na=False)
    missing = [c for c in ("tag", "category") if c not in meta.columns]
    if missing:
        raise CatalogError(f"{path} lacks the required column(s) {', '.join(missing)}")
    if "weight" not in meta.columns:
        meta["weight"] = 1.0
    weight = pd.to_numeric(meta["weight"].replace("", "1.0"), errors="coerce")
    for line, (tag, value) in enumerate(zip(meta["tag"], weight), start=2):
        if not np.isfinite(value) or value < 0:
            raise CatalogError(f"{path} line {line} (tag '{tag}'): weight must be a number >= 0")
    meta["weight"] = weight.astype(float)
    duplicated = meta["tag"][meta["tag"].duplicated()].tolist()
    if duplicated:
        raise CatalogError(f"{path} lists tag(s) twice: {', '.join(duplicated)}")
    unknown = sorted(set(tag_columns) - set(meta["tag"]))
    if unknown:
        raise CatalogError(f"tag column(s) {', '.join(unknown)} of the tags table are not in {path}")
    absent = sorted(set(meta["tag"]) - set(tag_columns))
    if absent:
        raise CatalogError(f"{path} lists tag(s) {', '.join(absent)} that the tags table has no column for")
    return meta.set_index("tag").loc[tag_columns].reset_index()[["tag", "category", "weight"]]
