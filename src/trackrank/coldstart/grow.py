"""An index that grows: new tracks embedded into an existing index, and tracks taken out, without
retraining or re-embedding the catalog.

A new file gets exactly a query's treatment (the index's model, its patch count, the stored float16
CQT), so it is found, returned and streamed like a catalog track. Every change writes the index's
three files anew into a sibling folder and swaps the folders, so a crash leaves the old index whole
(a crash between the two renames leaves it whole at ``<index>.previous``, which the next open names).
One change runs at a time: a second waits for the index's lock (:mod:`trackrank.coldstart.index_lock`),
then reads the index the first one wrote, so no added or removed track is lost.

On approximate indexes: HNSW inserts the new vectors into its graph (search quality holds); IVF
assigns them to the lists it was trained on, which drift from the data as it grows: rebuild an IVF
index (``trackrank index``) once the added tracks are a sizeable share of it. Removal rebuilds the
FAISS index from the remaining vectors (HNSW cannot delete), which an exact index does in moments and
an approximate one in its build time.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import faiss
import numpy as np
import pandas as pd

from trackrank.coldstart.explain import strong_tags
from trackrank.coldstart.faiss_index import new_faiss_index
from trackrank.coldstart.index_lock import changing
from trackrank.coldstart.recommend import Recommender, query_cqt
from trackrank.coldstart.search import INDEX_FILES, CatalogIndex, resolve_index_folder
from trackrank.data.catalog_validation import track_id_problem
from trackrank.errors import IndexMismatch, QueryError

log = logging.getLogger(__name__)


def added_rows(files: list[str], ids_csv: str | Path | None, index: CatalogIndex) -> pd.DataFrame:
    """``file``, ``track_id``, ``artist`` and tag columns of the files to add: from ``ids_csv`` (columns
    ``file``, ``track_id``, optional ``artist`` and catalog tag columns; a row matches a file when both
    name the same file from the working folder, ``./a.flac`` and ``a.flac`` alike) or, without it, the
    file's name as its id and artist ``unknown``. Ids the catalog would refuse (empty, a path), ids
    already in the index, or given twice, are refused."""
    given = pd.DataFrame({"file": files, "same_file": [same_file(f) for f in files]})
    if ids_csv is None:
        rows = given.assign(track_id=[Path(f).stem for f in files], artist="unknown")
    else:
        rows = _rows_of_csv(given, ids_csv)
    for file, track_id in zip(rows.file, rows.track_id):
        if problem := track_id_problem(track_id):
            raise QueryError(f"{f'{ids_csv}: ' if ids_csv is not None else ''}{file}: {problem}")
    taken = sorted(set(rows.track_id) & set(index.position))
    if taken:
        raise QueryError(f"already in index {index.folder}: {', '.join(taken)} (remove them first)")
    twice = sorted(rows.track_id[rows.track_id.duplicated()])
    if twice:
        raise QueryError(f"track ids given twice: {', '.join(twice)}")
    return rows.drop(columns="same_file")


def same_file(path: str | Path) -> str:
    """A path as a match key: absolute from the working folder, ``.`` and ``..`` folded, links followed."""
    return str(Path(path).resolve())


def _rows_of_csv(given: pd.DataFrame, ids_csv: str | Path) -> pd.DataFrame:
    """``given`` joined with the rows of ``ids_csv`` that name its files (see :func:`added_rows`)."""
    table = pd.read_csv(ids_csv, dtype={"file": str, "track_id": str, "artist": str}, keep_default_na=False)
    missing = {"file", "track_id"} - set(table.columns)
    if missing:
        raise QueryError(f"{ids_csv}: needs columns file and track_id (missing: {', '.join(sorted(missing))})")
    table["track_id"] = table.track_id.str.strip()  # as the catalog reads its ids
    table["same_file"] = [same_file(f) for f in table.file]
    twice = table.loc[table.same_file.duplicated(keep=False) & table.same_file.isin(given.same_file), "file"]
    if len(twice):
        raise QueryError(f"{ids_csv}: more than one row names the same file: {', '.join(twice)}")
    unlisted = given.file[~given.same_file.isin(table.same_file)].tolist()
    if unlisted:
        raise QueryError(f"{ids_csv}: no row for {', '.join(unlisted)}")
    rows = given.merge(table.drop(columns="file"), on="same_file", how="left")
    rows["artist"] = rows["artist"].replace("", "unknown") if "artist" in rows else "unknown"
    return rows


def add_tracks(
    index_folder: str | Path,
    files: list[str],
    *,
    ids_csv: str | Path | None = None,
    model: str | Path | None = None,
    device: str = "auto",
    max_duration_s: float | None = None,
) -> tuple[list[str], list[dict]]:
    """Embed ``files`` into the index with its own model and patch treatment and save it.

    Returns (the ids added, one {file, reason} per file that could not be added); a file that fails
    costs only itself. A model or features other than the index's are refused (:class:`IndexMismatch`).
    Holds the index's lock throughout: another change waits (:func:`~trackrank.coldstart.index_lock.changing`).
    """
    with changing(resolve_index_folder(index_folder), "add"):
        return _add_tracks(index_folder, files, ids_csv, model, device, max_duration_s)


def _add_tracks(
    index_folder: str | Path,
    files: list[str],
    ids_csv: str | Path | None,
    model: str | Path | None,
    device: str,
    max_duration_s: float | None,
) -> tuple[list[str], list[dict]]:
    recommender = Recommender(index_folder, model=model, device=device, tagger=None, max_duration_s=max_duration_s)
    index = recommender.index
    rows = added_rows(files, ids_csv, index)
    catalog_tags = list((index.identity.get("tag_categories") or {}).keys())
    kept, vectors, failed = [], [], []
    for row in rows.itertuples(index=False):
        try:
            vector = recommender.embed(query_cqt(row.file, max_duration_s=max_duration_s))
        except QueryError as error:
            failed.append({"file": row.file, "reason": str(error)})
            continue
        kept.append(row._asdict())
        vectors.append(vector[0])
    if not kept:
        return [], failed
    new = pd.DataFrame(kept)
    tag_columns = [t for t in catalog_tags if t in new.columns]
    likelihoods = new[tag_columns].apply(pd.to_numeric, errors="coerce") if tag_columns else new[[]]
    added = pd.DataFrame(
        {
            "track_id": new.track_id,
            "artist": new.artist,
            "split": "added",
            "path": [str(Path(f).resolve()) for f in new.file],
            "embedding": list(np.asarray(vectors, dtype=np.float32)),
            "tags": strong_tags(likelihoods) if tag_columns else [[] for _ in range(len(new))],
        }
    )
    table = pd.concat([read_table(index), added], ignore_index=True)
    faiss_index = index.faiss
    if (ivf := faiss.try_extract_index_ivf(faiss_index)) is not None:
        ivf.make_direct_map(False)  # the map made for reads; an open index rebuilds it
    faiss_index.add(np.asarray(vectors, dtype=np.float32))  # HNSW inserts, IVF assigns to its trained lists
    identity = dict(index.identity)
    dirs = {str(Path(f).resolve().parent) for f in new.file}
    identity["audio_dirs"] = sorted(set(identity.get("audio_dirs", [])) | dirs)
    save(Path(index.folder), table, faiss_index, identity)
    log.info("added %d track(s) to %s (%d now)", len(added), index.folder, len(table))
    return added.track_id.tolist(), failed


def remove_tracks(index_folder: str | Path, track_ids: list[str]) -> int:
    """Take ``track_ids`` out of the index and save it; returns how many tracks went (an id given twice
    is one track). Unknown ids are refused, naming them. Holds the index's lock, as :func:`add_tracks`."""
    with changing(resolve_index_folder(index_folder), "remove"):
        index = CatalogIndex(index_folder)
        unknown = sorted(set(track_ids) - set(index.position))
        if unknown:
            raise QueryError(f"not in index {index.folder}: {', '.join(unknown)}")
        before = read_table(index)
        table = before[~before.track_id.isin(track_ids)].reset_index(drop=True)
        if table.empty:
            raise QueryError(f"removing {len(before)} tracks would leave index {index.folder} empty")
        vectors = np.stack(table.embedding).astype(np.float32)
        save(Path(index.folder), table, new_faiss_index(vectors, kind=index.identity["kind"]), dict(index.identity))
    removed = len(before) - len(table)
    log.info("removed %d track(s) from %s (%d left)", removed, index.folder, len(table))
    return removed


