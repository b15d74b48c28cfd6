"""The same inputs give the same tables: two runs of the tiny config agree byte for byte.

On one machine, with the same thread counts. Across machines BLAS kernels and thread counts change
float sums, so trained weights and what follows them may differ in the last bits (README).
"""

from __future__ import annotations

import pytest

from conftest import snakemake, workflow_copy

#: Everything downstream of the seeds: oracle rankings, mined triplets, test embeddings (trained
#: systems and references), predictions, metrics and the index vectors.
COMPARED = ("rankings", "triplets", "embeddings", "predictions", "metrics")


@pytest.fixture(scope="module")
def second_run(tmp_path_factory):
    work = workflow_copy(tmp_path_factory.mktemp("second_run"))
    run = snakemake(work)
    assert run.returncode == 0, run.stderr[-3000:]
    return work


def test_two_runs_of_the_tiny_config_write_byte_identical_tables(finished_run, second_run):
    first = sorted(p.relative_to(finished_run) for d in COMPARED for p in (finished_run / "results" / d).rglob("*.*"))
    first += sorted(p.relative_to(finished_run) for p in (finished_run / "results" / "index").glob("*/vectors.faiss"))
    assert len(first) > 30
    differ = [str(p) for p in first if (finished_run / p).read_bytes() != (second_run / p).read_bytes()]
    assert differ == []
