"""bench/mine_triplets.py mines a finished run's table again at other counts: at the run's own, it is the run's."""

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from trackrank.rank.parts import parts_in, read_parts

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests" / "config" / "tiny.yaml"

pytestmark = pytest.mark.workflow  # reads the tiny workflow run


def mine(finished_run: Path, out: Path, n_positives, n_negatives) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "bench" / "mine_triplets.py"), "--results", str(finished_run / "results")]
        + ["--config", str(TINY), "--n-positives", str(n_positives), "--n-negatives", str(n_negatives)]
        + ["--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def rows(table: pa.Table) -> list[tuple]:
    return list(zip(*(table.column(name).to_pylist() for name in ("anchor", "positive", "negative"))))


def test_at_the_runs_own_counts_the_table_is_the_runs_and_another_count_changes_it(finished_run, tmp_path):
    mining = yaml.safe_load(TINY.read_text())["mining"]
    run = mine(finished_run, tmp_path / "same.parquet", mining["n_positives"], mining["n_negatives"])
    assert run.returncode == 0, run.stderr[-2000:]
    workflow = read_parts(parts_in(finished_run / "results" / "triplets" / "distance"))
    assert rows(pq.read_table(tmp_path / "same.parquet")) == rows(workflow)
    run = mine(finished_run, tmp_path / "one.parquet", 1, 2)
    assert run.returncode == 0, run.stderr[-2000:]
    fewer = pq.read_table(tmp_path / "one.parquet")
    anchors = len(set(fewer.column("anchor").to_pylist()))
    assert fewer.num_rows == anchors * 1 * 2 < workflow.num_rows  # Np x Nn per anchor


def test_an_existing_out_is_refused_by_name_and_left_as_it_was(finished_run, tmp_path):
    out = tmp_path / "mine.parquet"
    out.write_bytes(b"the user's")
    run = mine(finished_run, out, 1, 2)
    assert run.returncode == 2 and f"--out {out}: exists" in run.stderr
    assert out.read_bytes() == b"the user's"
