"""A nearest-neighbour index of the whole catalog for one trained embedding (cold start): a TL system's, or
the auto-tagger's trunk (``at_trunk``).

Why: a new, untagged track must get its catalog neighbours at once. Every valid catalog track
(all splits) is embedded from ``n_patches`` patches spread evenly over it (the same patches a
query gets, :func:`trackrank.data.features.even_patches`), L2-normalised, and put in a FAISS index:
exact inner-product search by default (``IndexFlatIP``; on unit vectors the nearest by inner
product are the nearest by Euclidean distance), HNSW or IVF for catalogs past ~1 M tracks.

An index is three files in one folder:

- ``tracks.parquet``: ``track_id``, ``artist``, ``split``, ``path``, ``embedding`` (the row order
  of the FAISS index);
- ``vectors.faiss``: the FAISS index;
- ``identity.json``: what the vectors depend on (system, checkpoint SHA-256 and settings
  fingerprint, feature parameters, patches per track, catalog folder). A query with another
  model or other features is refused, since its vectors would not be comparable.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch
from tqdm import tqdm

from trackrank.atomic import atomic_output
from trackrank.coldstart.explain import TAG_THRESHOLD, strong_tags
from trackrank.coldstart.index_lock import check_interrupted
from trackrank.coldstart.settings import INDEX_KINDS
from trackrank.data.audio import SAMPLE_RATE
from trackrank.data.feature_cache import Cache, PatchCache, parts_of
from trackrank.data.features import AMIN, BINS_PER_OCTAVE, FMIN, HOP_LENGTH, N_BINS, PATCH_FRAMES, even_patches
from trackrank.digests import file_sha256
from trackrank.errors import ConfigError, IndexMismatch
from trackrank.learn.checkpoints import load_checkpoint
from trackrank.learn.embedding import choose_device, load_embedder, mean_outputs
from trackrank.learn.settings import embedding_system

log = logging.getLogger(__name__)

#: What a CQT patch depends on; an index built with other values cannot take this code's queries.
FEATURES = {
    "sample_rate": SAMPLE_RATE,
    "n_bins": N_BINS,
    "bins_per_octave": BINS_PER_OCTAVE,
    "fmin": FMIN,
    "hop_length": HOP_LENGTH,
    "patch_frames": PATCH_FRAMES,
    "amin": AMIN,
    "dtype": "float16",
}
INDEX_FILES = ("tracks.parquet", "vectors.faiss", "identity.json")


def model_identity(model_path: str | Path, checkpoint: dict, system: str | None = None) -> dict:
    """The embedding's system (``system``, else the checkpoint's), checkpoint hash and settings fingerprint."""
    settings = checkpoint["settings"]
    fingerprint = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return {
        "system": system or settings["system"],
        "model_sha256": file_sha256(model_path),
        "settings_fingerprint": fingerprint,
    }


def load_embedding_model(model_path: str | Path, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """A trained system's embedding network and its identity: a TL system's own output, or the auto-tagger's
    trunk (``at_trunk``, :func:`trackrank.learn.embedding.load_embedder`)."""
    model, checkpoint, system = load_embedder(model_path, device)
    return model, model_identity(model_path, checkpoint, system)


def trained_embedding(model_path: str | Path) -> str:
    """The system name of the embedding a trained model.pt gives (``at_trunk`` for the auto-tagger): the
    name of its index folder."""
    return embedding_system(load_checkpoint(model_path, keys=("settings",))["settings"]["system"])


def embed_tracks(
    model: torch.nn.Module,
    cqts: Iterable[np.ndarray],
    *,
    n_patches: int = 8,
    device: torch.device | None = None,
    tracks_per_batch: int = 8,
) -> np.ndarray:
    """Unit-norm track embeddings: the mean over ``n_patches`` evenly spread patches, L2-normalised.

    ``cqts`` yields (n_frames, 96) matrices; returns (n_tracks, d) float32. ``device``: the model's (CPU if None).
    """
    patches = (even_patches(cqt, n_patches) for cqt in cqts)
    batches = iter(lambda: list(itertools.islice(patches, tracks_per_batch)), [])
    vectors = mean_outputs(model, (np.concatenate(batch) for batch in batches), n_patches, device=device or "cpu")
    vectors = vectors.astype(np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def progress(items: list, what: str, every: int = 1000) -> Iterator:
    """``items`` with a tqdm bar on a terminal, else a log line every ``every`` items (cluster logs)."""
    if sys.stderr.isatty():
        yield from tqdm(items, desc=what, unit="track")
        return
    for done, item in enumerate(items, start=1):
        yield item
        if done % every == 0 or done == len(items):
            log.info("%s: %d of %d", what, done, len(items))


def new_faiss_index(
    vectors: np.ndarray, *, kind: str = "exact", hnsw_m: int = 32, ivf_lists: int | None = None, seed: int = 0
) -> faiss.Index:
    """An inner-product FAISS index holding ``vectors`` (unit rows): exact, HNSW or IVF."""
    n, dim = vectors.shape
    if kind == "exact":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
    elif kind == "ivf":
        lists = ivf_lists or max(1, min(int(4 * np.sqrt(n)), n // 39 or 1))  # FAISS wants >= 39 points per list
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.train(vectors)
        index.nprobe = min(lists, 16)
    else:
        raise ConfigError(f"index.kind '{kind}': expected one of {', '.join(INDEX_KINDS)}")
    index.add(vectors)
    return index


def embed_catalog_part(
    *,
    model: str | Path,
    cache: Cache,
    tracks: str | Path,
    output: str | Path | None = None,
    n_patches: int = 8,
    device: str = "auto",
) -> pd.DataFrame:
    """One part of the index: the catalog tracks that ``cache`` holds, embedded, in catalog order.

    Why parts: the workflow embeds one feature shard's cache part per job (a million-track catalog
    is many jobs, each on its own GPU or cores) and :func:`build_index` merges them; a track's vector
    depends on the tracks batched with it only through float rounding, so the whole catalog embedded
    at once (``trackrank index``) goes part by part too, and both give the same bytes.

    Parameters
    ----------
    model : a trained system's model.pt (a TL system's embedding, or the auto-tagger's trunk).
    cache : one part of the patch cache (or several, embedded as one).
    tracks : the validated catalog's ``tracks.parquet``: the order of the rows.
    output : where to write the part (Parquet: ``track_id``, ``embedding``); None: not written.
    n_patches : patches (11.87 s each) spread evenly over a track, averaged (>= 1).
    device : ``auto``, ``cpu`` or ``cuda``.
    """
    device = choose_device(device)
    net, _ = load_embedding_model(model, device)
    catalog_ids = pd.read_parquet(tracks, columns=["track_id"])["track_id"]
    table = _embedded_part(net, PatchCache(cache), catalog_ids, n_patches=n_patches, device=device)
    if output is not None:
        with atomic_output(output) as tmp:
            table.to_parquet(tmp, index=False)
    return table


def _embedded_part(
    net: torch.nn.Module, cache: PatchCache, catalog_ids: Iterable[str], *, n_patches: int, device: torch.device
) -> pd.DataFrame:
    """``track_id``, ``embedding`` of the catalog tracks ``cache`` holds, in catalog order."""
    kept = [t for t in catalog_ids if t in cache.position]
    frames = (cache.frames(p) for p in progress(list(cache.indices(kept)), "indexing"))
    vectors = embed_tracks(net, frames, n_patches=n_patches, device=device) if kept else []
    return pd.DataFrame({"track_id": kept, "embedding": list(vectors)})


def read_index_parts(parts: Sequence[str | Path]) -> pd.DataFrame:
    """The index parts written by :func:`embed_catalog_part`, as one table (``track_id``, ``embedding``)."""
    table = pd.concat([pd.read_parquet(part) for part in parts], ignore_index=True)
    twice = table.loc[table.track_id.duplicated(), "track_id"]
    if len(twice):
        raise IndexMismatch(f"track '{twice.iloc[0]}' is in more than one index part ({', '.join(map(str, parts))})")
    return table


def build_index(
    *,
    model: str | Path,
    tracks: str | Path,
    catalog_dir: str | Path | None,
    out_tracks: str | Path,
    out_vectors: str | Path,
    out_identity: str | Path,
    cache: Cache | None = None,
    parts: Sequence[str | Path] | None = None,
    tags: str | Path | None = None,
    taxonomy: str | Path | None = None,
    n_patches: int = 8,
    kind: str = "exact",
    tag_threshold: float = TAG_THRESHOLD,
    device: str = "auto",
) -> pd.DataFrame:
    """Write the index's three files from every catalog track that has features, in catalog order.

    Tracks without features (rejected by the feature stage) are left out and counted in the log.

    Parameters
    ----------
    model : a trained system's model.pt: a TL system's embedding, or the auto-tagger's trunk (``at_trunk``).
    tracks : the validated catalog's ``tracks.parquet``.
    catalog_dir : the folder ``trackrank serve`` may stream audio from; None: the deepest folder holding
        every track's file.
    out_tracks, out_vectors, out_identity : the index's three files.
    cache : the patch cache, embedded here part by part (:func:`embed_catalog_part`); or
    parts : the index parts the workflow's jobs embedded with ``n_patches`` (one of the two).
    tags : the validated catalog's ``tags.parquet``, whose strong tags (likelihood >= ``tag_threshold``,
        in [0, 1]) the index keeps to explain its answers and to filter on; None: neither.
    taxonomy : the catalog's ``taxonomy.csv``, so filters may name ``Category=tag``.
    n_patches : patches (11.87 s each) spread evenly over a track, averaged; queries use the same (>= 1).
    kind : ``exact``, ``hnsw`` or ``ivf`` (:data:`~trackrank.coldstart.settings.INDEX_KINDS`).
    device : ``auto``, ``cpu`` or ``cuda`` (for ``cache``).
    """
    if (cache is None) == (parts is None):
        raise ValueError("build_index: give the patch cache or the index parts, one of the two")
    device = choose_device(device) if parts is None else torch.device("cpu")  # the parts need no network
    net, identity = load_embedding_model(model, device)
    catalog = pd.read_parquet(tracks)
    if parts is None:  # part by part, as the workflow's index_part jobs embed them
        embedded = pd.concat(
            [_embedded_part(net, PatchCache(part), catalog.track_id, n_patches=n_patches, device=device)
             for part in parts_of(cache)],
            ignore_index=True,
        )  # fmt: skip
    else:
        embedded = read_index_parts(parts)
    kept = catalog[catalog.track_id.isin(embedded.track_id)].reset_index(drop=True)
    if len(kept) < len(catalog):
        log.warning("%d of %d tracks have no features and are left out", len(catalog) - len(kept), len(catalog))
    vectors = np.stack(embedded.set_index("track_id").loc[kept.track_id, "embedding"].to_list()).astype(np.float32)
    table = kept[["track_id", "artist", "split", "path"]].assign(embedding=list(vectors))
    if tags is not None:
        likelihoods = pd.read_parquet(tags).set_index("track_id").reindex(kept.track_id)
        table["tags"] = strong_tags(likelihoods, tag_threshold)
    with atomic_output(out_tracks) as tmp:
        table.to_parquet(tmp, index=False)
    with atomic_output(out_vectors) as tmp:
        faiss.write_index(new_faiss_index(vectors, kind=kind), str(tmp))
    if catalog_dir is None:
        catalog_dir = os.path.commonpath([str(Path(p).resolve().parent) for p in table.path])
    identity.update(
        model_path=str(Path(model).resolve()),
        features=FEATURES,
        n_patches=n_patches,
        kind=kind,
        dim=int(vectors.shape[1]),
        n_tracks=len(table),
        catalog_dir=str(Path(catalog_dir).resolve()),
    )
    if tags is not None:
        names = [c for c in pd.read_parquet(tags).columns if c != "track_id"]
        known = pd.read_csv(taxonomy, keep_default_na=False) if taxonomy is not None else None
        by_tag = dict(zip(known.tag, known.category)) if known is not None else {}
        identity["tag_categories"] = {tag: by_tag.get(tag, "") for tag in names}
    with atomic_output(out_identity) as tmp:
        tmp.write_text(json.dumps(identity, indent=2) + "\n")
    log.info(
        "indexed %d tracks with %s (%s, d=%d, %d patches each)",
        len(table),
        identity["system"],
        kind,
        vectors.shape[1],
        n_patches,
    )
    return table


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
        """Refuse a model (``found``: its :func:`model_identity`) other than the one the index was built with:
        its vectors would not be comparable."""
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
