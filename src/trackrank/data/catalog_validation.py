"""Every row of a catalog checked: a usable track id, artist and path, likelihoods in [0, 1], audio that decodes
and is long enough.

Why row by row: a bad row gets a reason and is skipped (``rejected.csv``), so that one broken file or cell
never stops a run; only a catalog with no valid track at all raises :class:`~trackrank.errors.CatalogError`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from trackrank.data.audio import probe_duration
from trackrank.data.catalog_tables import (
    REQUIRED_COLUMNS,
    UNTAGGED_TABLE,
    read_tags_table,
    read_taxonomy,
    read_untagged_table,
)
from trackrank.data.features import min_duration_s
from trackrank.errors import AudioError, CatalogError, shortened

log = logging.getLogger(__name__)

#: What counts as an audio file when counting the folder's files that the tags table does not list.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


def track_id_problem(track_id: str) -> str:
    """Why ``track_id`` (stripped) cannot name a track ('' if it can): empty, or what a URL path segment cannot carry
    (``/`` or ``\\``, ``.`` or ``..``, control characters), so ``trackrank serve``'s ``/tracks/{id}/similar``
    and ``/audio/{id}`` could never reach it."""
    if not track_id.strip():
        return "empty track_id"
    if "/" in track_id or "\\" in track_id or track_id in (".", ".."):
        return f"track_id '{shortened(track_id)}' is a path, not a name (no '/', '\\', '.' or '..')"
    if any(ord(c) < 32 or ord(c) == 127 for c in track_id):
        return f"track_id {shortened(track_id)!r} holds control characters"
    return ""


def _row_problem(
    row: pd.Series,
    where: str,
    folder: Path,
    seen: dict[str, str],
    tag_values: np.ndarray,
    raw_tags: pd.Series,
    short_tracks: str,
) -> tuple[str, float]:
    """Why a row is unusable ('' if it is fine) and the audio duration; ``where`` is its file and line
    (``tags.csv line 9``), ``seen`` the ids of the rows before it (of both tables) and where they are."""
    track_id, rel_path, artist = row["track_id"].strip(), row["path"].strip(), row["artist"].strip()
    if track_id_problem(track_id):
        return track_id_problem(track_id), np.nan
    if track_id in seen:
        return f"duplicate track_id (first at {seen[track_id]})", np.nan
    seen[track_id] = where
    if not artist:
        return "empty artist", np.nan
    if not rel_path:
        return "empty path", np.nan
    if Path(rel_path).is_absolute():
        return f"path '{rel_path}' is absolute; paths are relative to the catalog folder", np.nan
    audio = (folder / rel_path).resolve()
    if not audio.is_relative_to(folder.resolve()):
        return f"path '{rel_path}' escapes the catalog folder", np.nan
    bad = ~np.isfinite(tag_values)
    if bad.any():
        tag = raw_tags.index[np.argmax(bad)]
        return f"likelihood for tag '{tag}' is missing or not a number ('{raw_tags[tag]}')", np.nan
    out = (tag_values < 0) | (tag_values > 1)
    if out.any():
        tag = raw_tags.index[np.argmax(out)]
        return f"likelihood {raw_tags[tag]} for tag '{tag}' is outside [0, 1]", np.nan
    if not audio.is_file():
        return f"audio file not found: {rel_path}", np.nan
    try:
        duration = probe_duration(audio)
    except AudioError as error:
        return f"unreadable audio: {error}", np.nan
    if duration <= 0:
        return "audio file holds no samples", duration
    if duration < min_duration_s() and short_tracks != "pad":
        return (
            f"too short: {duration:.2f} s < one 512-frame patch ({min_duration_s():.2f} s); "
            f"set features.short_tracks=pad to keep it"
        ), duration
    return "", duration


def _valid_rows(
    table: pd.DataFrame,
    source: str,
    folder: Path,
    seen: dict[str, str],
    values: np.ndarray,
    raw_tags: pd.DataFrame,
    short_tracks: str,
) -> tuple[list[int], list[float], list[tuple[str, str, str]]]:
    """The rows of one table that are fine, their durations, and the others' (track_id, path, reason)."""
    kept, durations, rejected = [], [], []
    for i, row in table.iterrows():
        where = f"{source} line {i + 2}"  # the header is line 1
        reason, duration = _row_problem(row, where, folder, seen, values[i], raw_tags.loc[i], short_tracks)
        if reason:
            log.warning("%s (track '%s'): %s", where, row["track_id"], reason)
            rejected.append((row["track_id"], row["path"], f"{where}: {reason}"))
        else:
            kept.append(i)
            durations.append(duration)
    return kept, durations, rejected


