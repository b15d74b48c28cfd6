"""Building the nearest-neighbour index of the whole catalog for one trained embedding (cold start): a TL
system's, or the auto-tagger's trunk (``at_trunk``).

Why: a new, untagged track must get its catalog neighbours at once. Every valid catalog track
(all splits) is embedded from ``n_patches`` patches spread evenly over it (the same patches a
query gets, :func:`trackrank.coldstart.track_embeddings.embed_tracks`), L2-normalised, and put in a
FAISS index (:func:`trackrank.coldstart.faiss_index.new_faiss_index`): exact inner-product search by
default, HNSW or IVF for catalogs past ~1 M tracks. :mod:`trackrank.coldstart.search` opens it.

An index is three files in one folder:

- ``tracks.parquet``: ``track_id``, ``artist``, ``split``, ``path``, ``embedding`` (the row order
  of the FAISS index);
- ``vectors.faiss``: the FAISS index;
- ``identity.json``: what the vectors depend on (system, checkpoint SHA-256 and settings
  fingerprint, feature parameters, patches per track, catalog folder). A query with another
  model or other features is refused, since its vectors would not be comparable.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from trackrank.atomic import atomic_output
from trackrank.coldstart.explain import TAG_THRESHOLD, strong_tags
from trackrank.coldstart.faiss_index import new_faiss_index
from trackrank.coldstart.index_identity import FEATURES
from trackrank.coldstart.track_embeddings import embed_tracks, load_embedding_model
from trackrank.data.feature_cache import Cache, PatchCache, parts_of
from trackrank.errors import IndexMismatch
from trackrank.learn.embedding import choose_device

log = logging.getLogger(__name__)


def progress(items: list, what: str, every: int = 1000) -> Iterator:
    """``items`` with a tqdm bar on a terminal, else a log line every ``every`` items (cluster logs)."""
    if sys.stderr.isatty():
        yield from tqdm(items, desc=what, unit="track")
        return
    for done, item in enumerate(items, start=1):
        yield item
        if done % every == 0 or done == len(items):
            log.info("%s: %d of %d", what, done, len(items))


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
    embedded = _embedded_cache(net, cache, catalog, n_patches, device) if parts is None else read_index_parts(parts)
    table, vectors = _index_table(catalog, embedded, tags, tag_threshold)
    with atomic_output(out_tracks) as tmp:
        table.to_parquet(tmp, index=False)
    with atomic_output(out_vectors) as tmp:
        faiss.write_index(new_faiss_index(vectors, kind=kind), str(tmp))
    identity.update(_built_with(model, table, vectors, n_patches, kind, catalog_dir, tags=tags, taxonomy=taxonomy))
    with atomic_output(out_identity) as tmp:
        tmp.write_text(json.dumps(identity, indent=2) + "\n")
    dim = vectors.shape[1]
    log.info(
        "indexed %d tracks with %s (%s, d=%d, %d patches each)", len(table), identity["system"], kind, dim, n_patches
    )
    return table


def _embedded_cache(
    net: torch.nn.Module, cache: Cache, catalog: pd.DataFrame, n_patches: int, device: torch.device
) -> pd.DataFrame:
    """``track_id``, ``embedding`` of the tracks the patch cache holds: part by part, as the workflow's
    index_part jobs embed them (:func:`embed_catalog_part`), so both give the same bytes."""
    return pd.concat(
        [_embedded_part(net, PatchCache(part), catalog.track_id, n_patches=n_patches, device=device)
         for part in parts_of(cache)],
        ignore_index=True,
    )  # fmt: skip


def _index_table(
    catalog: pd.DataFrame, embedded: pd.DataFrame, tags: str | Path | None, tag_threshold: float
) -> tuple[pd.DataFrame, np.ndarray]:
    """The index's ``tracks.parquet`` table (the catalog tracks that have features, in catalog order, with
    their strong tags where ``tags`` is given) and its vectors, row for row."""
    kept = catalog[catalog.track_id.isin(embedded.track_id)].reset_index(drop=True)
    if len(kept) < len(catalog):
        log.warning("%d of %d tracks have no features and are left out", len(catalog) - len(kept), len(catalog))
    vectors = np.stack(embedded.set_index("track_id").loc[kept.track_id, "embedding"].to_list()).astype(np.float32)
    table = kept[["track_id", "artist", "split", "path"]].assign(embedding=list(vectors))
    if tags is not None:
        likelihoods = pd.read_parquet(tags).set_index("track_id").reindex(kept.track_id)
        table["tags"] = strong_tags(likelihoods, tag_threshold)
    return table, vectors


def _built_with(
    model: str | Path,
    table: pd.DataFrame,
    vectors: np.ndarray,
    n_patches: int,
    kind: str,
    catalog_dir: str | Path | None,
    *,
    tags: str | Path | None,
    taxonomy: str | Path | None,
) -> dict:
    """What ``identity.json`` records beside the model's identity: how the index was built, the folder audio
    may be streamed from (None: the deepest folder holding every track's file) and, with ``tags``, each tag's
    category."""
    if catalog_dir is None:
        catalog_dir = os.path.commonpath([str(Path(p).resolve().parent) for p in table.path])
    built = {
        "model_path": str(Path(model).resolve()),
        "features": FEATURES,
        "n_patches": n_patches,
        "kind": kind,
        "dim": int(vectors.shape[1]),
        "n_tracks": len(table),
        "catalog_dir": str(Path(catalog_dir).resolve()),
    }
    if tags is not None:
        built["tag_categories"] = _tag_categories(tags, taxonomy)
    return built


def _tag_categories(tags: str | Path, taxonomy: str | Path | None) -> dict[str, str]:
    """Each tag column of ``tags`` -> its category in ``taxonomy`` ('' where none is known), so that
    filters may name ``Category=tag``."""
    names = [c for c in pd.read_parquet(tags).columns if c != "track_id"]
    known = pd.read_csv(taxonomy, keep_default_na=False) if taxonomy is not None else None
    by_tag = dict(zip(known.tag, known.category)) if known is not None else {}
    return {tag: by_tag.get(tag, "") for tag in names}
