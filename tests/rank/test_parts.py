"""Anchor-sharded rankings and triplets: the parts, read in order, are the table one job writes."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from builders import random_tags
from trackrank.errors import ConfigError
from trackrank.rank.mining import STRATEGIES, write_triplet_tables, write_triplets
from trackrank.rank.oracle import read_curve, write_curve, write_rankings
from trackrank.rank.parts import n_parts, part_anchors, read_parts
from trackrank.rank.similarity import Oracle

N = 45
PER_JOB = 7  # 7 parts, the last one of 3 anchors


@pytest.fixture(scope="module")
def oracle_and_ids():
    tags = random_tags(n=N, m=10, per_track=3, seed=3)  # few tags: ties in every ranking
    oracle = Oracle(tags, np.ones(10), ["Genre"] * 5 + ["Mood"] * 5)
    return oracle, [f"t{i:02d}" for i in range(N)]


def test_parts_cover_every_anchor_once_in_order():
    assert n_parts(N, PER_JOB) == 7
    anchors = [a for p in range(n_parts(N, PER_JOB)) for a in part_anchors(p, anchors_per_job=PER_JOB, n_anchors=N)]
    assert anchors == list(range(N))
    assert n_parts(0, PER_JOB) == 1 and list(part_anchors(0, anchors_per_job=PER_JOB, n_anchors=0)) == []
    with pytest.raises(ConfigError, match="part 7 does not exist: 45 anchors in blocks of 7 make 7 parts"):
        part_anchors(7, anchors_per_job=PER_JOB, n_anchors=N)
    with pytest.raises(ConfigError, match="ranking.anchors_per_job must be >= 1"):
        n_parts(N, 0)


def part_files(folder, write) -> list:
    """Each part written by its own call, as one job per part would."""
    paths = []
    for part in range(n_parts(N, PER_JOB)):
        paths.append(folder / f"part-{part:04d}.parquet")
        write(paths[-1], part_anchors(part, anchors_per_job=PER_JOB, n_anchors=N))
    return paths


def test_sharded_rankings_equal_the_unsharded_table_and_curve(oracle_and_ids, tmp_path):
    oracle, ids = oracle_and_ids
    whole = write_rankings(oracle, ids, output=tmp_path / "whole.parquet", top_k=10)
    sums = []

    def write(path, anchors):
        sums.append(path.with_suffix(".curve.csv"))
        write_curve(write_rankings(oracle, ids, output=path, top_k=10, anchors=anchors), sums[-1])

    parts = part_files(tmp_path, write)
    assert read_parts(parts).equals(pq.read_table(tmp_path / "whole.parquet"))
    assert not read_parts(parts[::-1]).equals(pq.read_table(tmp_path / "whole.parquet")), "the order is the parts'"
    np.testing.assert_allclose(read_curve(sums)["mean_score"], whole.mean_score_by_rank, rtol=1e-12)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_sharded_triplets_equal_the_unsharded_table(oracle_and_ids, strategy, tmp_path):
    oracle, ids = oracle_and_ids
    settings = {"n_positives": 3, "n_negatives": 4, "seed": 5}
    total = write_triplets(oracle, ids, output=tmp_path / "whole.parquet", strategy=strategy, **settings)
    counts = []

    def write(path, anchors):
        counts.append(write_triplets(oracle, ids, output=path, strategy=strategy, anchors=anchors, **settings))

    parts = part_files(tmp_path, write)
    assert sum(counts) == total > 0
    assert read_parts(parts).equals(pq.read_table(tmp_path / "whole.parquet"))


def test_mining_every_strategy_in_one_pass_writes_each_strategys_own_table(oracle_and_ids, tmp_path):
    oracle, ids = oracle_and_ids
    settings = {"n_positives": 3, "n_negatives": 4, "seed": 5}
    outputs = {strategy: tmp_path / f"{strategy}.parquet" for strategy in STRATEGIES}
    counts = write_triplet_tables(oracle, ids, outputs=outputs, anchors=range(10, 30), **settings)
    for strategy in STRATEGIES:
        alone = tmp_path / f"{strategy}.alone.parquet"
        assert (
            write_triplets(oracle, ids, output=alone, strategy=strategy, anchors=range(10, 30), **settings)
            == counts[strategy]
        )
        assert pq.read_table(outputs[strategy]).equals(pq.read_table(alone)), strategy
