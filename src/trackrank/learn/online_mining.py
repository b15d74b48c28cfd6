"""Online triplet mining from the oracle ranking (the paper's "future work", §5).

The paper mines its triplets offline, before training (§3.2). Here a mini-batch holds
P train tracks x K random patches each, and the triplets are chosen *inside* the batch
at every step:

* the **oracle ranking** decides which triplets are valid: patch j may be a positive for
  anchor patch i when its track is among the first Np tracks of the anchor track's
  ranking, or is the anchor track itself (another patch of it: rank 0); patch k may be
  a negative for that pair only when the anchor's ranking puts its track strictly after
  the positive's, S scoring it lower (a track tied with the positive is no negative).
  A pair the ranking calls wrong is never used, whatever the model says.
* the **model's current embeddings** decide which valid triplets are useful:

  - ``semi_hard`` (Schroff, Kalenichenko & Philbin, "FaceNet", CVPR 2015): for each
    (anchor, positive) pair, the valid negative closest to the anchor among those
    farther than the positive; where there is none (every valid negative is closer than
    the positive), the closest valid negative: the hard one. One triplet per pair; the
    loss is the mean over pairs.
  - ``hard``: the closest valid negative of each pair (batch-hard in the spirit of
    Hermans, Beyer & Leibe, "In Defense of the Triplet Loss for Person
    Re-Identification", 2017, but per (anchor, positive) pair, not per anchor, since
    positives here are graded by rank rather than one class).
  - ``batch_all`` (Hermans et al. 2017, "BA"): every valid triplet; the loss is the mean
    over the active ones (non-zero loss), so the easy majority does not dilute it.

Distances are squared Euclidean between the L2-normalised embeddings, the margin that
of the paper's loss. Batches make sure positives exist: half of the P tracks are drawn
uniformly, and each of those brings one of its first Np ranked tracks.

``active_fraction`` (logged per epoch) is, in every mode, the share of the batch's
valid triplets whose loss is non-zero: how much the embedding still violates the
ranking inside a batch.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from trackrank.errors import ConfigError
from trackrank.learn.losses import semi_hard_negative, triplet_hinge
from trackrank.rank.parts import TableParts, read_parts

MINING_MODES = ("semi_hard", "hard", "batch_all")


class RankLookup:
    """Rank of track o in track a's oracle ranking, for any two train tracks, ties shared.

    Built from a rankings table (``anchor``, ``rank``, ``other``, ``score``) that stores each
    anchor's top K. Tracks that S scores equally share the rank of the first of them (a
    "1224" competition rank): the ranking orders a tie by track order alone, and the paper's
    triplet needs a positive *more* similar than its negative (§3.2), so a track tied with the
    positive must never be its negative (with binary tags, ties are everywhere). A track beyond
    the stored K shares the last stored track's rank when the list was cut (it may score the same:
    after every stored track is exact for the question asked here as long as Np < K), and is
    ranked after all of them when the list holds the whole split. A track's rank in its own
    ranking is 0.
    """

    def __init__(self, rankings: TableParts, track_ids: list[str]):
        table = read_parts(rankings, columns=["anchor", "rank", "other", "score"]).to_pandas()
        position = {t: i for i, t in enumerate(track_ids)}
        anchor_ids = table["anchor"].astype(str)
        anchors = anchor_ids.map(position)
        others = table["other"].astype(str).map(position)
        kept = anchors.notna() & others.notna()
        # ties share the rank of their first track (scores are rounded, so equal means tied)
        shared = table.groupby([anchor_ids, "score"], sort=False)["rank"].transform("min")
        self.beyond = int(table["rank"].max()) + 1 if len(table) else 1
        self.ranks = sp.csr_matrix(
            (
                shared[kept].to_numpy(np.int32),
                (anchors[kept].to_numpy(np.int64), others[kept].to_numpy(np.int64)),
            ),
            shape=(len(track_ids), len(track_ids)),
        )
        # what an unstored track ranks for each anchor: after every stored one, or, where the list was cut
        # (fewer stored than the split's other tracks), tied with the last stored one: it may score the same
        self.tail = np.full(len(track_ids), self.beyond, dtype=np.int64)
        last = table["rank"].groupby(anchor_ids).idxmax()  # each anchor's last stored row
        last_anchor = anchors[last]
        last = table.loc[last]
        cut = last_anchor.notna().to_numpy() & (last["rank"].to_numpy() < len(track_ids) - 1)
        self.tail[last_anchor[cut].to_numpy(np.int64)] = shared.loc[last.index].to_numpy()[cut]
        self.n_tracks = len(track_ids)

    def submatrix(self, tracks: np.ndarray) -> np.ndarray:
        """(len, len) ranks among ``tracks`` (positions in ``track_ids``); row = anchor."""
        ranks = self.ranks[tracks][:, tracks].toarray()
        unstored = ranks == 0
        ranks[unstored] = np.broadcast_to(self.tail[tracks][:, None], ranks.shape)[unstored]
        ranks[tracks[:, None] == tracks[None, :]] = 0
        return ranks

    def first(self, track: int, n_positives: int) -> np.ndarray:
        """The tracks ranked 1..n_positives in ``track``'s ranking (with every track tied with them)."""
        row = self.ranks[track]
        return row.indices[(row.data >= 1) & (row.data <= n_positives)]