def _track_rows(folder: Path, tables: list[tuple[pd.DataFrame, list[float]]]) -> pd.DataFrame:
    """The tracks table of the valid rows of each (table, durations), in that order: one frame built
    at once, so its columns keep the dtypes pandas gives text (a concatenation with an empty table
    would turn them into objects)."""
    rows = pd.concat([table for table, _ in tables])
    return pd.DataFrame(
        {
            "track_id": rows["track_id"].str.strip().to_numpy(),
            "path": [str((folder / p.strip()).resolve()) for p in rows["path"]],
            "artist": rows["artist"].str.strip().to_numpy(),
            "duration_s": np.concatenate([np.asarray(durations, dtype=float) for _, durations in tables]),
        }
    )


def validate_catalog(
    folder: str | Path, short_tracks: str = "reject"
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Validate every row of a catalog folder.

    Returns
    -------
    tracks : ``track_id``, ``path`` (absolute), ``artist``, ``duration_s`` of the valid rows: the tagged
        tracks, then those of ``untagged.csv``.
    tags : ``track_id`` and one float32 likelihood column per tag, of the tagged tracks.
    taxonomy : ``tag``, ``category``, ``weight``.
    rejected : ``track_id``, ``path``, ``reason`` of the skipped rows.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CatalogError(f"catalog folder '{folder}' does not exist")
    table, source = read_tags_table(folder)
    tag_columns = [c for c in table.columns if c not in REQUIRED_COLUMNS]
    if not tag_columns:
        raise CatalogError(f"{folder / source} has no tag columns after {', '.join(REQUIRED_COLUMNS)}")
    taxonomy = read_taxonomy(folder, tag_columns)
    untagged = read_untagged_table(folder, tag_columns)
    raw_tags = table[tag_columns]
    values = raw_tags.apply(lambda column: pd.to_numeric(column.str.strip(), errors="coerce")).to_numpy(float)

    seen: dict[str, str] = {}
    kept, durations, rejected = _valid_rows(table, source, folder, seen, values, raw_tags, short_tracks)
    if not kept:
        raise CatalogError(
            f"catalog '{folder}' has no valid track ({len(rejected)} rejected; "
            f"first reason: {rejected[0][2] if rejected else 'the table is empty'})"
        )
    no_tags = np.empty((len(untagged), 0))
    kept_untagged, untagged_durations, untagged_rejected = _valid_rows(
        untagged, UNTAGGED_TABLE, folder, seen, no_tags, pd.DataFrame(index=untagged.index), short_tracks
    )
    tracks = _track_rows(folder, [(table.loc[kept], durations), (untagged.loc[kept_untagged], untagged_durations)])
    tags = pd.DataFrame(values[kept].astype(np.float32), columns=tag_columns)
    tags.insert(0, "track_id", tracks["track_id"].iloc[: len(kept)].to_numpy())
    rejected += untagged_rejected
    log.info(
        "catalog '%s': %d valid tracks (%d untagged), %d rejected, %d tags",
        folder,
        len(tracks),
        len(kept_untagged),
        len(rejected),
        len(tag_columns),
    )
    unlisted = unlisted_audio(folder, pd.concat([table["path"], untagged["path"]]))
    if unlisted:
        log.info(
            "%d audio file(s) in '%s' are not listed in %s%s and are ignored",
            len(unlisted),
            folder,
            source,
            f" or {UNTAGGED_TABLE}" if len(untagged) else "",
        )
    return tracks, tags, taxonomy, pd.DataFrame(rejected, columns=["track_id", "path", "reason"])


def unlisted_audio(folder: Path, listed_paths: pd.Series) -> list[Path]:
    """The audio files under ``folder`` that no row of the tags table names (the catalog ignores them)."""
    listed = {(folder / p.strip()).resolve() for p in listed_paths if p.strip()}
    return sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file() and p.resolve() not in listed
    )
