"""The ``at_trunk`` reference: the trained auto-tagger's penultimate layer as a Euclidean embedding.

Why a reference: the paper's claim is that learning the ranking (triplet loss) beats ranking
through tags (the auto-tagger and S). A third reading separates the two: the auto-tagger's own
audio representation, the flattened trunk output before dropout and FC(m)
(:meth:`trackrank.learn.models.AutoTagger.embedding`), ranked by Euclidean distance like a TL
system, with no extra training. If it ranks as well as TL, the triplet loss adds little
over tag supervision; if worse, ranking by distance needs the metric learning.

Each test track is the mean over the same ``n_patches`` seeded patches that
:func:`trackrank.learn.embedding.track_outputs` draws for every system, so the comparison with
``at_baseline`` sees the same audio.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from trackrank.data.feature_cache import Cache
from trackrank.errors import CheckpointError
from trackrank.learn.embedding import choose_device, embed_into, load_embedder
from trackrank.learn.settings import TRUNK_SYSTEM

log = logging.getLogger(__name__)


def write_trunk_embeddings(
    model_path: str | Path,
    cache: Cache,
    *,
    track_ids: list[str],
    output: str | Path,
    n_patches: int = 8,
    seed: int = 0,
    device: str = "auto",
) -> pd.DataFrame:
    """Embed ``track_ids`` by the auto-tagger's trunk into ``output`` (``track_id``, ``embedding``).

    Tracks without features are left out (and logged), as :func:`trackrank.learn.embedding.write_embeddings`
    does, so the ids match the evaluation's test tracks.

    Parameters
    ----------
    model_path : a trained auto-tagger's ``model.pt``; its trunk's flattened output
        (before dropout and the tag layer) embeds.
    cache : the patch cache (one part or several).
    track_ids, output : the tracks to embed and the Parquet file written.
    n_patches : patches per track, averaged (``evaluate.n_patches``).
    seed : the patches' random stream, as every system's.
    device : ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    """
    device = choose_device(device)
    model, checkpoint, system = load_embedder(model_path, device)
    if system != TRUNK_SYSTEM:
        raise CheckpointError(
            f"{model_path} holds system '{checkpoint['settings']['system']}', not the auto-tagger "
            "(at_baseline): at_trunk needs its trunk"
        )
    kept, outputs, table = embed_into(
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
        "at_trunk: embedded %d tracks with the trunk of %s (%d dimensions, %d patches each) on %s",
        len(kept),
        model_path,
        outputs.shape[1],
        n_patches,
        device,
    )
    return table.to_pandas()
