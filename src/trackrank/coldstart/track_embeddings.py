"""Track embeddings as the index holds them: the mean over patches spread evenly over a track, unit length.

Why one place: a catalog track and a query must be embedded exactly alike (same model, same patches, same
normalisation), or the nearest neighbours of a query mean nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from trackrank.coldstart.index_identity import model_identity
from trackrank.data.features import even_patches
from trackrank.learn.embedding import load_embedder, mean_outputs


def load_embedding_model(model_path: str | Path, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """A trained system's embedding network and its identity: a TL system's own output, or the auto-tagger's
    trunk (``at_trunk``, :func:`trackrank.learn.embedding.load_embedder`)."""
    model, checkpoint, system = load_embedder(model_path, device)
    return model, model_identity(model_path, checkpoint, system)


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
