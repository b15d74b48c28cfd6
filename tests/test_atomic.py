"""Outputs are whole or absent: a killed or failing write never leaves a file that looks complete."""

from __future__ import annotations

import errno

import numpy as np
import pandas as pd
import pytest
from test_similarity import random_tags

import trackrank.ranking as ranking
from trackrank.atomic import OutputError, atomic_output
from trackrank.similarity import Oracle


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("previous\n")
    with pytest.raises(RuntimeError, match="killed"), atomic_output(target) as tmp:
        tmp.write_text("half a tab")
        raise RuntimeError("killed")
    assert target.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


def test_a_full_disk_is_a_clear_error_naming_the_output_and_leaves_nothing(tmp_path):
    target = tmp_path / "out" / "metrics.json"
    with pytest.raises(OutputError, match=r"cannot write .*metrics\.json: No space left on device"):
        with atomic_output(target) as tmp:
            tmp.write_text("{")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert list((tmp_path / "out").iterdir()) == []


def test_a_completed_write_replaces_the_target_and_keeps_its_suffix_for_the_writer(tmp_path):
    target = tmp_path / "table.parquet"
    with atomic_output(target) as tmp:
        assert tmp.suffix == ".parquet" and tmp.parent == tmp_path
        pd.DataFrame({"a": [1, 2]}).to_parquet(tmp)
    assert pd.read_parquet(target)["a"].tolist() == [1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["table.parquet"]


def test_rankings_killed_mid_write_leave_no_table(tmp_path, monkeypatch):
    tags = random_tags(n=300, m=12, per_track=3, seed=1)
    oracle = Oracle(tags, np.ones(12), ["Genre"] * 6 + ["Mood"] * 6)
    real_scores = oracle.scores

    def killed_after_the_first_chunk(anchor):
        if anchor == ranking.CHUNK_ANCHORS:
            raise KeyboardInterrupt("SIGINT")
        return real_scores(anchor)

    monkeypatch.setattr(oracle, "scores", killed_after_the_first_chunk)
    with pytest.raises(KeyboardInterrupt):
        ranking.write_rankings(oracle, [f"t{i}" for i in range(300)], tmp_path / "train.parquet", top_k=10)
    assert list(tmp_path.iterdir()) == []
