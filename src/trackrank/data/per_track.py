"""One function over every track of a catalog table, in worker processes, past the tracks that fail.

The CQT shards and the MFCC statistics both decode every track of a table; a file that does not
decode (or is too short) must cost that track, never the run. This is their one loop: results come
back in table order, and each failure is logged and listed with its reason for the rejected-tracks
report.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from trackrank.errors import AudioError

log = logging.getLogger(__name__)

#: The columns of a rejected-tracks table.
REJECTED_COLUMNS = ["track_id", "path", "reason"]


def _guarded(job: tuple[Callable[[str], Any], str, str]) -> tuple[str, Any, str]:
    """(track_id, function(path) or None, the reason it failed); runs in a worker process."""
    function, track_id, path = job
    try:
        return track_id, function(path), ""
    except AudioError as error:
        return track_id, None, str(error)


def each_track(
    function: Callable[[str], Any],
    paths: dict[str, str],
    *,
    rejected: list[tuple[str, str, str]],
    workers: int = 1,
    chunksize: int = 1,
) -> Iterator[tuple[str, Any]]:
    """(track_id, ``function(path)``) for each track of ``paths`` (track_id -> audio file), in order.

    Parameters
    ----------
    function : a picklable callable of one audio path (a module-level function or a ``functools.partial``
        of one); it raises :class:`~trackrank.errors.AudioError` for a track it cannot use.
    rejected : gets (track_id, path, reason) for each track whose function raised; those are skipped.
    workers : processes (1: in this process, no pool).
    chunksize : tracks handed to a worker at a time (>= 1).
    """
    jobs = [(function, track_id, path) for track_id, path in paths.items()]
    if workers <= 1:
        results: Iterator = map(_guarded, jobs)
    else:
        pool = ProcessPoolExecutor(max_workers=workers)
        results = pool.map(_guarded, jobs, chunksize=chunksize)
    try:
        for track_id, value, reason in results:
            if value is None:
                log.warning("skipped track '%s' (%s): %s", track_id, paths[track_id], reason)
                rejected.append((track_id, paths[track_id], reason))
                continue
            yield track_id, value
    finally:
        if workers > 1:
            pool.shutdown(cancel_futures=True)