def sample_batch_tracks(lookup: RankLookup, *, n_tracks: int, n_positives: int, rng: np.random.Generator) -> np.ndarray:
    """``n_tracks`` distinct train tracks: half drawn uniformly, each with one of its first Np."""
    n_tracks = min(n_tracks, lookup.n_tracks)
    chosen: list[int] = []
    seen: set[int] = set()
    for seed_track in rng.permutation(lookup.n_tracks):
        if len(chosen) >= n_tracks:
            break
        if seed_track in seen:
            continue
        chosen.append(int(seed_track))
        seen.add(int(seed_track))
        candidates = [c for c in lookup.first(int(seed_track), n_positives) if c not in seen]
        if candidates and len(chosen) < n_tracks:
            partner = int(rng.choice(candidates))
            chosen.append(partner)
            seen.add(partner)
    return np.array(chosen, dtype=np.int64)


def valid_triplets(ranks: torch.Tensor, n_positives: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks from the patch-level rank matrix (row = anchor patch).

    Returns
    -------
    positive : bool tensor (B, B), [i, j]: j may be a positive of anchor i.
    valid : bool tensor (B, B, B), [i, j, k]: (i, j, k) is a triplet the ranking allows.
    """
    eye = torch.eye(len(ranks), dtype=torch.bool, device=ranks.device)
    positive = (ranks <= n_positives) & ~eye
    later = ranks[:, None, :] > ranks[:, :, None]  # [i, j, k]: k ranked after j for anchor i
    valid = positive[:, :, None] & later & ~eye[:, None, :]
    return positive, valid


def online_triplet_loss(
    embeddings: torch.Tensor, ranks: torch.Tensor, n_positives: int, *, margin: float = 0.5, mining: str = "batch_all"
) -> tuple[torch.Tensor, float]:
    """Triplet loss over the triplets mined inside one batch.

    Parameters
    ----------
    embeddings : tensor (B, d), L2-normalised embeddings of the batch's patches.
    ranks : integer tensor (B, B), ranks[i, j] = rank of patch j's track in patch i's
        track's oracle ranking (0 for the same track).
    n_positives : Np, the last rank that may be a positive.
    mining : ``semi_hard`` | ``hard`` | ``batch_all``.

    Returns
    -------
    (loss, active_fraction): the loss (0 with a gradient when the batch has no valid
    triplet) and the share of valid triplets with non-zero loss.
    """
    if mining not in MINING_MODES:
        raise ConfigError(f"unknown online mining '{mining}': expected one of {', '.join(MINING_MODES)}")
    embeddings = embeddings.float()
    distances = torch.cdist(embeddings, embeddings).pow(2)
    positive, valid = valid_triplets(ranks, n_positives)
    d_pos = distances[:, :, None]
    d_neg = distances[:, None, :]
    all_losses = triplet_hinge(d_pos, d_neg, margin)
    n_valid = int(valid.sum())
    if n_valid == 0:
        return embeddings.sum() * 0.0, 0.0
    active = valid & (all_losses > 1e-12)
    active_fraction = float(active.sum()) / n_valid
    if mining == "batch_all":
        n_active = int(active.sum())
        if n_active == 0:
            return embeddings.sum() * 0.0, 0.0
        return all_losses[active].sum() / n_active, active_fraction
    inf = torch.tensor(float("inf"), device=distances.device)
    candidates = torch.where(valid, d_neg.expand_as(valid), inf)  # (B, B, B) distances of valid negatives
    hardest = candidates.min(dim=2).values
    chosen = semi_hard_negative(d_pos, candidates, hardest) if mining == "semi_hard" else hardest
    pairs = positive & torch.isfinite(hardest)
    losses = triplet_hinge(distances[pairs], chosen[pairs], margin)
    return losses.mean(), active_fraction
