"""What the built-in catalogs (the demo's, the rendered scores') write: their taxonomy and tables, in the form
a user's catalog folder has, so that they go through the same validation."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from trackrank.atomic import atomic_output


def taxonomy_tags(taxonomy: dict[str, list[str]]) -> list[str]:
    """Every tag of a category -> tags taxonomy, in column order (a built-in catalog's tag columns)."""
    return [tag for tags in taxonomy.values() for tag in tags]


def taxonomy_meta(taxonomy: dict[str, list[str]], weights: dict[str, float]) -> pd.DataFrame:
    """A category -> tags taxonomy as a ``tags_meta.csv`` table: ``tag``, ``category``, ``weight`` (its
    category's)."""
    rows = [(tag, category, weights[category]) for category, tags in taxonomy.items() for tag in tags]
    return pd.DataFrame(rows, columns=["tag", "category", "weight"])


def write_built_in_tables(tables: list[tuple[str | Path | None, pd.DataFrame]]) -> None:
    """A built-in catalog's tables as CSV, each to its path atomically; a table without a path (None) is
    not wanted, which only an empty one may be (the untagged.csv of a catalog that withholds no tags)."""
    for output, frame in tables:
        if output is None:
            if len(frame):
                raise ValueError(f"{len(frame)} rows (e.g. tracks whose tags are withheld) have no file to go to")
            continue
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(output) as tmp:
            frame.to_csv(tmp, index=False)
