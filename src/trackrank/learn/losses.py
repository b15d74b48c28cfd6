"""The triplet loss of the paper (§3.2), written once: every triplet system and its validation use it.

``max(||a - p||^2 - ||a - n||^2 + margin, 0)`` on L2-normalised embeddings. Offline batches
(:class:`~trackrank.learn.batches.TripletBatches`) feed it their table's triplets; online batches
choose theirs inside the batch (:mod:`trackrank.learn.online_mining`) and feed it the same way.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def triplet_hinge(d_positive: torch.Tensor, d_negative: torch.Tensor, margin: float) -> torch.Tensor:
    """``max(d_positive - d_negative + margin, 0)`` elementwise, on squared distances of any shape."""
    return F.relu(d_positive - d_negative + margin)


def semi_hard_negative(d_positive: torch.Tensor, d_negatives: torch.Tensor, closest: torch.Tensor) -> torch.Tensor:
    """FaceNet's semi-hard choice (Schroff et al. 2015) along the last axis of ``d_negatives``: the closest
    negative still farther from the anchor than the positive (``d_positive``, broadcast against it), else
    ``closest`` (the closest of all, which the caller has): online mining's ``semi_hard``."""
    inf = torch.tensor(float("inf"), device=d_negatives.device)
    farther = torch.where(d_negatives > d_positive, d_negatives, inf).min(dim=-1).values
    return torch.where(torch.isfinite(farther), farther, closest)


def triplet_loss(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    *,
    margin: float = 0.5,
    reduction: str = "mean",
) -> torch.Tensor:
    """The loss of triplets given row by row, shape (n, d) each: its mean over the batch, or with
    ``reduction="none"`` one value per triplet."""
    d_positive = (anchor - positive).pow(2).sum(dim=1)
    d_negative = (anchor - negative).pow(2).sum(dim=1)
    losses = triplet_hinge(d_positive, d_negative, margin)
    return losses if reduction == "none" else losses.mean()


def offline_triplet_loss(embeddings: torch.Tensor, pairs: int, margin: float) -> tuple[torch.Tensor, float]:
    """The triplet loss of an offline batch's embeddings, the mean over each pair against each of its table
    negatives (the paper's), and the share of those triplets that are active.

    ``embeddings``: the batch's ``pairs`` anchors, then their positives, then each pair's table negatives
    in pair order (:class:`~trackrank.learn.batches.TripletBatches`)."""
    anchor, positive, candidates = embeddings[:pairs], embeddings[pairs : 2 * pairs], embeddings[2 * pairs :]
    per_pair = candidates.shape[0] // pairs
    anchor, positive = anchor.repeat_interleave(per_pair, dim=0), positive.repeat_interleave(per_pair, dim=0)
    d_positive = (anchor - positive).pow(2).sum(dim=1).view(pairs, per_pair)  # equal along a row
    d_negative = (anchor - candidates).pow(2).sum(dim=1).view(pairs, per_pair)
    per_triplet = triplet_hinge(d_positive, d_negative, margin)
    return per_triplet.mean(), float((per_triplet > 0).float().mean())
