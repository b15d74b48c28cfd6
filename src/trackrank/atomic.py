"""Outputs written whole or not at all.

Why: a job killed mid-write (a cluster's time limit, a full disk, Ctrl-C) must never leave a file that
looks complete: Snakemake, or the next reader, would take a half-written table for a finished one.
Each output is written to a temporary file in its own folder (same file system, so the rename is
atomic) and renamed over the target only once the writer returned; on any failure the temporary
file is removed and the error says which output it was.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from trackrank.errors import OutputError


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` when the block ends without error.

    >>> with atomic_output("results/x.parquet") as tmp:
    ...     table.to_parquet(tmp)
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(error.errno, f"cannot create the folder of {path}: {error.strerror}") from error
    tmp = path.with_name(f".{os.getpid()}.tmp.{path.name}")  # keeps the suffix: writers infer formats from it
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as error:
        _remove(tmp)
        raise OutputError(error.errno, f"cannot write {path}: {error.strerror or error}") from error
    except BaseException:
        _remove(tmp)
        raise


def _remove(tmp: Path) -> None:
    """Remove a temporary file; on a read-only file system even a missing one cannot be unlinked (EROFS)."""
    with contextlib.suppress(OSError):
        tmp.unlink(missing_ok=True)
