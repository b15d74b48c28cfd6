"""Online mining: the oracle ranking decides which triplets are valid, the embeddings which are used."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from trackrank.learn.online_mining import RankLookup, online_triplet_loss, sample_batch_tracks, valid_triplets

MARGIN = 0.5


def point(angle_degrees: float) -> list[float]:
    """A unit vector in the plane: squared distance between two of them = 2 - 2 cos(angle between)."""
    a = np.radians(angle_degrees)
    return [float(np.cos(a)), float(np.sin(a))]


def anchor_0_only(ranks: torch.Tensor, row: list[int] | None = None) -> torch.Tensor:
    """``ranks`` where only anchor 0 has positives (the other rows rank everything 99), its row
    replaced by ``row`` when given."""
    ranks = ranks.clone()
    ranks[1:] = 99
    if row is not None:
        ranks[0] = torch.tensor(row)
    return ranks


@pytest.fixture
def hand_made():
    """Anchor 0 (at 0°) ranks tracks 1 and 5 first (a tie at rank 1), then 2, 3, 4.

    Squared distances from the anchor: track 1 at 45° (0.59); track 5 at 10° (0.03);
    2 at 60° (1.0: farther than track 1, within the margin); 3 at 30° (0.27: closer than
    track 1); 4 at 180° (4.0: far). Only row 0 has positives with Np = 1 in the tests that
    set the other rows to 99.
    """
    embeddings = torch.tensor([point(0), point(45), point(60), point(30), point(180), point(10)])
    ranks = torch.full((6, 6), 9)
    ranks.fill_diagonal_(0)
    ranks[0] = torch.tensor([0, 1, 3, 4, 5, 1])
    return embeddings, ranks


def test_valid_triplets_never_use_a_negative_ranked_at_or_before_the_positive(hand_made):
    _, ranks = hand_made
    positive, valid = valid_triplets(ranks, n_positives=1)
    assert positive[0].tolist() == [False, True, False, False, False, True]
    assert valid[0, 1].tolist() == [False, False, True, True, True, False], "tie (track 5) is not a negative"
    assert not valid[0, 0].any(), "the anchor is never its own positive"
    # for every valid triplet, the anchor's ranking puts the negative strictly after the positive
    i, j, k = torch.nonzero(valid, as_tuple=True)
    assert (ranks[i, k] > ranks[i, j]).all()


def test_semi_hard_picks_the_closest_negative_farther_than_the_positive(hand_made):
    embeddings, ranks = hand_made
    loss, _ = online_triplet_loss(embeddings, anchor_0_only(ranks), n_positives=1, margin=MARGIN, mining="semi_hard")
    d = lambda a, b: float(((embeddings[a] - embeddings[b]) ** 2).sum())  # noqa: E731
    # pairs: (0, 1) -> semi-hard negative 2; (0, 5) -> negatives 2, 3, 4 all farther than 5? 5 is at 10°:
    # d(0,5) = 0.03, so semi-hard for (0, 5) is the closest farther one: 3 (30°)
    expected = np.mean([max(d(0, 1) - d(0, 2) + MARGIN, 0), max(d(0, 5) - d(0, 3) + MARGIN, 0)])
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_semi_hard_falls_back_to_the_hardest_negative_when_none_is_farther(hand_made):
    embeddings, ranks = hand_made
    ranks = anchor_0_only(ranks, [0, 1, 3, 4, 9, 9])  # positive 1; negatives 2, 3, 4, 5
    # move the positive far away: every negative is now closer than it
    embeddings = embeddings.clone()
    embeddings[1] = torch.tensor(point(170))
    loss, _ = online_triplet_loss(embeddings, ranks, n_positives=1, margin=MARGIN, mining="semi_hard")
    d = lambda a, b: float(((embeddings[a] - embeddings[b]) ** 2).sum())  # noqa: E731
    # negatives of (0, 1): 2, 3, 4, 5; only 4 (180°) is farther than the positive (170°)
    assert float(loss) == pytest.approx(max(d(0, 1) - d(0, 4) + MARGIN, 0), rel=1e-5)
    embeddings[4] = torch.tensor(point(100))  # now no negative is farther than the positive
    loss, _ = online_triplet_loss(embeddings, ranks, n_positives=1, margin=MARGIN, mining="semi_hard")
    hardest = min(d(0, k) for k in (2, 3, 4, 5))
    assert float(loss) == pytest.approx(d(0, 1) - hardest + MARGIN, rel=1e-5)


def test_hard_picks_the_closest_valid_negative(hand_made):
    embeddings, ranks = hand_made
    ranks = anchor_0_only(ranks, [0, 1, 3, 4, 5, 9])
    loss, _ = online_triplet_loss(embeddings, ranks, n_positives=1, margin=MARGIN, mining="hard")
    d = lambda a, b: float(((embeddings[a] - embeddings[b]) ** 2).sum())  # noqa: E731
    hardest = min(d(0, k) for k in (2, 3, 4, 5))
    assert float(loss) == pytest.approx(d(0, 1) - hardest + MARGIN, rel=1e-5)


def test_batch_all_averages_the_active_triplets_and_reports_their_share(hand_made):
    embeddings, ranks = hand_made
    ranks = anchor_0_only(ranks, [0, 1, 3, 4, 5, 9])
    loss, active = online_triplet_loss(embeddings, ranks, n_positives=1, margin=MARGIN, mining="batch_all")
    d = lambda a, b: float(((embeddings[a] - embeddings[b]) ** 2).sum())  # noqa: E731
    losses = [max(d(0, 1) - d(0, k) + MARGIN, 0) for k in (2, 3, 4, 5)]
    assert active == pytest.approx(sum(v > 0 for v in losses) / 4)
    assert float(loss) == pytest.approx(np.mean([v for v in losses if v > 0]), rel=1e-5)


def test_patches_of_the_same_track_are_positives_and_never_negatives():
    ranks = torch.tensor([[0, 0, 2], [0, 0, 2], [2, 2, 0]])
    positive, valid = valid_triplets(ranks, n_positives=1)
    assert positive[0, 1] and positive[1, 0]
    assert valid[0, 1, 2] and valid[1, 0, 2]
    assert not valid[1, :, 0].any(), "a patch of the anchor's own track is never its negative"
    assert not valid[0, :, 1].any(), "a patch of the anchor's own track is never its negative"


def test_the_loss_has_a_gradient_and_is_zero_without_valid_triplets(hand_made):
    embeddings, ranks = hand_made
    embeddings = embeddings.clone().requires_grad_(True)
    loss, _ = online_triplet_loss(embeddings, ranks, n_positives=1, mining="semi_hard")
    loss.backward()
    assert embeddings.grad.abs().sum() > 0
    none = torch.full((6, 6), 9)
    none.fill_diagonal_(0)
    loss, active = online_triplet_loss(embeddings, none, n_positives=1)
    assert float(loss.detach()) == 0.0 and active == 0.0


def test_unknown_mining_mode_is_refused(hand_made):
    embeddings, ranks = hand_made
    with pytest.raises(ValueError, match="unknown online mining 'hardest'"):
        online_triplet_loss(embeddings, ranks, n_positives=1, mining="hardest")


@pytest.fixture
def lookup(tmp_path):
    """Six tracks; track a's ranking is the others in id order after it (top 3 stored)."""
    ids = [f"t{i}" for i in range(6)]
    rows = []
    for a in range(6):
        others = [(a + s) % 6 for s in range(1, 6)][:3]
        rows += [
            {"anchor": ids[a], "rank": r + 1, "other": ids[o], "score": 1.0 - r / 10} for r, o in enumerate(others)
        ]
    pd.DataFrame(rows).to_parquet(tmp_path / "train.parquet")
    return RankLookup(tmp_path / "train.parquet", ids)


