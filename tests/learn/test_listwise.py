"""The listwise loss (tl_listwise): its value on a hand-made batch, the direction it moves the embeddings,
the order it prefers, S's ties, and S between a batch's tracks as the run's S scores them."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch

from trackrank.data.catalog import CatalogFiles
from trackrank.learn.listwise import BatchSimilarity, listnet_loss, listnet_targets
from trackrank.rank.similarity import split_oracle

#: three patches on a line of the plane: 0 and 2 opposite, 1 between them
LINE = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
#: S: 0 and 1 alike, 1 and 2 half alike, 0 and 2 not at all
S = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.5], [0.0, 0.5, 1.0]])


def kl(p: list[float], q: list[float]) -> float:
    return sum(a * math.log(a / b) for a, b in zip(p, q))


def softmax(values: list[float]) -> list[float]:
    exp = [math.exp(v) for v in values]
    return [e / sum(exp) for e in exp]


def test_the_loss_is_the_mean_kl_from_s_top_one_distribution_to_the_models():
    """By hand, temperatures 1: squared distances 0-1 and 1-2 are 2, 0-2 is 4."""
    expected = (
        kl(softmax([1.0, 0.0]), softmax([-2.0, -4.0]))  # anchor 0, list (1, 2)
        + kl(softmax([1.0, 0.5]), softmax([-2.0, -2.0]))  # anchor 1, list (0, 2)
        + kl(softmax([0.0, 0.5]), softmax([-4.0, -2.0]))  # anchor 2, list (0, 1)
    ) / 3
    loss = listnet_loss(LINE, S, temperature=1.0, target_temperature=1.0)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_a_step_on_the_loss_moves_a_patch_toward_the_track_s_prefers():
    """Patch 1 is as far from 0 as from 2, but S prefers 0: descent moves it toward 0, away from 2."""
    embeddings = LINE.clone().requires_grad_()
    listnet_loss(embeddings, S, temperature=1.0, target_temperature=1.0).backward()
    step = -embeddings.grad[1]
    assert torch.dot(step, LINE[0] - LINE[2]) > 0


def test_the_embedding_in_s_order_has_the_lowest_loss_of_every_permutation():
    """Five patches on an arc, S falling with their distance along it: any other assignment of the five
    points to the tracks loses more, but the mirror image, whose distances are the same."""
    angles = torch.tensor([0.0, 0.4, 0.8, 1.2, 1.6])
    arc = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    place = np.arange(5)
    similarity = torch.tensor(np.exp(-np.abs(place[:, None] - place[None, :])), dtype=torch.float32)
    in_order = listnet_loss(arc, similarity, temperature=0.1, target_temperature=0.1).item()
    for order in itertools.permutations(range(5)):
        if order in ((0, 1, 2, 3, 4), (4, 3, 2, 1, 0)):
            continue
        permuted = listnet_loss(arc[list(order)], similarity, temperature=0.1, target_temperature=0.1).item()
        assert permuted > in_order + 1e-4, order


def test_tracks_that_s_ties_get_equal_targets_and_a_patch_is_not_in_its_own_list():
    similarity = torch.tensor([[1.0, 0.3, 0.3, 0.1], [0.3, 1.0, 0.2, 0.2], [0.3, 0.2, 1.0, 0.7], [0.1, 0.2, 0.7, 1.0]])
    targets = listnet_targets(similarity, 0.1)
    assert targets[0, 1] == targets[0, 2] and targets[1, 2] == targets[1, 3]
    assert (targets.diagonal() == 0).all() and torch.allclose(targets.sum(1), torch.ones(4))


def test_a_model_that_matches_s_exactly_has_no_loss_left():
    """KL, not cross-entropy: 0 when the model's distribution is S's (here S = -squared distance)."""
    embeddings = torch.nn.functional.normalize(torch.randn(6, 3, generator=torch.Generator().manual_seed(0)), dim=1)
    similarity = -torch.cdist(embeddings, embeddings).pow(2)
    loss = listnet_loss(embeddings, similarity, temperature=0.5, target_temperature=0.5)
    assert loss.item() == pytest.approx(0.0, abs=1e-5)


@pytest.fixture
def graded_catalog(tmp_path) -> CatalogFiles:
    rng = np.random.default_rng(3)
    ids = [f"t{i}" for i in range(9)]
    pd.DataFrame({"track_id": ids, "path": "x", "artist": ids, "split": "train", "duration_s": 20.0}).to_parquet(
        tmp_path / "tracks.parquet"
    )
    tags = {name: rng.choice([0.0, 0.4, 0.9], size=9) for name in ("rock", "jazz", "calm", "loud")}
    pd.DataFrame({"track_id": ids, **tags}).to_parquet(tmp_path / "tags.parquet")
    pd.DataFrame(
        {"tag": list(tags), "category": ["Genre", "Genre", "Mood", "Mood"], "weight": [1.0, 2.0, 1.0, 0.5]}
    ).to_csv(tmp_path / "taxonomy.csv", index=False)
    return CatalogFiles.in_folder(tmp_path)


@pytest.mark.parametrize("similarity", [{}, {"name": "weighted_cosine"}, {"category_weights": {"Mood": 3.0}}])
def test_s_between_a_batch_s_tracks_is_the_runs_s_of_the_whole_split(graded_catalog, similarity):
    """S for a batch is computed from the batch's tags alone; it must equal the split's S, in any order,
    with a track repeated (several patches of it)."""
    ids, oracle = split_oracle(graded_catalog, "train", **similarity)
    rows = np.arange(len(ids))[::-1]  # the training data's order need not be the oracle's
    tracks = np.array([4, 0, 7, 7, 2])
    between = BatchSimilarity(oracle, rows).between(tracks)
    expected = np.stack([oracle.scores(rows[t])[rows[tracks]] for t in tracks])
    assert between.shape == (5, 5) and np.allclose(between, expected, atol=1e-6)
