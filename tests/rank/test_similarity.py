"""The oracle S: built-in formulas on hand-computed cases, the fast kernels, a user's own S."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from builders import random_tags
from trackrank.errors import SimilarityError
from trackrank.rank import similarity
from trackrank.rank.similarity import (
    BUILTINS,
    Oracle,
    category_geometric,
    soft_jaccard,
    split_oracle,
    weighted_cosine,
)

W = np.array([1.0, 2.0, 1.0])
Q = np.array([1.0, 0.5, 0.0])
OTHERS = np.array([[0.5, 0.5, 1.0]])


def test_weighted_cosine_by_hand():
    # dot = 1*1*.5 + 2*.5*.5 = 1; |q| = sqrt(1 + 2*.25) ; |o| = sqrt(.25 + 2*.25 + 1)
    assert weighted_cosine(Q, OTHERS, W)[0] == pytest.approx(1.0 / np.sqrt(1.5 * 1.75))


def test_soft_jaccard_by_hand():
    # sum w min = .5 + 2*.5 = 1.5 ; sum w max = 1 + 2*.5 + 1 = 3
    assert soft_jaccard(Q, OTHERS, W)[0] == pytest.approx(0.5)


def test_category_geometric_by_hand():
    # Genre = tags 0, 1: J = 1.5 / 2 ; Mood = tag 2: J = 0 ; geometric mean of (eps + J) - eps
    got = category_geometric(Q, OTHERS, W, np.array([0, 0, 1]), np.array([1.0, 1.0]), eps=0.05)[0]
    assert got == pytest.approx(np.sqrt(0.80 * 0.05) - 0.05)


def test_agreeing_on_genre_only_scores_low_with_the_category_aware_s():
    weights, categories = np.ones(4), ["Genre", "Genre", "Mood", "Mood"]
    tags = np.array([[1, 0, 1, 0], [1, 0, 0, 1], [1, 0, 1, 0.0]])
    oracle = Oracle(tags, weights, categories)
    genre_only, everything = oracle.scores(0)[1], oracle.scores(0)[2]
    assert everything == pytest.approx(1.0)
    assert genre_only < 0.2 < soft_jaccard(tags[0], tags[1:2], weights)[0]


@pytest.mark.parametrize("name", BUILTINS)
def test_sparse_kernels_equal_the_plain_formulas(name):
    tags = random_tags()
    categories = [["Genre", "Recording", "Mood", "Movement"][t % 4] for t in range(tags.shape[1])]
    weights = np.random.default_rng(1).uniform(0.2, 2.0, tags.shape[1])
    oracle = Oracle(tags, weights, categories, name=name, category_weights={"Genre": 2.0})
    for query in (0, 17, 79):
        np.testing.assert_allclose(oracle.scores(query), oracle.reference_scores(query), rtol=1e-10, atol=1e-12)
        assert (oracle.scores(query) >= 0).all()


@pytest.mark.parametrize("name", BUILTINS)
def test_scoring_in_tiles_of_tracks_changes_no_score(name, monkeypatch):
    tags = random_tags(n=300)
    categories = [["Genre", "Recording", "Mood", "Movement"][t % 4] for t in range(tags.shape[1])]
    oracle = Oracle(tags, np.linspace(0.5, 2.0, tags.shape[1]), categories, name=name)
    whole = [oracle.scores(query) for query in (0, 150, 299)]
    monkeypatch.setattr(similarity, "TILE_TRACKS", 7)  # 43 tiles, the last one of 6 tracks
    for query, expected in zip((0, 150, 299), whole):
        assert np.array_equal(oracle.scores(query), expected)


def test_an_all_zero_track_scores_zero_not_nan():
    tags = np.array([[0.0, 0.0], [1.0, 0.0]])
    for name in BUILTINS:
        scores = Oracle(tags, np.ones(2), ["a", "b"], name=name).scores(0)
        assert np.isfinite(scores).all() and scores[1] == 0


USER_MODULE = """
import numpy as np

def dot(query, others):
    return others @ query

def wrong_shape(query, others):
    return np.zeros(3)

def negative(query, others):
    return -others @ query

def not_a_number(query, others):
    return np.full(len(others), np.nan)

def raises(query, others):
    return 1 / 0
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_similarity.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_similarity"


def test_a_users_function_is_called_with_one_query_against_the_matrix(user_module):
    tags = random_tags(10)
    oracle = Oracle(tags, np.ones(tags.shape[1]), ["x"] * tags.shape[1], function=f"{user_module}:dot")
    np.testing.assert_allclose(oracle.scores(3), tags @ tags[3])


