"""One change at a time to an index folder, and what an interrupted change left beside it.

Why: ``trackrank index add`` and ``remove`` read the index, change it and write it anew into a sibling
folder that is swapped in (:mod:`trackrank.coldstart.grow`); two at once would each write their own copy
and the later one would drop the other's tracks. An exclusive ``flock`` on a lock file beside the
folder (not inside: the folder is swapped whole) makes the second wait its turn and say so. The kernel
releases it when its process ends, by ``kill -9`` too, so no stale lock outlives a crash; it is the
standard library's (Linux and macOS, where trackrank runs), so no dependency. Readers (``serve``,
``recommend``) take no lock: the swap is two renames, and they open the index once.
"""

from __future__ import annotations

import fcntl
import glob
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


def lock_path(folder: Path) -> Path:
    """The lock file of an index folder: ``.<name>.lock`` beside it."""
    return folder.with_name(f".{folder.name}.lock")


def leftovers(folder: Path) -> list[Path]:
    """Folders an interrupted change left beside ``folder``: half-written ``.<name>.new-*`` copies, and
    ``<name>.previous`` once ``folder`` itself is whole again."""
    found = sorted(Path(p) for p in glob.glob(glob.escape(str(folder.parent / f".{folder.name}.new-")) + "*"))
    previous = folder.with_name(folder.name + ".previous")
    if previous.is_dir() and folder.is_dir():
        found.append(previous)
    return found


def check_interrupted(folder: Path) -> None:
    """Name what an interrupted change left: an error when only ``<name>.previous`` holds the index, a
    warning for leftovers beside a whole index (the next change removes them)."""
    previous = folder.with_name(folder.name + ".previous")
    if not folder.exists() and previous.is_dir():
        raise FileNotFoundError(
            f"{folder}: missing, but an interrupted `trackrank index add` or `remove` left the index whole "
            f"at {previous}: rename it back to {folder.name}"
        )
    left = leftovers(folder)
    if left:
        log.warning(
            "%s: an interrupted `trackrank index add` or `remove` left %s; the next change to the index removes "
            "them (or delete them)",
            folder,
            ", ".join(p.name for p in left),
        )


@contextmanager
def changing(folder: Path, what: str) -> Iterator[None]:
    """Hold ``folder``'s lock while changing it (``what``: the change, named to a change that waits), and
    remove first what an interrupted change left (no other change can be running then)."""
    if not folder.is_dir():
        check_interrupted(folder)
        raise FileNotFoundError(f"{folder}: no such index folder (run `trackrank index` or the workflow's index rule)")
    with open(lock_path(folder), "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another change"
            log.warning("index %s: %s is changing it; waiting for it to finish", folder, holder)
            fcntl.flock(lock, fcntl.LOCK_EX)
        lock.truncate(0)
        lock.write(f"pid {os.getpid()} (`trackrank index {what}`)\n")
        lock.flush()
        for leftover in leftovers(folder):
            log.warning("index %s: removing %s, left by an interrupted change", folder, leftover.name)
            shutil.rmtree(leftover)
        yield
