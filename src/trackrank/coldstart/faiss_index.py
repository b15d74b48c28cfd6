"""The FAISS structure that holds an index's vectors: exact search by default, HNSW or IVF for catalogs
past ~1 M tracks (on unit vectors the nearest by inner product are the nearest by Euclidean distance)."""

from __future__ import annotations

import faiss
import numpy as np

from trackrank.coldstart.settings import INDEX_KINDS
from trackrank.errors import ConfigError


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
