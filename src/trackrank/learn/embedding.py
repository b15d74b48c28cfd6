"""Track-level outputs of a trained model (paper §3.4, §4.2).

A track is represented by ``n_patches`` random 96 x 512 patches (8 in the paper):
the mean of their embeddings for the TL systems, the mean of their tag likelihoods
for the auto-tagger. The rankings they give are in :mod:`trackrank.rank.retrieval`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from trackrank.data.feature_cache import Cache, PatchCache
from trackrank.errors import CheckpointError, ConfigError
from trackrank.learn.checkpoints import load_checkpoint
from trackrank.learn.embedding_table import save_embeddings
from trackrank.learn.models import AutoTagger, build_model
from trackrank.learn.settings import TRUNK_SYSTEM, embedding_system, system_spec

log = logging.getLogger(__name__)


class TrunkEmbedding(torch.nn.Module):
    """An auto-tagger seen through its penultimate layer: ``forward`` is its ``embedding``, so its trunk
    ranks, and indexes, like a TL system's embedding."""

    def __init__(self, tagger: AutoTagger):
        super().__init__()
        self.tagger = tagger

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """(batch, 96, 512) -> (batch, trunk channels)."""
        return self.tagger.embedding(patches)


@torch.no_grad()
def mean_outputs(
    model: torch.nn.Module, batches: Iterable[np.ndarray], n_patches: int, *, device: str | torch.device = "cpu"
) -> np.ndarray:
    """The one embedder: the mean model output over each track's ``n_patches`` patches.

    ``batches`` yields whole tracks' patches, track after track, shape (tracks * n_patches, 96, 512);
    where the patches come from is the caller's choice (:func:`track_outputs`: seeded random patches
    of the cache; the cold-start index: patches spread evenly over a CQT). Returns (n_tracks, d or m).
    """
    model.eval()
    device = torch.device(device)
    means = []
    for patches in batches:
        with torch.autocast(device_type=device.type, enabled=device.type == "cuda"):
            outputs = model(torch.from_numpy(patches).to(device)).float().cpu().numpy()
        means.append(outputs.reshape(-1, n_patches, outputs.shape[-1]).mean(axis=1))
    return np.concatenate(means)


def track_outputs(
    model: torch.nn.Module,
    cache: PatchCache,
    tracks: np.ndarray,
    *,
    n_patches: int = 8,
    seed: int = 0,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Mean model output over ``n_patches`` seeded random patches of each track (``tracks``: cache
    positions), about ``batch_size`` patches per forward pass.

    Parameters
    ----------
    model : an embedding network (TL) or a tagger (its outputs are tag likelihoods in (0, 1)).
    cache, tracks : the patch cache and the cache positions of the tracks to embed.
    n_patches : patches of 512 frames (11.9 s) per track, >= 1, drawn from ``seed``.
    seed : the patches' random stream: every system embeds the same patches of a track.
    batch_size : patches per forward pass: memory (in eval mode a patch's output does not depend on the
        other patches of its batch, up to float rounding).
    device : where the forward passes run.

    Returns
    -------
    np.ndarray, shape (len(tracks), d or m), float32
    """
    rng = np.random.default_rng([seed, 11])
    per_batch = max(1, batch_size // n_patches)
    batches = (
        cache.patches(np.repeat(tracks[start : start + per_batch], n_patches), rng)
        for start in range(0, len(tracks), per_batch)
    )
    return mean_outputs(model, batches, n_patches, device=device)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """A trained system from its ``model.pt`` and its checkpoint; :class:`CheckpointError` names the file
    when it is unsafe, incomplete, or its weights or settings do not make a trackrank network."""
    checkpoint = load_checkpoint(path, device=device, keys=("model", "settings", "tags"))
    settings = checkpoint["settings"]
    try:
        architecture, _ = system_spec(settings["system"])
        model = build_model(architecture, n_tags=len(checkpoint["tags"]), dim=settings["dim"], width=settings["width"])
        model.load_state_dict(checkpoint["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{path}: its weights and settings do not make a trackrank network: {error}") from None
    return model.to(device).eval(), checkpoint


def load_embedder(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict, str]:
    """A trained checkpoint as an embedding network: (network, checkpoint, the embedding's system name).

    A TL system embeds with its own output; the auto-tagger outputs tag likelihoods, so its embedding is its
    trunk (:class:`TrunkEmbedding`), named :data:`TRUNK_SYSTEM`.
    """
    model, checkpoint = load_model(path, device)
    system = embedding_system(checkpoint["settings"]["system"])
    return (TrunkEmbedding(model).eval() if system == TRUNK_SYSTEM else model), checkpoint, system


def write_embeddings(
    model_path: str | Path,
    cache: Cache,
    *,
    track_ids: list[str],
    output: str | Path,
    n_patches: int = 8,
    seed: int = 0,
    device: str = "auto",
) -> pd.DataFrame:
    """Embed ``track_ids`` with a trained system into a Parquet table.

    TL systems: ``track_id``, ``embedding`` (fixed_size_list<float32, d>); the auto-tagger:
    ``track_id``, ``tags`` (fixed_size_list<float32, m>), the mean likelihoods.
    Tracks without features are left out (and logged).

    Parameters
    ----------
    model_path : a trained system's ``model.pt``.
    cache : the patch cache the tracks' CQT frames are read from.
    track_ids : the tracks to embed, in the order of the table written.
    output : the Parquet table.
    n_patches : random 96 x 512 patches (11.9 s each) averaged per track, >= 1 (paper: 8).
    seed : the patches' random stream; the same seed gives every system the same patches.
    device : ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    """
    device = choose_device(device)
    model, checkpoint = load_model(model_path, device)
    column = "tags" if system_spec(checkpoint["settings"]["system"])[0] == "fcn5_tagger" else "embedding"
    kept, _, table = embed_into(
        model, cache, track_ids=track_ids, output=output, column=column, n_patches=n_patches, seed=seed, device=device
    )
    log.info("embedded %d tracks with %s (%d patches each) on %s", len(kept), model_path, n_patches, device)
    return table.to_pandas()


def embed_into(
    model: torch.nn.Module,
    cache: Cache,
    *,
    track_ids: list[str],
    output: str | Path,
    column: str,
    n_patches: int,
    seed: int,
    device: torch.device,
) -> tuple[list[str], np.ndarray, pa.Table]:
    """The track outputs of ``model`` (on ``device``) for the ``track_ids`` that have features, written to
    ``output`` by :func:`save_embeddings`: (those ids, their (n, d) outputs, the table written).

    Parameters
    ----------
    model, cache : the network, already on ``device``, and the patch cache (one part or several).
    track_ids : the tracks to embed; those without features are left out and logged.
    output : the Parquet file written (``track_id`` and ``column``).
    column : the output column's name (``embedding`` or ``tags``).
    n_patches, seed : as :func:`track_outputs`'s.
    device : where the forward passes run.
    """
    cache = PatchCache(cache)
    kept = cache.with_features(track_ids)
    outputs = track_outputs(model, cache, cache.indices(kept), n_patches=n_patches, seed=seed, device=device)
    return kept, outputs, save_embeddings(kept, outputs, output=output, column=column)


def choose_device(name: str = "auto") -> torch.device:
    """CUDA when present (``auto``), or the device asked for; :class:`ConfigError` for a CUDA device
    this machine does not have (rather than a failure deep inside the first load or step)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ConfigError(f"device '{name}': not a device torch knows (auto, cpu or cuda): {error}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}': this machine has no CUDA device torch can use; use auto or cpu")
    return device
