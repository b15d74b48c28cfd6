"""Catalog ingestion: read a user's (or the demo's) catalog folder and validate it.

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
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from trackrank.atomic import atomic_output
from trackrank.data.audio import probe_duration
from trackrank.data.features import min_duration_s
from trackrank.data.split import SPLITS, artist_split
from trackrank.errors import AudioError, CatalogError, SplitError, shortened
from trackrank.logs import CONSOLE

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("track_id", "path", "artist")
#: The optional table of audio without tags, and the split its tracks get.
UNTAGGED_TABLE = "untagged.csv"
UNTAGGED = "untagged"
#: What counts as an audio file when counting the folder's files that the tags table does not list.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


@dataclass
class Catalog:
    """A validated catalog: what every later stage reads."""

    tracks: pd.DataFrame  # track_id, path (absolute), artist, split, duration_s; the untagged tracks last
    tags: pd.DataFrame  # track_id, then one float32 column per tag (the tagged tracks, in their order)
    taxonomy: pd.DataFrame  # tag, category, weight
    rejected: pd.DataFrame  # track_id, path, reason


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


def taxonomy_tags(taxonomy: dict[str, list[str]]) -> list[str]:
    """Every tag of a category -> tags taxonomy, in column order (a built-in catalog's tag columns)."""
    return [tag for tags in taxonomy.values() for tag in tags]


def taxonomy_meta(taxonomy: dict[str, list[str]], weights: dict[str, float]) -> pd.DataFrame:
    """A category -> tags taxonomy as a ``tags_meta.csv`` table: ``tag``, ``category``, ``weight`` (its
    category's)."""
    rows = [(tag, category, weights[category]) for category, tags in taxonomy.items() for tag in tags]
    return pd.DataFrame(rows, columns=["tag", "category", "weight"])


def withhold_tags(table: pd.DataFrame, share: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A built-in catalog as a company has it: the tags table without a seeded ``share`` of its tracks,
    and those tracks as ``untagged.csv`` rows (``track_id``, ``path``, ``artist``); the audio is the same.

    Why: a company has far more audio than tags; withholding tags from a catalog whose tags are known
    measures what its untagged audio is worth (the self-supervised systems pretrain on it)."""
    withheld = seeded_share(len(table), share, [seed, 11])
    return table[~withheld], table.loc[withheld, list(REQUIRED_COLUMNS)]


def seeded_share(n: int, share: float, stream: list[int]) -> np.ndarray:
    """A mask of ``round(share * n)`` of ``n`` items drawn at random from ``stream`` (the tags withheld)."""
    chosen = np.zeros(n, dtype=bool)
    chosen[np.random.default_rng(stream).permutation(n)[: round(share * n)]] = True
    return chosen


def withhold_train_tags(catalog: Catalog, share: float, seed: int) -> Catalog:
    """``catalog`` with a seeded ``share`` of its train split's tracks untagged: split ``untagged``, placed
    with the other untagged tracks (last), their tags rows dropped; val and test are untouched.

    Why: "how many tags does a company need, and what is its untagged audio worth?" is answered on a
    catalog whose tags are all known by withholding some; withheld from train alone, every evaluation
    keeps all its queries (``scores.untagged_share`` draws from every track, so the test split shrinks)."""
    train = np.flatnonzero(catalog.tracks["split"].to_numpy() == "train")
    chosen = seeded_share(len(train), share, [seed, 13])
    if chosen.all():
        raise CatalogError(
            f"split.untagged_train_share {share} withholds the tags of all {len(train)} train tracks; "
            "training needs some"
        )
    withheld = np.zeros(len(catalog.tracks), dtype=bool)
    withheld[train[chosen]] = True
    tracks = catalog.tracks.assign(split=np.where(withheld, UNTAGGED, catalog.tracks["split"]))
    last = tracks["split"].to_numpy() == UNTAGGED
    tracks = pd.concat([tracks[~last], tracks[last]], ignore_index=True)
    tags = catalog.tags[~catalog.tags["track_id"].isin(catalog.tracks.loc[withheld, "track_id"])]
    log.info("tags withheld from %d of the %d train tracks (split.untagged_train_share)", withheld.sum(), len(train))
    return replace(catalog, tracks=tracks, tags=tags.reset_index(drop=True))


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
        (:func:`withhold_train_tags`); val and test stay whole.
    short_tracks : ``reject`` or ``pad`` a track shorter than one patch (11.87 s).
    """
    outputs = {"tracks": tracks, "tags": tags, "taxonomy": taxonomy, "rejected": rejected}
    for output in outputs.values():
        if Path(output).resolve().is_relative_to(Path(folder).resolve()):
            raise CatalogError(
                f"output '{output}' lies inside the catalog '{folder}'; trackrank never writes into a catalog"
            )
    catalog = Catalog(*validate_catalog(folder, short_tracks=short_tracks))
    tagged = catalog.tracks["track_id"].isin(catalog.tags["track_id"]).to_numpy()
    split = np.full(len(catalog.tracks), UNTAGGED, dtype=object)
    try:
        split[tagged] = artist_split(catalog.tracks["artist"][tagged], fractions=fractions, seed=seed)
    except SplitError as error:
        raise CatalogError(f"catalog '{folder}': {error}") from error
    catalog.tracks.insert(3, "split", split)
    if untagged_train_share:
        catalog = withhold_train_tags(catalog, untagged_train_share, seed)
    for split in (*SPLITS, UNTAGGED):
        chosen = catalog.tracks["split"] == split
        log.info("split %s: %d tracks, %d artists", split, chosen.sum(), catalog.tracks.loc[chosen, "artist"].nunique())
    for name, output in outputs.items():
        table = getattr(catalog, name)
        with atomic_output(output) as tmp:
            if name in ("tracks", "tags"):
                table.to_parquet(tmp, index=False)
            else:
                table.to_csv(tmp, index=False)
    if len(catalog.rejected):
        log.warning(
            "%d of %d catalog rows skipped, listed with their reasons in %s",
            len(catalog.rejected),
            len(catalog.rejected) + len(catalog.tracks),
            rejected,
            extra=CONSOLE,
        )
    return catalog


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