@pytest.mark.parametrize(
    "spec, message",
    [
        ("no_colon", "must look like 'module:function'"),
        ("no_such_module_xyz:f", "cannot import module 'no_such_module_xyz'"),
        ("my_similarity:missing", "has no function 'missing'"),
    ],
)
def test_a_name_that_does_not_resolve_is_refused_naming_it(user_module, spec, message):
    with pytest.raises(SimilarityError, match=message) as error:
        Oracle(random_tags(5), np.ones(24), ["x"] * 24, function=spec)
    assert spec in str(error.value)


@pytest.mark.parametrize(
    "function, message",
    [
        ("wrong_shape", r"returned shape \(3,\); expected \(10,\)"),
        ("negative", "returned negative scores"),
        ("not_a_number", "returned NaN"),
        ("raises", "failed: ZeroDivisionError"),
    ],
)
def test_a_misbehaving_function_stops_with_its_name(user_module, function, message):
    oracle = Oracle(random_tags(10), np.ones(24), ["x"] * 24, function=f"{user_module}:{function}")
    with pytest.raises(SimilarityError, match=message) as error:
        oracle.scores(0)
    assert f"{user_module}:{function}" in str(error.value)


def test_unknown_builtin_and_unknown_category_weight_are_refused():
    with pytest.raises(SimilarityError, match="'cosine' is not one of"):
        Oracle(random_tags(5), np.ones(24), ["x"] * 24, name="cosine")
    with pytest.raises(SimilarityError, match="unknown categories"):
        Oracle(random_tags(5), np.ones(24), ["x"] * 24, category_weights={"Lyrics": 1.0})


def written_catalog(folder, tags: dict[str, list[float]], categories: dict[str, str]):
    """tracks.parquet, tags.parquet and taxonomy.csv of an ingested catalog, every track in the test split."""
    from trackrank.data.catalog import CatalogFiles

    n = len(next(iter(tags.values())))
    ids = [f"t{i}" for i in range(n)]
    pd.DataFrame({"track_id": ids, "split": "test"}).to_parquet(folder / "tracks.parquet")
    pd.DataFrame({"track_id": ids, **tags}).to_parquet(folder / "tags.parquet")
    pd.DataFrame({"tag": list(categories), "category": list(categories.values()), "weight": 1.0}).to_csv(
        folder / "taxonomy.csv", index=False
    )
    return CatalogFiles(folder / "tracks.parquet", folder / "tags.parquet", folder / "taxonomy.csv")


def test_the_configured_category_weights_and_the_default_epsilon_reach_s_as_the_formula_says(tmp_path):
    """S = exp(sum_c w_c log(eps + J_c) / sum_c w_c) - eps, eps = 0.05 unless configured (paper §3.1):
    one catalog, read as the workflow reads it, with Genre weighted 3 and Mood 1."""
    catalog = written_catalog(
        tmp_path,
        {"rock": [1.0, 0.5], "jazz": [0.0, 0.5], "calm": [0.5, 0.5]},
        {"rock": "Genre", "jazz": "Genre", "calm": "Mood"},
    )
    ids, oracle = split_oracle(catalog, "test", category_weights={"Genre": 3.0, "Mood": 1.0})
    genre = (0.5 + 0.0) / (1.0 + 0.5)  # soft Jaccard: sum of minima over sum of maxima
    mood = 0.5 / 0.5
    expected = np.exp((3 * np.log(0.05 + genre) + 1 * np.log(0.05 + mood)) / 4) - 0.05
    assert ids == ["t0", "t1"]
    assert oracle.scores(0)[1] == pytest.approx(expected, abs=1e-9)
    unweighted = split_oracle(catalog, "test")[1].scores(0)[1]
    assert unweighted == pytest.approx(np.exp((np.log(0.05 + genre) + np.log(0.05 + mood)) / 2) - 0.05, abs=1e-9)


def test_a_tag_major_matrix_is_kept_without_a_copy():
    # the oracle of a split holds one float64 copy of its tags (split_oracle builds them tag-major): at
    # 10^6 tracks x 488 tags that copy is 3.9 GB, and a second one would not fit an 8 GB cluster job
    columns = np.ascontiguousarray(random_tags(n=50).T)
    oracle = Oracle(columns.T, np.ones(columns.shape[0]), ["Genre"] * columns.shape[0])
    assert np.shares_memory(oracle.tags, columns)
    assert np.array_equal(oracle.tags, columns.T)
