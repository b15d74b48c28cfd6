"""Anchor-sharded tables: rankings and triplets written by one job per block of anchors, read as one.

Why: every anchor of a split is scored against the whole split, so one job over a split costs
O(N²); a million-track catalog needs that work spread over cluster jobs. Part ``p`` holds the
anchors ``p * anchors_per_job`` up to the next block, in split order, and every anchor's rows
depend on that anchor alone (its ranking; its own random stream when mining), so the parts read
in order are the table one job would have written, row for row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

from trackrank.errors import ConfigError

PathLike = str | Path
#: A table given as one file or as its parts in order.
TableParts = PathLike | Sequence[PathLike]


def n_parts(n_anchors: int, anchors_per_job: int) -> int:
    """How many jobs share ``n_anchors`` anchors, at most ``anchors_per_job`` each (one for an empty split)."""
    if anchors_per_job < 1:
        raise ConfigError(f"ranking.anchors_per_job must be >= 1, not {anchors_per_job}")
    return max(1, math.ceil(n_anchors / anchors_per_job))


def part_anchors(part: int, *, anchors_per_job: int, n_anchors: int) -> range:
    """The anchors (positions in the split) of part ``part``, in [0, n_parts(n_anchors, anchors_per_job))."""
    if not 0 <= part < n_parts(n_anchors, anchors_per_job):
        raise ConfigError(
            f"part {part} does not exist: {n_anchors} anchors in blocks of {anchors_per_job} "
            f"make {n_parts(n_anchors, anchors_per_job)} parts (was the catalog changed under a running workflow?)"
        )
    start = part * anchors_per_job
    return range(start, min(start + anchors_per_job, n_anchors))


def as_paths(source: TableParts) -> list[Path]:
    """One file or the ordered parts of a table, as a list of paths."""
    if isinstance(source, (str, Path)):
        return [Path(source)]
    return [Path(p) for p in source]


def parts_in(folder: PathLike) -> list[Path]:
    """The parts of one table where the workflow writes them (``rankings/<split>/``, ``triplets/<strategy>/``),
    in order: for scripts that read a finished run; a job gets its parts as declared inputs."""
    parts = sorted(Path(folder).glob("part-*.parquet"))
    if not parts:
        raise FileNotFoundError(f"no table parts (part-*.parquet) in {folder}")
    return parts


def read_parts(source: TableParts, columns: list[str] | None = None) -> pa.Table:
    """The table the parts make together, in the order given (one file is a table of one part)."""
    paths = as_paths(source)
    if not paths:
        raise ValueError("no table parts to read")
    return ds.dataset([str(p) for p in paths], format="parquet").to_table(columns=columns)
