"""Retrieval metrics on hand-made rankings, and the confidence interval."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trackrank.rank.metrics import (
    interval_verdict,
    mean_and_ci,
    paired_difference,
    per_query_metrics,
    relevant_from_rankings,
    seed_and_query_interval,
    verdict,
)

RELEVANT = np.array([[10, 11, 12, 13, 14]])  # r1..r5, graded 5..1
IDCG = sum(g / np.log2(i + 2) for i, g in enumerate([5, 4, 3, 2, 1]))


def metrics_of(predicted, k=20):
    return per_query_metrics(np.array([predicted]), RELEVANT, k=k).iloc[0]


def test_a_perfect_ranking_scores_one_everywhere():
    m = metrics_of([10, 11, 12, 13, 14, *range(20, 35)])
    assert (m == 1.0).all()


def test_no_relevant_track_in_the_top_k_scores_zero():
    m = metrics_of(list(range(20, 40)))
    assert (m == 0.0).all()


def test_relevant_tracks_at_known_ranks():
    predicted = [20, 10, 21, 12, *range(22, 38)]  # r1 at rank 2, r3 at rank 4
    m = metrics_of(predicted)
    assert m["map"] == pytest.approx((1 / 2 + 2 / 4) / 5)
    assert m["recall"] == pytest.approx(2 / 5)
    assert m["rr"] == pytest.approx(1 / 2)
    assert m["ndcg"] == pytest.approx((5 / np.log2(3) + 3 / np.log2(5)) / IDCG)


def test_graded_relevance_rewards_the_right_order():
    reversed_order = metrics_of([14, 13, 12, 11, 10, *range(20, 35)])
    assert reversed_order["map"] == 1.0 and reversed_order["recall"] == 1.0
    assert reversed_order["ndcg"] < 1.0
    assert reversed_order["ndcg"] == pytest.approx(
        sum(g / np.log2(i + 2) for i, g in enumerate([1, 2, 3, 4, 5])) / IDCG
    )


def test_only_the_top_k_counts():
    m = metrics_of([*range(20, 40), 10], k=20)
    assert m["recall"] == 0 and m["rr"] == 0


def test_confidence_interval_of_a_known_sample():
    mean, half = mean_and_ci(np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    # t(0.975, 4) = 2.7764; sd = sqrt(2.5)
    assert mean == 3.0 and half == pytest.approx(2.7764 * np.sqrt(2.5) / np.sqrt(5), rel=1e-4)


def test_relevant_tracks_skip_ranked_tracks_that_are_not_evaluated():
    rankings = pd.DataFrame(
        {"anchor": ["a"] * 3 + ["b"] * 3, "rank": [1, 2, 3] * 2, "other": ["gone", "b", "c", "a", "gone", "c"]}
    )
    relevant = relevant_from_rankings(rankings, ["a", "b", "c"], n_relevant=2)
    assert relevant.tolist() == [[1, 2], [0, 2], [-1, -1]]


def test_paired_difference_of_a_known_case_by_hand():
    # differences 0.1, 0.1, 0.0: mean 1/15, sd sqrt(1/300), t(0.975, 2) = 4.302653
    mean, half = paired_difference([0.5, 0.6, 0.7], [0.4, 0.5, 0.7])
    assert mean == pytest.approx(1 / 15)
    assert half == pytest.approx(4.302653 * np.sqrt(1 / 300) / np.sqrt(3), rel=1e-6)


def test_paired_difference_is_signed_and_narrower_than_the_unpaired_intervals():
    rng = np.random.default_rng(0)
    difficulty = rng.uniform(0, 1, 200)  # shared by both systems, query by query
    a, b = difficulty + 0.05, difficulty + rng.normal(0, 0.01, 200)
    mean, half = paired_difference(a, b)
    assert mean == pytest.approx(0.05, abs=0.005)
    assert paired_difference(b, a)[0] == pytest.approx(-mean)
    assert half < mean_and_ci(a)[1] / 5


def test_paired_difference_refuses_different_query_sets():
    with pytest.raises(ValueError, match="same queries"):
        paired_difference([0.1, 0.2, 0.3], [0.1, 0.2])


def test_verdict_needs_an_interval_that_excludes_zero():
    assert verdict(0.05, 0.01) == "better"
    assert verdict(-0.05, 0.01) == "worse"
    assert verdict(0.05, 0.06) == "no difference"
    assert verdict(0.05, float("nan")) == "no difference"


def test_a_constant_difference_has_a_bootstrap_interval_of_one_point():
    a = np.full((3, 40), 0.5)
    mean, low, high = seed_and_query_interval(a, a - 0.1)
    assert mean == pytest.approx(0.1) and low == pytest.approx(0.1) and high == pytest.approx(0.1)
    assert interval_verdict(low, high) == "better"


def test_a_difference_that_reseeding_flips_is_no_difference_over_seeds_and_queries():
    """Seed 0 puts a 1 point above b on every query, seed 1 1 point below: the queries alone (seeds averaged)
    see no spread at all, the (seed x query) bootstrap sees the seeds' (-1, 0 or +1, by which seeds it draws)."""
    b = np.zeros((2, 50))
    a = np.array([[1.0] * 50, [-1.0] * 50])
    mean, low, high = seed_and_query_interval(a, b)
    assert mean == 0.0 and low == -1.0 and high == 1.0
    per_query_mean, half = paired_difference(a.mean(axis=0), b.mean(axis=0))
    assert per_query_mean == 0.0 and half == 0.0
    assert interval_verdict(low, high) == "no difference"


def test_the_bootstrap_interval_of_one_seed_is_the_query_bootstrap_and_matches_the_t_interval():
    rng = np.random.default_rng(4)
    a, b = rng.normal(0.3, 0.2, 400), rng.normal(0.2, 0.2, 400)
    mean, low, high = seed_and_query_interval(a[None, :], b[None, :], n_resamples=4000)
    t_mean, half = paired_difference(a, b)
    assert mean == pytest.approx(t_mean)
    assert low == pytest.approx(t_mean - half, abs=0.006) and high == pytest.approx(t_mean + half, abs=0.006)
    assert seed_and_query_interval(a[None, :], b[None, :], n_resamples=4000) == (mean, low, high)  # seeded


def test_the_bootstrap_refuses_different_seeds_or_queries():
    with pytest.raises(ValueError, match="same seeds and queries"):
        seed_and_query_interval(np.zeros((3, 10)), np.zeros((2, 10)))
