"""bench/learning.py compares variants on the val split; the test split only with --confirm, and then says so."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "learning.py"
VARIANTS = json.dumps({"online": {"system": "tl_online"}, "wider_margin": {"system": "tl_online", "margin": 0.4}})

pytestmark = pytest.mark.workflow  # reads the tiny workflow run


def bench(finished_run: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    run = subprocess.run(
        [sys.executable, str(BENCH), "--results", str(finished_run / "results")]
        + ["--config", str(REPO / "tests" / "config" / "tiny.yaml"), "--out", str(out), "--jobs", "1", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def n_split(finished_run: Path, split: str) -> int:
    tracks = pd.read_parquet(finished_run / "results" / "catalog" / "tracks.parquet")
    return int((tracks.split == split).sum())


@pytest.fixture(scope="module")
def compared(finished_run, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """Two variants, two seeds each, trained on the tiny run and compared (on val, the default)."""
    out = tmp_path_factory.mktemp("learning")
    return out, bench(finished_run, out, "--variants", VARIANTS, "--seeds", "0", "1")


def test_variants_are_compared_on_the_val_split_by_default(compared, finished_run):
    out, run = compared
    assert "on val:" in run.stdout and "CONFIRMATION" not in run.stdout
    summary = pd.read_csv(out / "val_summary.csv")
    assert summary["variant"].tolist() == ["online", "wider_margin"] and set(summary["split"]) == {"val"}
    assert set(summary["against"]) == {"online"}
    assert summary.loc[0, "d_ndcg"] == "+0.0 ± 0.0" and summary.loc[0, "d_ndcg_seeds"] == "[+0.0, +0.0] no difference"
    assert not list(out.glob("test_*.csv"))
    for variant in ("online", "wider_margin"):
        for seed in (0, 1):
            folder = out / variant / f"seed{seed}"
            assert len(pd.read_parquet(folder / "metrics" / "val.per_query.parquet")) == n_split(finished_run, "val")
            assert not (folder / "metrics" / "test.per_query.parquet").exists()


def test_the_test_split_is_read_only_to_confirm_and_retrains_nothing(compared, finished_run):
    out, _ = compared
    trained = {p: p.stat().st_mtime_ns for p in out.glob("*/seed*/model.pt")}
    refused = subprocess.run(
        [sys.executable, str(BENCH), "--compare", str(out / "online"), str(out / "wider_margin"), "--confirm"],
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0 and "no test metrics" in refused.stderr
    run = bench(finished_run, out, "--variants", VARIANTS, "--seeds", "0", "1", "--confirm")
    assert run.stdout.startswith("CONFIRMATION on the test split") and "on test:" in run.stdout
    assert "served: " in run.stdout and "(the best val nDCG@20 of online, wider_margin)" in run.stdout
    assert set(pd.read_csv(out / "test_summary.csv")["split"]) == {"test"}
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/seed*/model.pt")} == trained
    per_query = pd.read_parquet(out / "online" / "seed0" / "metrics" / "test.per_query.parquet")
    assert len(per_query) == n_split(finished_run, "test")
    compare = subprocess.run(
        [sys.executable, str(BENCH), "--compare", str(out / "online"), str(out / "wider_margin")],
        capture_output=True,
        text=True,
    )
    assert compare.returncode == 0 and "CONFIRMATION" not in compare.stdout
    assert [line.split()[0] for line in compare.stdout.splitlines()[1:]] == ["val", "val"]


def test_runs_linked_from_another_bench_are_compared_under_their_names_here(compared, finished_run, tmp_path):
    """A confirmation beside another one's runs links them into its own folder under the names of its own
    variants file (bench/results/confirm_rest_*): they are read back under those names, not trained again."""
    out, _ = compared
    trained = {p: p.stat().st_mtime_ns for p in out.glob("*/seed*/model.pt")}
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "tl_online").symlink_to(out / "online")
    variants = json.dumps({"tl_online": {"system": "tl_online"}})
    bench(finished_run, linked, "--variants", variants, "--seeds", "0", "1", "--reference", "tl_online")
    summary = pd.read_csv(linked / "val_summary.csv")
    assert summary["variant"].tolist() == ["tl_online"] and summary["against"].tolist() == ["tl_online"]
    assert summary.loc[0, "seeds"] == 2 and summary.loc[0, "d_ndcg"] == "+0.0 ± 0.0"
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/seed*/model.pt")} == trained


def test_a_reference_that_no_variant_makes_is_refused_by_name_before_anything_trains(tmp_path):
    """A typo in --reference would otherwise be found after hours of training, when the report is made."""
    run = subprocess.run(
        [sys.executable, str(BENCH), "--results", str(tmp_path / "results"), "--out", str(tmp_path / "out")]
        + ["--variants", VARIANTS, "--reference", "online", "onlne", "wider_margin"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2 and "--reference onlne: not a variant of --variants" in run.stderr
    assert not (tmp_path / "out").exists()
