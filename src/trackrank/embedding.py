"""Track-level outputs of a model and the rankings they give (paper §3.4, §4.2).

A track is represented by ``n_patches`` random 96 x 512 patches (8 in the paper):
the mean of their embeddings for the TL systems, the mean of their tag likelihoods
for the auto-tagger. TL systems rank by ascending Euclidean distance; the
auto-tagger ranks by decreasing oracle S of the estimated tags.
"""

from __future__ import annotations

import numpy as np
import torch

from trackrank.feature_cache import PatchCache
from trackrank.ranking import top_ranked
from trackrank.similarity import Oracle


@torch.no_grad()
def track_outputs(model: torch.nn.Module, cache: PatchCache, tracks: np.ndarray, n_patches: int = 8,
                  seed: int = 0, batch_size: int = 64, device: str | torch.device = "cpu") -> np.ndarray:
    """Mean model output over ``n_patches`` seeded random patches of each track.

    Returns
    -------
    np.ndarray, shape (len(tracks), d or m), float32
    """
    model.eval()
    rng = np.random.default_rng([seed, 11])
    per_patch = np.repeat(tracks, n_patches)
    outputs = []
    for start in range(0, len(per_patch), batch_size):
        patches = torch.from_numpy(cache.patches(per_patch[start:start + batch_size], rng)).to(device)
        with torch.autocast(device_type=torch.device(device).type, enabled=torch.device(device).type == "cuda"):
            outputs.append(model(patches).float().cpu().numpy())
    return np.concatenate(outputs).reshape(len(tracks), n_patches, -1).mean(axis=1)


def rank_by_distance(embeddings: np.ndarray, k: int = 20) -> np.ndarray:
    """(n, k) indices of each track's nearest other tracks, nearest first (ties: track order)."""
    squared = (embeddings**2).sum(axis=1)
    distances = squared[:, None] + squared[None, :] - 2.0 * embeddings @ embeddings.T
    return np.stack([top_ranked(-distances[q], q, k) for q in range(len(embeddings))])


def rank_by_oracle(tags: np.ndarray, oracle_template: Oracle, k: int = 20) -> np.ndarray:
    """(n, k) indices ranked by decreasing S of estimated tags (the auto-tagger's retrieval)."""
    oracle = Oracle(tags, oracle_template.weights, oracle_template.categories, name=oracle_template.name,
                    function=oracle_template.function, category_weights=oracle_template.category_weight_map,
                    eps=oracle_template.eps)
    return np.stack([top_ranked(oracle.scores(q), q, k) for q in range(len(tags))])
