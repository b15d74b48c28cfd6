"""Answers a catalog manager can read: each neighbour's strong tags, the query's tags, the tags they share.

A neighbour's tags are the catalog's (stored in the index when it is built). A catalog track queried
has its own catalog tags; a new file has none, so where the run trained the auto-tagger
(``at_baseline``) its tags are estimated from the audio, patch by patch as the index embeds it: cold-
start tagging is what the tagger is for. A tag is strong at a likelihood of at least
``train.tag_threshold`` (0.5), the threshold the tagger's targets were binarised at, for the catalog's tags
and the tagger's estimates alike.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from trackrank.data.features import even_patches
from trackrank.errors import CheckpointError
from trackrank.learn.embedding import load_model, mean_outputs
from trackrank.learn.settings import system_spec

#: Likelihood from which a tag is a track's (``train.tag_threshold``; the tagger's targets are cut there).
TAG_THRESHOLD = 0.5


def strong_tags(likelihoods: pd.DataFrame, threshold: float = TAG_THRESHOLD) -> list[list[str]]:
    """Each row's tags at ``threshold`` or above, most likely first (ties: column order)."""
    names = np.array(likelihoods.columns)
    values = likelihoods.to_numpy(np.float64)
    rows = []
    for row in values:
        chosen = np.flatnonzero(np.nan_to_num(row, nan=0.0) >= threshold)
        rows.append(names[chosen[np.argsort(-row[chosen], kind="stable")]].tolist())
    return rows


def shared(query_tags: list[str], tags: list[str]) -> list[str]:
    """The tags of ``tags`` (in its order) that the query has too."""
    wanted = set(query_tags)
    return [tag for tag in tags if tag in wanted]


def tagger_beside(model_path: str | Path) -> Path | None:
    """The run's trained auto-tagger, ``models/at_baseline/model.pt`` beside the index's model, if any."""
    candidate = Path(model_path).resolve().parent.parent / "at_baseline" / "model.pt"
    return candidate if candidate.is_file() else None


class TagEstimator:
    """The trained auto-tagger, estimating a new file's tags from the patches the index embeds."""

    def __init__(self, model_path: str | Path, device: torch.device, threshold: float = TAG_THRESHOLD):
        self.model, checkpoint = load_model(model_path, device)
        if system_spec(checkpoint["settings"]["system"])[0] != "fcn5_tagger":
            raise CheckpointError(
                f"{model_path} holds {checkpoint['settings']['system']}, not the auto-tagger (at_baseline): "
                "it estimates no tags"
            )
        self.path, self.device, self.threshold = Path(model_path), device, threshold
        self.names = list(checkpoint["tags"])

    def estimate(self, cqt: np.ndarray, n_patches: int) -> dict[str, float]:
        """The strong tags of a track's CQT (n_frames, 96), most likely first, with their likelihoods."""
        with torch.inference_mode():
            likelihoods = mean_outputs(self.model, [even_patches(cqt, n_patches)], n_patches, device=self.device)[0]
        table = pd.DataFrame([likelihoods], columns=self.names)
        return {tag: round(float(table.at[0, tag]), 3) for tag in strong_tags(table, self.threshold)[0]}