def read_table(index: CatalogIndex) -> pd.DataFrame:
    """The index's whole tracks table, embeddings included, with a ``tags`` column."""
    table = pd.read_parquet(index.folder / "tracks.parquet")
    if "tags" not in table:
        table["tags"] = [[] for _ in range(len(table))]
    return table


def save(folder: Path, table: pd.DataFrame, faiss_index: faiss.Index, identity: dict) -> None:
    """Write the index's three files into a sibling folder, then swap it in for ``folder``, with the old
    folder's and files' permissions (a server running as another user must still read it)."""
    if faiss_index.ntotal != len(table):
        raise IndexMismatch(f"{folder}: {faiss_index.ntotal} vectors for {len(table)} tracks (not saved)")
    identity["n_tracks"] = len(table)
    fresh = Path(tempfile.mkdtemp(prefix=f".{folder.name}.new-", dir=folder.parent))
    try:
        table.to_parquet(fresh / "tracks.parquet", index=False)
        faiss.write_index(faiss_index, str(fresh / "vectors.faiss"))
        (fresh / "identity.json").write_text(json.dumps(identity, indent=2) + "\n")
        for name in INDEX_FILES:
            with open(fresh / name, "rb") as written:
                os.fsync(written.fileno())
            if (folder / name).is_file():
                shutil.copymode(folder / name, fresh / name)
        shutil.copymode(folder, fresh)  # mkdtemp made it owner-only
        previous = folder.with_name(folder.name + ".previous")
        shutil.rmtree(previous, ignore_errors=True)
        os.rename(folder, previous)
        os.rename(fresh, folder)
        shutil.rmtree(previous)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
