"""Every error trackrank raises on purpose, under one root.

A caller (the CLI, a workflow script, a service) catches :class:`TrackrankError` and shows its
message as one line: each message names the file, track, row or config key and the reason. The
second bases (``ValueError``, ``OSError``) stay where callers relied on them before the root existed.
"""

from __future__ import annotations


class TrackrankError(Exception):
    """Root of trackrank's errors: a message meant for the user, not a bug."""


class ConfigError(TrackrankError, ValueError):
    """A setting that cannot work (a config key, a command-line option); the message names it."""


class AudioError(TrackrankError):
    """An audio file that cannot be read; the message names the file and why."""


class CatalogError(TrackrankError):
    """The catalog as a whole cannot be used; the message says which file and why."""


class SplitError(TrackrankError, ValueError):
    """The artists cannot be shared out as asked."""


class SimilarityError(TrackrankError):
    """S is misconfigured or misbehaves; the message names the function and why."""


class CheckpointError(TrackrankError, ValueError):
    """A checkpoint that trackrank refuses to load; the message names the file and the reason."""


class IndexMismatch(TrackrankError, ValueError):
    """A model, features or index that do not belong together; the message says which and how."""


class QueryError(TrackrankError):
    """An audio file that cannot be a query; the message names the file and the reason."""


class OutputError(TrackrankError, OSError):
    """An output that could not be written (full disk, read-only folder); nothing was left behind."""


class ScoreError(TrackrankError, ValueError):
    """A score that cannot be a track (unreadable, no notes); its track gets another piece."""


def shortened(text: str, limit: int = 80) -> str:
    """``text`` as a message may quote it: past ``limit`` characters it is cut and its length said, so a
    100 KB value given as a filter or a file name does not come back whole in the error and the log."""
    return text if len(text) <= limit else f"{text[: limit - 24]}... ({len(text):,} characters)"