def test_rank_lookup_reads_stored_ranks_puts_the_rest_last_and_a_track_first_in_its_own_list(lookup):
    ranks = lookup.submatrix(np.array([0, 1, 3, 5]))
    # t5 is beyond t0's stored top 3 of 5: it may score as t3 (the last stored), so it shares t3's rank
    assert ranks[0].tolist() == [0, 1, 3, 3]
    assert ranks[3].tolist() == [1, 2, 3, 0]
    assert lookup.submatrix(np.array([2, 2]))[0, 1] == 0, "two patches of one track"


def test_batch_tracks_are_distinct_and_pair_tracks_with_their_first_ranked(lookup):
    rng = np.random.default_rng(0)
    for _ in range(20):
        tracks = sample_batch_tracks(lookup, n_tracks=4, n_positives=1, rng=rng)
        assert len(set(tracks.tolist())) == 4
        # each drawn track is followed by its first-ranked track (t(a+1)) when that one was free
        ranks = lookup.submatrix(tracks)
        assert (ranks[0] == 1).any(), "the first track's positive is in the batch"


def write_rankings(path, scores: dict[str, dict[str, float]], top_k: int | None = None) -> None:
    """A rankings table from each anchor's scores, ranked as trackrank ranks them: by score, ties by track order."""
    rows = []
    for anchor, others in scores.items():
        ordered = sorted(others.items(), key=lambda item: -item[1])[:top_k]
        rows += [{"anchor": anchor, "rank": r + 1, "other": o, "score": s} for r, (o, s) in enumerate(ordered)]
    pd.DataFrame(rows).to_parquet(path)


