"""Learning the ranking by S itself: a listwise loss over the batch (``tl_listwise``, beyond the paper).

A triplet loss reads a handful of orderings of a batch and throws the rest away. Here every patch of a
batch is an anchor, and the list of the batch's other patches is ranked twice: by the model (a softmax
over ``-distance / temperature``) and by S between their tracks (a softmax over ``S / target_temperature``).
The loss pulls the first distribution toward the second: ListNet's top-one cross-entropy (Cao, Qin,
Liu, Tsai & Li, "Learning to Rank: From Pairwise Approach to Listwise Approach", ICML 2007), written
here as the Kullback-Leibler divergence (the cross-entropy less the targets' entropy, which the model
cannot change), so that 0 means the model's distribution is S's. Tracks that S ties get equal targets.

S comes from the train split's tags with the run's configured S (a user's S included), computed for the
batch's tracks as each batch is drawn (:class:`BatchSimilarity`): not the stored top-k rankings, which
say nothing about the tracks beyond k.
"""

from __future__ import annotations

import numpy as np
import torch

from trackrank.rank.similarity import Oracle


def squared_distances(embeddings: torch.Tensor) -> torch.Tensor:
    """(B, B) squared Euclidean distances, smooth everywhere (no square root at distance 0)."""
    norms = embeddings.pow(2).sum(dim=1)
    return (norms[:, None] + norms[None, :] - 2 * embeddings @ embeddings.T).clamp_min(0)


def listnet_targets(similarity: torch.Tensor, target_temperature: float) -> torch.Tensor:
    """Each anchor's (row's) target distribution over the other patches: softmax of ``S / target_temperature``,
    0 for the anchor itself. Equal S, equal targets."""
    itself = torch.eye(len(similarity), dtype=torch.bool, device=similarity.device)
    return torch.softmax((similarity.float() / target_temperature).masked_fill(itself, float("-inf")), dim=1)


def listnet_loss(
    embeddings: torch.Tensor, similarity: torch.Tensor, *, temperature: float, target_temperature: float
) -> torch.Tensor:
    """The batch's listwise loss: mean over anchor patches of KL(S's top-one distribution || the model's).

    Parameters
    ----------
    embeddings : (B, d) embeddings of the batch's patches (L2-normalised by the TL networks).
    similarity : (B, B) S between the patches' tracks, row = anchor (S of a track with itself on the
        diagonal is not read: a patch is not in its own list; another patch of the same track is, with it).
    temperature : scale of the model's squared distances (in [0, 4] for unit vectors).
    target_temperature : scale of S.
    """
    itself = torch.eye(len(embeddings), dtype=torch.bool, device=embeddings.device)
    logits = (-squared_distances(embeddings.float()) / temperature).masked_fill(itself, float("-inf"))
    log_model = torch.log_softmax(logits, dim=1).masked_fill(itself, 0.0)
    targets = listnet_targets(similarity, target_temperature)
    return (torch.xlogy(targets, targets) - targets * log_model).sum(dim=1).mean()


class BatchSimilarity:
    """S between any tracks of the train split, computed for a batch's tracks from their tags.

    ``oracle``: the train split's Oracle (:func:`~trackrank.rank.similarity.split_oracle`, with the run's S);
    ``rows``: the oracle row of each train track, in the training data's train track order.
    """

    def __init__(self, oracle: Oracle, rows: np.ndarray):
        self.oracle, self.rows = oracle, np.asarray(rows, dtype=np.int64)

    def between(self, tracks: np.ndarray) -> np.ndarray:
        """(n, n) S among ``tracks`` (positions in the train track order; repeats allowed), row = anchor."""
        distinct, inverse = np.unique(tracks, return_inverse=True)
        batch = self.oracle.with_tags(self.oracle.tags[self.rows[distinct]])
        scores = np.stack([batch.scores(i) for i in range(len(distinct))])
        return scores[inverse][:, inverse].astype(np.float32)
