"""A built index opened for search: the catalog tracks nearest a query's vector, with filters.

Why apart from building: a service opens an index once and answers many queries; it needs the index's
files and FAISS, not the catalog, the patch cache or the network that embedded them. An index is three
files in one folder (:data:`INDEX_FILES`, written by :func:`trackrank.coldstart.index.build_index`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from trackrank.coldstart.index_identity import FEATURES
from trackrank.coldstart.index_lock import check_interrupted
from trackrank.errors import IndexMismatch

INDEX_FILES = ("tracks.parquet", "vectors.faiss", "identity.json")


@dataclass
class Neighbour:
    rank: int
    track_id: str
    artist: str
    distance: float
    tags: list[str] = field(default_factory=list)  # its strong catalog tags, most likely first
    shared_tags: list[str] = field(default_factory=list)  # those the query has too


class CatalogIndex:
    """A built index, opened for search; refuses features it was not built with."""

    def __init__(self, folder: str | Path):
        folder = resolve_index_folder(folder)
        check_interrupted(folder)
        missing = [name for name in INDEX_FILES if not (folder / name).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{folder}: not an index, missing {', '.join(missing)} (run `trackrank index` "
                "or the workflow's index rule)"
            )
        self.folder = folder
        self.identity = json.loads((folder / "identity.json").read_text())
        if self.identity.get("features") != FEATURES:
            raise IndexMismatch(
                f"{folder}: built with features {self.identity.get('features')}, but this trackrank "
                f"computes {FEATURES}: rebuild the index"
            )
        columns = pq.read_schema(folder / "tracks.parquet").names
        kept = ["track_id", "artist", "split", "path", *(["tags"] if "tags" in columns else [])]
        self.tracks = pd.read_parquet(folder / "tracks.parquet", columns=kept)
        if "tags" not in columns:  # an index built without the catalog's tags explains nothing
            self.tracks["tags"] = [[] for _ in range(len(self.tracks))]
        self.position = {t: i for i, t in enumerate(self.tracks.track_id)}
        self.faiss = faiss.read_index(str(folder / "vectors.faiss"))
        if self.faiss.ntotal != len(self.tracks):
            raise IndexMismatch(
                f"{folder}: vectors.faiss holds {self.faiss.ntotal} vectors for "
                f"{len(self.tracks)} tracks in tracks.parquet: rebuild the index"
            )
        if hasattr(self.faiss, "hnsw"):
            self.faiss.hnsw.efSearch = max(self.faiss.hnsw.efSearch, 128)
        if self.identity["kind"] == "ivf":
            faiss.extract_index_ivf(self.faiss).make_direct_map()  # for vector()

    def check_model(self, model_path: str | Path, found: dict) -> None:
        """Refuse a model (``found``: its :func:`~trackrank.coldstart.index_identity.model_identity`) other
        than the one the index was built with: its vectors would not be comparable."""
        expected = {key: self.identity[key] for key in found}
        if found != expected:
            raise IndexMismatch(
                f"model {model_path} ({found['system']}, sha256 {found['model_sha256'][:12]}) is not "
                f"the model index {self.folder} was built with ({expected['system']}, sha256 "
                f"{expected['model_sha256'][:12]}): rebuild the index with this model"
            )

    def search(
        self,
        vectors: np.ndarray,
        k: int = 10,
        exclude: list[str | None] | None = None,
        *,
        allowed: np.ndarray | None = None,
        max_per_artist: int | None = None,
    ) -> list[list[Neighbour]]:
        """The ``k`` nearest catalog tracks of each unit row of ``vectors``, nearest first.

        ``exclude[i]``: a track id left out of row i's answer (a catalog track's own entry).
        ``allowed``: a mask over the index's tracks; only those can be returned, selected inside the
        FAISS search (an ID selector), so ``k`` of them come back whenever ``k`` exist.
        ``max_per_artist``: at most this many tracks of one artist per answer (more are fetched as needed).
        Distances are Euclidean between unit vectors, sqrt(2 - 2 cos).
        """
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n_allowed = len(self.tracks) if allowed is None else int(allowed.sum())
        params = None if allowed is None else self._search_params(np.flatnonzero(allowed).astype(np.int64))
        fetch = min(k + (1 if exclude else 0), n_allowed)
        scores, rows = self.faiss.search(vectors, max(fetch, 1), params=params)  # every query in one call
        answers = []
        for q in range(len(vectors)):
            skip = exclude[q] if exclude else None
            found, more = self._kept(rows[q], scores[q], skip, max_per_artist), fetch
            while len(found) < k and more < n_allowed:  # an artist cap threw some out: look further
                more = min(4 * more, n_allowed)
                again = self.faiss.search(vectors[q : q + 1], more, params=params)
                found = self._kept(again[1][0], again[0][0], skip, max_per_artist)
            answers.append(
                [
                    Neighbour(
                        rank,
                        self.tracks.track_id.iat[r],
                        self.tracks.artist.iat[r],
                        float(np.sqrt(max(2.0 - 2.0 * s, 0.0))),
                        list(self.tracks.tags.iat[r]),
                    )
                    for rank, (r, s) in enumerate(found[:k], start=1)
                ]
            )
        return answers

    def _kept(
        self, rows: np.ndarray, scores: np.ndarray, skip: str | None, max_per_artist: int | None
    ) -> list[tuple[int, float]]:
        """(row, score) of the hits that count, in order: found, not ``skip``, within the artist cap."""
        kept, per_artist = [], {}
        for r, s in zip(rows, scores):
            if r < 0 or self.tracks.track_id.iat[r] == skip:
                continue
            artist = self.tracks.artist.iat[r]
            if max_per_artist is not None and per_artist.get(artist, 0) >= max_per_artist:
                continue
            per_artist[artist] = per_artist.get(artist, 0) + 1
            kept.append((int(r), float(s)))
        return kept

    def _search_params(self, ids: np.ndarray) -> faiss.SearchParameters:
        """Search parameters that keep only ``ids``, and the index's own search breadth."""
        selector = faiss.IDSelectorBatch(ids)
        if hasattr(self.faiss, "hnsw"):
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=self.faiss.hnsw.efSearch)
        elif (ivf := faiss.try_extract_index_ivf(self.faiss)) is not None:
            params = faiss.SearchParametersIVF(sel=selector, nprobe=ivf.nprobe)
        else:
            params = faiss.SearchParameters(sel=selector)
        params.keep_alive = selector  # the parameters hold a raw pointer to it
        return params

    def vector(self, track_id: str) -> np.ndarray:
        """The indexed embedding of a catalog track (KeyError for an unknown id)."""
        return self.faiss.reconstruct(self.position[track_id])


def resolve_index_folder(folder: str | Path) -> Path:
    """An index folder, or the run's default one: ``results/index`` holds ``default.json`` naming it."""
    folder = Path(folder)
    pointer = folder / "default.json"
    if not (folder / "identity.json").exists() and pointer.is_file():
        return folder / json.loads(pointer.read_text())["system"]
    return folder
