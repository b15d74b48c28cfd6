"""bench/train_throughput.py is the first thing run on a GPU machine: it must run for every kind of system."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "train_throughput.py"


def bench(system: str, *data: str) -> subprocess.CompletedProcess:
    """One step of the benchmark on the CPU; fails the test, with its stderr, if it fails."""
    run = subprocess.run(
        [sys.executable, str(BENCH), "--system", system, "--width", "0.0625", "--steps", "1", "--workers", "0"]
        + ["--device", "cpu", *data],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return run


@pytest.mark.parametrize("system", ["tl_distance", "tl_online", "at_baseline"])
def test_throughput_bench_runs_on_synthetic_data(system):
    """An offline system, an online one and the tagger each get the tables they train on."""
    run = bench(system, "--tracks", "20")
    assert "baseline: in-memory random batches" in run.stdout
    assert "real pipeline, 0 worker(s)" in run.stdout
    assert "h on cpu" in run.stdout  # the cost of one epoch, estimated from the measured step


def test_throughput_bench_reads_a_finished_run(finished_run):
    """--results: a workflow run's sharded patch cache, val rankings and triplet table."""
    run = bench("tl_distance", "--results", str(finished_run / "results"))
    assert f"data: {finished_run / 'results'}" in run.stdout
    assert "real pipeline, 0 worker(s)" in run.stdout
