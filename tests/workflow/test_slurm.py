"""The tiny config run end to end through the SLURM profile, on a one-node cluster on this machine.

The run starts in the background at the session's start (tests/slurm_run.py: the cluster, the
profile with memory and CPU requests shrunk to fit a small machine, its GPU requests kept). Its
outputs must equal those of a plain local run with the same seed: the session's ``finished_run``.

Deselect with `pytest -m "not slurm"`.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch
from slurm_run import SLURM_ANCHORS_PER_JOB, SYSTEMS

from trackrank.rank.parts import read_parts

pytestmark = [pytest.mark.slurm, pytest.mark.workflow, pytest.mark.timeout(1800)]  # waits for the whole cluster run

SUBMITTED = re.compile(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")


@pytest.fixture(scope="module")
def slurm_env(slurm_run) -> dict[str, str]:
    """The environment that reaches the cluster."""
    slurm_run.wait()
    return slurm_run.env


@pytest.fixture(scope="module")
def runs(finished_run, slurm_run) -> tuple[Path, Path, str]:
    """(local run, SLURM run, the SLURM run's log): the same tiny config, the same seed."""
    output = slurm_run.wait()
    return finished_run, slurm_run.work, output


def slurm_jobs(log: str) -> dict[str, list[tuple[str, Path]]]:
    """Rule name -> [(SLURM job id, SLURM log file)] of the jobs the run submitted."""
    jobs: dict[str, list[tuple[str, Path]]] = {}
    for job_id, logfile in SUBMITTED.findall(log):
        path = Path(logfile.rstrip("."))
        rule = next(part for part in path.parts if part.startswith("rule_"))[len("rule_") :]
        jobs.setdefault(rule, []).append((job_id, path))
    return jobs


def scontrol_job(job_id: str, env: dict[str, str]) -> str:
    shown = subprocess.run(["scontrol", "-o", "show", "job", job_id], env=env, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    return shown.stdout


def test_training_embedding_feature_and_mining_jobs_ran_as_slurm_jobs(runs, slurm_env):
    _, on_slurm, log = runs
    jobs = slurm_jobs(log)
    assert len(jobs.get("cqt_shard", [])) == 2, log[-3000:]
    splits = pd.read_parquet(on_slurm / "results" / "catalog" / "tracks.parquet")["split"]
    parts = -(-int((splits == "train").sum()) // SLURM_ANCHORS_PER_JOB)
    assert parts > 1 and len(jobs.get("mine_triplets", [])) == parts, log[-3000:]  # every strategy in one job
    for system in SYSTEMS:
        assert len(jobs.get(f"train_{system}", [])) == 1, log[-3000:]
    assert len(jobs.get("embed", [])) == len(SYSTEMS), log[-3000:]
    gpu_rules = {"embed", *(f"train_{system}" for system in SYSTEMS)}
    for rule in ("cqt_shard", *sorted(gpu_rules)):
        for job_id, logfile in jobs[rule]:
            assert logfile.is_relative_to(on_slurm.resolve() / ".snakemake" / "slurm_logs"), logfile
            assert logfile.name == f"{job_id}.log" and logfile.exists(), logfile
            shown = scontrol_job(job_id, slurm_env)
            assert "JobState=COMPLETED" in shown, shown
            if rule in gpu_rules:
                # The profile's GPU request reached SLURM: `--gpus=1` on the gpu partition.
                assert re.search(r"TresPerJob=\S*gres[:/]gpu[:=]1\b", shown), shown
                assert "Partition=gpu " in shown, shown
            else:
                assert "gpu" not in re.search(r"TresPerJob=(\S*)", shown + " TresPerJob=").group(1)
                assert "Partition=cpu " in shown, shown


def tables(work: Path, pattern: str) -> dict[str, pd.DataFrame]:
    """The tables of one run, with the run's own folder cut from paths (catalog paths are absolute); a
    table written in parts (``*/part-*.parquet``) is the parts read as one, under its folder's name."""
    found = {}
    for path in sorted((work / "results").glob(pattern)):
        parts = sorted(path.glob("part-*.parquet")) if path.is_dir() else [path]
        table = read_parts(parts).to_pandas()
        for column in table.columns:
            if pd.api.types.is_string_dtype(table[column]):
                table[column] = table[column].str.replace(f"{work}/", "", regex=False)
        found[path.name] = table
    return found


@pytest.mark.parametrize("pattern", ["catalog/tracks.parquet", "features/shard-*.parquet", "rankings/*", "triplets/*"])
def test_slurm_run_writes_the_tables_of_a_local_run(runs, pattern):
    local, on_slurm, _ = runs
    expected, got = tables(local, pattern), tables(on_slurm, pattern)
    assert expected and list(got) == list(expected)
    for name, table in expected.items():
        pd.testing.assert_frame_equal(got[name], table, check_exact=True, obj=name)


def test_slurm_run_trains_the_same_models_as_a_local_run(runs):
    # On the CPU (a SLURM job sees CUDA_VISIBLE_DEVICES=0 but no device) training is deterministic
    # for a seed: same loss curves, same weights.
    local, on_slurm, _ = runs
    for system in SYSTEMS:
        expected = pd.read_csv(local / "results" / "models" / system / "history.csv")
        got = pd.read_csv(on_slurm / "results" / "models" / system / "history.csv")
        assert {"train_loss", "val_loss"} <= set(expected.columns)
        measured = [column for column in expected.columns if column != "seconds"]  # all but the timing
        pd.testing.assert_frame_equal(got[measured], expected[measured], check_exact=True, obj=system)
        expected_weights = torch.load(local / "results" / "models" / system / "model.pt", weights_only=True)["model"]
        got_weights = torch.load(on_slurm / "results" / "models" / system / "model.pt", weights_only=True)["model"]
        assert got_weights.keys() == expected_weights.keys()
        for name, weights in expected_weights.items():
            assert torch.equal(got_weights[name], weights), f"{system}: {name}"
