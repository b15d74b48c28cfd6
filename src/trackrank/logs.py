"""Logging for workflow steps: one log file per job, as Snakemake's ``log:`` names it.

A few lines are for the person at the console too (how many tracks were skipped and where the list
is): log them with ``extra=CONSOLE`` and they also go to stderr, which Snakemake shows.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from trackrank.errors import TrackrankError

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: ``log.warning(..., extra=CONSOLE)``: the line goes to the job's log and to the console.
CONSOLE = {"console": True}


def log_to(path: str | Path | None, level: int = logging.INFO) -> None:
    """Send every trackrank message (and warnings) to ``path``, or to stderr when None;
    messages logged with ``extra=CONSOLE`` go to stderr as well."""
    handler: logging.Handler
    handlers: list[logging.Handler] = []
    if path is None:
        handler = logging.StreamHandler()
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, mode="w")
        console = logging.StreamHandler(sys.stderr)
        console.addFilter(lambda record: getattr(record, "console", False))
        console.setFormatter(logging.Formatter("trackrank: %(message)s"))
        handlers.append(console)
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.handlers = [handler, *handlers]
    root.setLevel(level)
    logging.captureWarnings(True)


@contextlib.contextmanager
def workflow_step(path: str | Path) -> Iterator[None]:
    """A workflow script's body: its messages go to the job's log (:func:`log_to`), and a
    :class:`~trackrank.errors.TrackrankError` ends the job with its message as one line, in the log and
    on the console, instead of a traceback (the message already names the file, track or key)."""
    log_to(path)
    try:
        yield
    except TrackrankError as error:
        logging.getLogger("trackrank").error("%s", error)
        raise SystemExit(f"trackrank: {error}") from None
