"""Oracle rankings: deterministic ties, top K, equal to a dense reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from builders import random_tags
from trackrank.rank.oracle import read_curve, top_ranked, write_curve, write_rankings
from trackrank.rank.similarity import Oracle


def test_ties_are_broken_by_track_order_and_the_anchor_is_left_out():
    scores = np.array([0.9, 0.5, 0.7, 0.5, 0.7, 0.5])
    assert list(top_ranked(scores, anchor=0, k=5)) == [2, 4, 1, 3, 5]
    assert list(top_ranked(scores, anchor=2, k=3)) == [0, 4, 1]
    assert list(top_ranked(scores, anchor=1, k=10)) == [0, 2, 4, 3, 5]


def test_top_ranked_equals_a_full_sort_on_tie_heavy_scores():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, size=300) / 4.0  # many ties
    for anchor in (0, 150, 299):
        reference = [j for j in np.lexsort((np.arange(300), -scores)) if j != anchor]
        for k in (1, 17, 299):
            assert list(top_ranked(scores, anchor, k)) == reference[:k]


@pytest.fixture
def oracle_and_ids():
    tags = random_tags(n=70, m=12, per_track=3)  # few tags: ties happen
    oracle = Oracle(tags, np.ones(12), ["Genre"] * 6 + ["Mood"] * 6, name="soft_jaccard")
    return oracle, [f"t{i:02d}" for i in range(70)]


def test_chunked_rankings_equal_the_dense_reference(oracle_and_ids, tmp_path, monkeypatch):
    oracle, ids = oracle_and_ids
    monkeypatch.setattr("trackrank.rank.oracle.CHUNK_ANCHORS", 16)  # several chunks
    summary = write_rankings(oracle, ids, output=tmp_path / "r.parquet", top_k=25)
    table = pd.read_parquet(tmp_path / "r.parquet")
    assert list(table.columns) == ["anchor", "rank", "other", "score"]
    dense = np.stack([oracle.reference_scores(a) for a in range(70)])
    rows = []
    for a in range(70):
        order = [j for j in np.lexsort((np.arange(70), -dense[a])) if j != a][:25]
        rows += [(ids[a], r + 1, ids[j], np.float32(dense[a, j])) for r, j in enumerate(order)]
    expected = pd.DataFrame(rows, columns=["anchor", "rank", "other", "score"])
    got = table.astype({"anchor": str, "other": str})
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    curve = np.mean([np.sort(np.delete(dense[a], a))[::-1] for a in range(70)], axis=0)
    np.testing.assert_allclose(summary.mean_score_by_rank, curve)
    write_curve(summary, tmp_path / "curve.csv")
    saved = read_curve([tmp_path / "curve.csv"])
    assert saved["rank"].tolist() == list(range(1, 70))
    assert saved["mean_score"].is_monotonic_decreasing


def test_rankings_store_top_k_rows_per_anchor(oracle_and_ids, tmp_path):
    oracle, ids = oracle_and_ids
    write_rankings(oracle, ids, output=tmp_path / "r.parquet", top_k=10)
    table = pd.read_parquet(tmp_path / "r.parquet")
    assert len(table) == 70 * 10
    assert (table.groupby("anchor", observed=True)["rank"].max() == 10).all()
    assert (table["anchor"].astype(str) != table["other"].astype(str)).all()
