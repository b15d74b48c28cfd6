"""The triplet loss of the paper (§3.2), written once: every triplet system and its validation use it,
and the choices of an offline batch's negatives (:data:`OFFLINE_NEGATIVES`).

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


class OfflineNegatives:
    """How the (anchor, positive) pairs of an offline batch meet their negatives in the loss
    (``train.offline_negatives``). An offline batch's embeddings are its ``pairs`` anchors, then their
    positives, then each pair's table negatives (:class:`~trackrank.learn.batches.TripletBatches`)."""

    #: it needs the anchors' oracle ranks of the batch's tracks (the train split's rankings)
    needs_ranks = False

    def loss(
        self, embeddings: torch.Tensor, pairs: int, margin: float, anchor_ranks: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, float]:
        """The batch's triplet loss and its share of active triplets."""
        raise NotImplementedError


class TableNegatives(OfflineNegatives):
    """``all``, the paper's: the mean over every (pair, table negative)."""

    def loss(self, embeddings, pairs, margin, anchor_ranks=None):
        anchor, positive, candidates = embeddings[:pairs], embeddings[pairs : 2 * pairs], embeddings[2 * pairs :]
        per_pair = candidates.shape[0] // pairs
        anchor, positive = anchor.repeat_interleave(per_pair, dim=0), positive.repeat_interleave(per_pair, dim=0)
        per_triplet = triplet_loss(anchor, positive, candidates, margin=margin, reduction="none")
        return per_triplet.mean(), float((per_triplet > 0).float().mean())


class BatchNegatives(OfflineNegatives):
    """``batch``: every patch of the batch is a negative of a pair whose anchor's oracle ranking puts its
    track after the positive (:func:`in_batch_triplet_loss`; ``anchor_ranks`` gives those ranks)."""

    needs_ranks = True

    def loss(self, embeddings, pairs, margin, anchor_ranks=None):
        if anchor_ranks is None:
            raise ValueError("offline negatives 'batch' need the anchors' ranks of the batch's tracks")
        return in_batch_triplet_loss(embeddings, anchor_ranks, margin)


#: ``train.offline_negatives`` by name
OFFLINE_NEGATIVES = {"all": TableNegatives(), "batch": BatchNegatives()}


def offline_negatives(name: str) -> OfflineNegatives:
    """The choice of negatives ``train.offline_negatives`` names."""
    if name not in OFFLINE_NEGATIVES:
        raise ValueError(f"unknown offline negatives '{name}': expected all or batch")
    return OFFLINE_NEGATIVES[name]


def in_batch_triplet_loss(
    embeddings: torch.Tensor, anchor_ranks: torch.Tensor, margin: float
) -> tuple[torch.Tensor, float]:
    """Offline pairs against every negative their batch holds: the mean loss over each (pair, patch) whose
    track the pair's anchor ranks strictly after its positive (S scores it lower: a tie is no negative),
    and the share of those triplets that are active.

    ``embeddings``: an offline batch (``pairs`` anchors, then their positives, then the table's
    negatives); ``anchor_ranks`` (pairs, batch): the rank of each patch's track in each anchor's oracle
    ranking (0: the anchor's own track). Why: a pair's table negatives are a few of the ~100 other tracks
    the batch already embeds, and those are valid negatives too at no extra patch to embed; on ``scores``
    this lifted the paper's offline system where more table negatives per pair (at more patches) did not.
    """
    pairs = anchor_ranks.shape[0]
    pair = torch.arange(pairs, device=embeddings.device)
    distances = (embeddings[:pairs, None, :] - embeddings[None, :, :]).pow(2).sum(dim=2)  # (pairs, batch)
    d_positive = distances[pair, pairs + pair]
    valid = anchor_ranks > anchor_ranks[pair, pairs + pair][:, None]
    if not valid.any():
        return embeddings.sum() * 0.0, 0.0
    losses = triplet_hinge(d_positive[:, None], distances, margin)[valid]
    return losses.mean(), float((losses > 0).float().mean())