def test_a_track_tied_with_the_positive_is_never_its_negative(tmp_path):
    # t0's ranking: t1 and t2 tied (binary tags: the same ones), then t3; t1 is the positive (Np = 1)
    ids = ["t0", "t1", "t2", "t3"]
    scores = {"t0": {"t1": 0.8, "t2": 0.8, "t3": 0.2}}
    scores |= {a: {o: 0.1 for o in ids if o != a} for a in ids[1:]}
    write_rankings(tmp_path / "train.parquet", scores)
    ranks = RankLookup(tmp_path / "train.parquet", ids).submatrix(np.arange(4))
    assert ranks[0].tolist() == [0, 1, 1, 3], "t1 and t2 share rank 1: S cannot tell them apart"
    positive, valid = valid_triplets(torch.from_numpy(ranks), n_positives=1)
    assert positive[0].tolist() == [False, True, True, False], "both tied tracks are positives"
    assert valid[0, 1].tolist() == [False, False, False, True], "only t3 is a negative for (t0, t1)"
    # a batch whose tied track is far and whose negative is near: the loss must not push the tie away
    embeddings = torch.tensor([point(0), point(10), point(170), point(20)])
    loss, _ = online_triplet_loss(embeddings, torch.from_numpy(ranks), n_positives=1, margin=MARGIN, mining="hard")
    d = lambda a, b: float(((embeddings[a] - embeddings[b]) ** 2).sum())  # noqa: E731
    expected = np.mean([max(d(0, 1) - d(0, 3) + MARGIN, 0), max(d(0, 2) - d(0, 3) + MARGIN, 0)])
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_tracks_beyond_a_list_cut_inside_a_tie_are_tied_with_its_last_track(tmp_path):
    ids = ["t0", "t1", "t2", "t3", "t4"]
    scores = {a: {o: 0.5 for o in ids if o != a} for a in ids}
    scores["t0"] = {"t1": 0.9, "t2": 0.4, "t3": 0.4, "t4": 0.4}
    write_rankings(tmp_path / "train.parquet", scores, top_k=2)  # t0 stores t1, t2; t3, t4 are cut off
    ranks = RankLookup(tmp_path / "train.parquet", ids).submatrix(np.arange(5))
    assert ranks[0].tolist() == [0, 1, 2, 2, 2]
    _, valid = valid_triplets(torch.from_numpy(ranks), n_positives=2)
    assert valid[0, 1, 2:].all() and not valid[0, 2].any()
