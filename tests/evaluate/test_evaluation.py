"""Test-set retrieval: the query never retrieves itself; the auto-tagger ranks with S."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from builders import evaluation_outputs, random_tags, report_outputs
from trackrank.evaluate.evaluation import evaluate, random_predictions
from trackrank.evaluate.report import write_report
from trackrank.rank.oracle import write_rankings
from trackrank.rank.retrieval import rank_by_distance, rank_by_oracle
from trackrank.rank.similarity import Oracle


def test_retrieval_never_returns_the_query_itself():
    embeddings = np.random.default_rng(0).normal(size=(30, 8))
    for predicted in (rank_by_distance(embeddings, 10), random_predictions(30, 10, seed=1)):
        assert not (predicted == np.arange(30)[:, None]).any()
        assert all(len(set(row)) == 10 for row in predicted)


def test_distance_ranking_puts_the_nearest_first():
    embeddings = np.array([[0.0], [1.0], [3.0], [10.0]])
    assert rank_by_distance(embeddings, 3).tolist() == [[1, 2, 3], [0, 2, 3], [1, 0, 3], [2, 1, 0]]


def test_the_auto_tagger_ranks_by_s_of_its_estimated_tags():
    true_tags = random_tags(n=25, m=12, per_track=4)
    oracle = Oracle(true_tags, np.ones(12), ["Genre"] * 6 + ["Mood"] * 6)
    estimated = np.clip(true_tags + np.random.default_rng(2).normal(0, 0.2, true_tags.shape), 0, 1)
    predicted = rank_by_oracle(estimated, oracle, k=5)
    on_estimates = Oracle(estimated, np.ones(12), ["Genre"] * 6 + ["Mood"] * 6)
    for q in range(25):
        s = on_estimates.scores(q)
        expected = [j for j in np.lexsort((np.arange(25), -s)) if j != q][:5]
        assert predicted[q].tolist() == expected


def test_an_oracle_perfect_system_beats_random_in_the_written_outputs(tmp_path):
    tags = random_tags(n=40, m=16, per_track=4, seed=5)
    oracle = Oracle(tags, np.ones(16), ["Genre"] * 8 + ["Mood"] * 8)
    ids = [f"t{i}" for i in range(40)]
    write_rankings(oracle, ids, output=tmp_path / "test.parquet", top_k=20)
    pq.write_table(
        pa.table(
            {"track_id": ids, "tags": pa.FixedSizeListArray.from_arrays(pa.array(tags.astype(np.float32).ravel()), 16)}
        ),
        tmp_path / "oracle_tags.parquet",
    )
    perfect = evaluate(
        "oracle_tags",
        track_ids=ids,
        oracle=oracle,
        rankings=tmp_path / "test.parquet",
        **evaluation_outputs(tmp_path, "oracle_tags"),
        embeddings=tmp_path / "oracle_tags.parquet",
        k=10,
    )
    chance = evaluate(
        "random",
        track_ids=ids,
        oracle=oracle,
        rankings=tmp_path / "test.parquet",
        **evaluation_outputs(tmp_path, "random"),
        k=10,
    )
    assert perfect["map@10"]["mean"] == 100.0 and perfect["n_queries"] == 40
    assert chance["map@10"]["mean"] < 50.0
    predictions = pd.read_parquet(tmp_path / "predictions" / "random.parquet")
    assert list(predictions.columns) == ["query", "rank", "track_id"]
    assert predictions.groupby("query")["rank"].apply(list).map(lambda r: r == list(range(1, 11))).all()
    saved = json.loads((tmp_path / "metrics" / "oracle_tags.json").read_text())
    assert set(saved) == {"system", "k", "n_queries", "map@10", "recall@10", "rr@10", "ndcg@10"}
    per_query = pd.read_parquet(tmp_path / "metrics" / "random.per_query.parquet")
    assert len(per_query) == 40

    history = pd.DataFrame(
        {"epoch": [1, 2], "train_loss": [1.0, 0.5], "val_loss": [1.0, 0.8], "val_map@10": [0.1, 0.2]}
    )
    (tmp_path / "models" / "oracle_tags").mkdir(parents=True)
    history.to_csv(tmp_path / "models" / "oracle_tags" / "history.csv", index=False)
    table = write_report(
        [tmp_path / "metrics" / "random.json", tmp_path / "metrics" / "oracle_tags.json"],
        {"oracle_tags": tmp_path / "models" / "oracle_tags" / "history.csv"},
        **report_outputs(tmp_path / "report"),
    )
    assert table["system"].tolist() == ["random", "oracle_tags"]
    markdown = (tmp_path / "report" / "table.md").read_text()
    assert "| oracle_tags | 100.00 ± 0.00 |" in markdown
    assert "private" in (tmp_path / "report" / "table_paper.md").read_text()
    assert (tmp_path / "report" / "metrics.png").stat().st_size > 10_000


@pytest.mark.parametrize("stored", [["b", "a", "c"], ["a", "b"], ["a", "b", "c", "d"]])
def test_embeddings_that_do_not_align_with_the_test_tracks_are_refused(tmp_path, stored):
    """A metric computed on embeddings of other tracks, or in another order, would be silently wrong."""
    from trackrank.evaluate.evaluation import system_predictions
    from trackrank.learn.embedding_table import save_embeddings

    save_embeddings(stored, np.eye(len(stored), 4), output=tmp_path / "e.parquet")
    with pytest.raises(ValueError, match="not the split.s 3 tracks with features, in order"):
        system_predictions(tmp_path / "e.parquet", ["a", "b", "c"], oracle=None, k=2)
