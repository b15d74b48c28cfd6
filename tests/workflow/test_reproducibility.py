"""The same inputs give the same tables: two runs of the tiny config agree byte for byte.

The second run is the SLURM run of tests/slurm_run.py when the SLURM tests are selected, else a local one.
Either ranks and mines in parts of a few anchors (``ranking.anchors_per_job``): its rankings and triplet
tables, read as one, must equal the first run's, made in one part per split and strategy.

On one machine, with the same thread counts. Across machines BLAS kernels and thread counts change
float sums, so trained weights and what follows them may differ in the last bits (docs/training.md, Reproducibility).
"""

from __future__ import annotations

import pytest
from slurm_run import SLURM_ANCHORS_PER_JOB

from conftest import snakemake, workflow_copy
from trackrank.rank.parts import read_parts

pytestmark = pytest.mark.workflow  # every test here runs Snakemake

#: Everything downstream of the seeds: test embeddings (trained systems and references), predictions,
#: metrics and the index vectors, byte for byte; oracle rankings and mined triplets as tables.
COMPARED = ("embeddings", "predictions", "metrics")
SHARDED = ("rankings", "triplets")


@pytest.fixture(scope="module")
def second_run(slurm_run, tmp_path_factory):
    """Another run of the tiny config: the session's SLURM run when the SLURM tests run (the same config and
    seed, its jobs on the one-node cluster of this machine: one tiny run fewer), else a local one."""
    if slurm_run is not None and slurm_run.skip is None:
        slurm_run.wait()
        return slurm_run.work
    work = workflow_copy(tmp_path_factory.mktemp("second_run"))
    run = snakemake(work, "--config", f"ranking={{anchors_per_job: {SLURM_ANCHORS_PER_JOB}}}")
    assert run.returncode == 0, run.stderr[-3000:]
    return work


def test_two_runs_of_the_tiny_config_write_byte_identical_tables(finished_run, second_run):
    first = sorted(p.relative_to(finished_run) for d in COMPARED for p in (finished_run / "results" / d).rglob("*.*"))
    first += sorted(p.relative_to(finished_run) for p in (finished_run / "results" / "index").glob("*/vectors.faiss"))
    assert len(first) > 30
    differ = [str(p) for p in first if (finished_run / p).read_bytes() != (second_run / p).read_bytes()]
    assert differ == []


def test_tables_made_in_parts_equal_those_made_in_one(finished_run, second_run):
    tables = sorted(p.relative_to(finished_run) for d in SHARDED for p in (finished_run / "results" / d).iterdir())
    assert len(tables) == 6  # three splits, three strategies
    for table in tables:
        whole = sorted((finished_run / table).glob("part-*.parquet"))
        parts = sorted((second_run / table).glob("part-*.parquet"))
        assert len(whole) == 1, table
        if table.parent.name == "triplets" or table.name == "train":  # the train split is the one cut in parts
            assert len(parts) > 1, (table, parts)
        assert read_parts(parts).equals(read_parts(whole)), table
