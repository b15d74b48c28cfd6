"""Triplet mining: validity, each strategy's distribution, counts, determinism."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from builders import random_tags
from trackrank.errors import ConfigError
from trackrank.rank.mining import STRATEGIES, anchor_rng, mine_anchor, write_triplets
from trackrank.rank.negative_draws import mass_below
from trackrank.rank.oracle import top_ranked
from trackrank.rank.similarity import Oracle

N, NP, NN = 90, 5, 20


@pytest.fixture(scope="module")
def oracle():
    tags = random_tags(n=N, m=30, per_track=6, seed=3)
    return Oracle(tags, np.ones(30), [["Genre", "Mood", "Recording"][t % 3] for t in range(30)])


def mined(oracle, strategy, tmp_path, n_negatives=NN, seed=0) -> pd.DataFrame:
    ids = [f"t{i:03d}" for i in range(N)]
    write_triplets(
        oracle,
        ids,
        output=tmp_path / f"{strategy}.parquet",
        strategy=strategy,
        n_positives=NP,
        n_negatives=n_negatives,
        seed=seed,
    )
    table = pd.read_parquet(tmp_path / f"{strategy}.parquet")
    return table.apply(lambda column: column.astype(str).str[1:].astype(int))


def full_rank(oracle, anchor) -> np.ndarray:
    """rank_of[j]: j's 0-based position in the anchor's full ranking."""
    order = top_ranked(oracle.scores(anchor), anchor, N)
    rank_of = np.full(N, -1)
    rank_of[order] = np.arange(N - 1)
    return rank_of


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_triplet_is_valid(oracle, strategy, tmp_path):
    table = mined(oracle, strategy, tmp_path)
    assert list(table.columns) == ["anchor", "positive", "negative"]
    assert (table.anchor != table.positive).all() and (table.anchor != table.negative).all()
    for anchor, rows in table.groupby("anchor"):
        rank_of = full_rank(oracle, anchor)
        assert (rank_of[rows.positive] < NP).all()
        assert (rank_of[rows.positive] < rank_of[rows.negative]).all()
        scores = oracle.scores(anchor)
        assert (scores[rows.negative] < scores[rows.positive]).all(), "never a negative tied with its positive"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_counts_are_n_times_np_times_nn(oracle, strategy, tmp_path):
    assert len(mined(oracle, strategy, tmp_path)) == N * NP * NN


def test_a_small_catalog_supplies_what_it_can(oracle):
    scores = np.linspace(1.0, 0.3, 8)  # 8 tracks: the anchor and 7 others, no two tied
    pos, neg = mine_anchor(scores, 0, "neighbors", n_positives=15, n_negatives=250)
    # min(15, 8 - 2) = 6 positives; the positive at rank i has 6 - i tracks after it
    assert len(np.unique(pos)) == 6 and len(neg) == sum(6 - i for i in range(6))
    pos, neg = mine_anchor(scores, 0, "uniform", n_positives=15, n_negatives=250, rng=np.random.default_rng(0))
    assert len(pos) == 6 * 250
    assert (
        mine_anchor(oracle.scores(0)[:2], 0, "distance", n_positives=15, n_negatives=250, rng=np.random.default_rng(0))[
            0
        ].size
        == 0
    )


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_track_tied_with_the_positive_is_never_its_negative(strategy):
    """Paper §3.2: the positive must be *more* similar than the negative; a tie ranks after it only by
    track order, so it is no negative, and a positive tied with every track after it has no triplet."""
    scores = np.array([1.0, 0.8, 0.8, 0.8, 0.5, 0.5, 0.2, 0.2, 0.2, 0.2, 0.0, 0.0])
    pos, neg = mine_anchor(scores, 0, strategy, n_positives=6, n_negatives=4, rng=np.random.default_rng(0))
    assert len(neg) and (scores[neg] < scores[pos]).all()
    assert set(pos) == {1, 2, 3, 4, 5, 6}, "0.2 (rank 6) still has tracks at 0.0 below it"
    pos, neg = mine_anchor(scores[:10], 0, strategy, n_positives=8, n_negatives=4, rng=np.random.default_rng(0))
    assert set(pos) == {1, 2, 3, 4, 5}, "the positives at 0.2 tie with every track after them"
    if strategy == "neighbors":
        assert list(neg[pos == 1]) == [4, 5, 6, 7], "the tracks right after the positive's tie, in rank order"


def test_neighbors_negatives_are_the_tracks_right_after_the_positive(oracle, tmp_path):
    table = mined(oracle, "neighbors", tmp_path)
    for anchor, rows in list(table.groupby("anchor"))[:20]:
        ranking = top_ranked(oracle.scores(anchor), anchor, N)
        for positive, group in rows.groupby("positive", sort=False):
            i = int(np.flatnonzero(ranking == positive)[0])
            assert list(group.negative) == list(ranking[i + 1 : i + 1 + NN])


def test_uniform_negatives_cover_the_whole_list_not_only_the_top(oracle, tmp_path):
    table = mined(oracle, "uniform", tmp_path, n_negatives=200)
    ranks = np.concatenate([full_rank(oracle, a)[rows.negative] for a, rows in table.groupby("anchor")])
    assert ranks.max() == N - 2  # the last-ranked track is reachable
    # uniform over ranks after the positive: the mean rank sits mid-list
    assert ranks.mean() == pytest.approx((NP + N) / 2, rel=0.1)


def test_distance_negatives_are_more_similar_than_uniform_ones(oracle, tmp_path):
    uniform, distance = mined(oracle, "uniform", tmp_path), mined(oracle, "distance", tmp_path)
    s = np.stack([oracle.scores(a) for a in range(N)])
    s_uniform, s_distance = s[uniform.anchor, uniform.negative], s[distance.anchor, distance.negative]
    assert s_distance.mean() > s_uniform.mean()
    assert stats.mannwhitneyu(s_distance, s_uniform, alternative="greater").pvalue < 1e-6


def test_distance_draws_follow_s_after_the_positive(oracle):
    anchor, i = 4, 2
    scores = oracle.scores(anchor)
    pos, neg = mine_anchor(scores, anchor, "distance", n_positives=3, n_negatives=20000, rng=np.random.default_rng(1))
    ranking = top_ranked(scores, anchor, 3)
    drawn = neg[pos == ranking[i]]
    allowed = np.setdiff1d(np.arange(N), np.concatenate([[anchor], ranking[: i + 1]]))
    expected = scores[allowed] / scores[allowed].sum()
    counts = np.bincount(drawn, minlength=N)[allowed]
    assert counts.sum() == len(drawn)  # nothing outside the list after the positive
    keep = expected > 0
    assert stats.chisquare(counts[keep], expected[keep] * len(drawn) / expected[keep].sum()).pvalue > 1e-3


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_same_config_same_table_bit_for_bit(oracle, strategy, tmp_path, monkeypatch):
    ids = [f"t{i:03d}" for i in range(N)]
    write_triplets(
        oracle, ids, output=tmp_path / "a.parquet", strategy=strategy, n_positives=NP, n_negatives=NN, seed=7
    )
    monkeypatch.setattr("trackrank.rank.mining.CHUNK_ANCHORS", 7)  # another chunking, same table
    write_triplets(
        oracle, ids, output=tmp_path / "b.parquet", strategy=strategy, n_positives=NP, n_negatives=NN, seed=7
    )
    digest = lambda p: hashlib.sha256(pd.read_parquet(p).to_csv().encode()).hexdigest()  # noqa: E731
    assert digest(tmp_path / "a.parquet") == digest(tmp_path / "b.parquet")
    if strategy != "neighbors":
        write_triplets(
            oracle, ids, output=tmp_path / "c.parquet", strategy=strategy, n_positives=NP, n_negatives=NN, seed=8
        )
        assert digest(tmp_path / "a.parquet") != digest(tmp_path / "c.parquet")


def test_anchor_streams_differ_by_strategy_and_anchor():
    draws = {(s, a): anchor_rng(0, s, a).random() for s in STRATEGIES for a in range(3)}
    assert len(set(draws.values())) == len(draws)


def test_more_positives_than_the_split_holds_is_one_console_line_naming_the_key(oracle, tmp_path, caplog):
    ids = [f"t{i:03d}" for i in range(N)]
    small = Oracle(oracle.tags[:8], np.ones(30), oracle.categories)
    write_triplets(
        small, ids[:8], output=tmp_path / "uniform.parquet", strategy="uniform", n_positives=15, n_negatives=4, seed=0
    )
    warnings = [r for r in caplog.records if "mining.n_positives" in r.getMessage()]
    assert len(warnings) == 1 and getattr(warnings[0], "console", False)
    assert "mining.n_positives = 15 is more than a split of 8 tracks can supply (at most 6" in warnings[0].getMessage()
    assert (
        0 < len(pd.read_parquet(tmp_path / "uniform.parquet")) <= 8 * 6 * 4
    )  # the run goes on with what it can (ties: fewer)
    caplog.clear()
    write_triplets(
        small, ids[:8], output=tmp_path / "fits.parquet", strategy="uniform", n_positives=6, n_negatives=4, seed=0
    )
    assert "mining.n_positives" not in caplog.text


@pytest.mark.parametrize(
    "key, n_positives, n_negatives, refused",
    [("mining.n_positives", 0.02, 4, 0.02), ("mining.n_negatives", 5, 2.5, 2.5)],
)
def test_np_and_nn_are_whole_counts_refused_by_name_otherwise_and_nothing_is_written(
    oracle, tmp_path, key, n_positives, n_negatives, refused
):
    """A library caller's 0.02 (a share of the split, which the config once took) is not read as 0 or 1 track."""
    ids = [f"t{i:03d}" for i in range(N)]
    with pytest.raises(ConfigError, match=f"{key} = {refused}: a count of tracks"):
        write_triplets(
            oracle,
            ids,
            output=tmp_path / "t.parquet",
            strategy="uniform",
            n_positives=n_positives,
            n_negatives=n_negatives,
            seed=0,
        )
    assert not (tmp_path / "t.parquet").exists()


def test_the_mass_after_each_positive_is_the_weight_of_the_tracks_scoring_below_it():
    rng = np.random.default_rng(4)
    scores = rng.integers(0, 6, 500) / 5.0  # heavy ties, some equal to a positive's S
    scores[7] = -np.inf  # the anchor
    weights = rng.uniform(0, 1, 500)
    below = np.sort(rng.choice(scores[scores > 0], 15))[::-1]  # positives' S, in rank order, tied ones included
    expected = [weights[scores < b].sum() for b in below]
    np.testing.assert_allclose(mass_below(weights, scores, below), expected, rtol=1e-12)
