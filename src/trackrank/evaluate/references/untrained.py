"""The ``untrained`` reference: the TL network at its initialisation, used as an embedding.

Why a reference: a random convolutional network on a log-CQT is already a fair audio
descriptor (its filters average nearby bins and frames, and the L2-normalised output keeps
loudness and spectral balance), so a trained system that does not beat the very network it
started from has learnt nothing from the rankings. The network is built exactly as a
training run of the same seed, width and dimension starts (:func:`trackrank.learn.models.build_model`
with that seed: epoch 0 of a TL system's ``history.csv``), and each test track is the mean of
the same seeded patches every system sees (:func:`trackrank.learn.embedding.track_outputs`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from trackrank.data.feature_cache import Cache
from trackrank.learn.embedding import choose_device, embed_into
from trackrank.learn.models import build_model

log = logging.getLogger(__name__)


def write_untrained_embeddings(
    cache: Cache,
    track_ids: list[str],
    *,
    output: str | Path,
    width: float = 1.0,
    dim: int = 128,
    n_patches: int = 8,
    seed: int = 0,
    device: str = "auto",
) -> pd.DataFrame:
    """Embed ``track_ids`` by the untrained TL network of ``seed`` into ``output`` (``track_id``, ``embedding``).

    Parameters
    ----------
    width : filter-count factor of the network (``train.width``; the paper's is 1).
    dim : embedding dimension (``train.dim``).
    n_patches : patches per track, averaged (``evaluate.n_patches``).
    seed : the run's seed: the initial weights of its TL systems, and the patches drawn.
    """
    device = choose_device(device)
    model = build_model("triplet", dim=dim, width=width, seed=seed).to(device)
    kept, _, table = embed_into(
        model,
        cache,
        track_ids=track_ids,
        output=output,
        column="embedding",
        n_patches=n_patches,
        seed=seed,
        device=device,
    )
    log.info(
        "untrained: embedded %d tracks with the TL network of seed %d at width %g on %s", len(kept), seed, width, device
    )
    return table.to_pandas()
