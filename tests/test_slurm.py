"""The tiny config run end to end through the SLURM profile, on a one-node cluster on this machine.

workflow/profiles/slurm/local-cluster.sh starts slurmctld, slurmd and munged from Debian's packages
(installing them with apt-get when missing; the test is skipped only when that is impossible). The
run uses the profile as it is, except for memory and CPU requests shrunk to fit a small machine;
its GPU requests stay (the node advertises one GPU backed by /dev/null). Its outputs must equal
those of a plain local run with the same seed.

Deselect with `pytest -m "not slurm"`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from conftest import REPO, workflow_copy

pytestmark = pytest.mark.slurm

CLUSTER = REPO / "workflow" / "profiles" / "slurm" / "local-cluster.sh"
PROFILE = REPO / "workflow" / "profiles" / "slurm" / "config.yaml"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--configfile", "tiny.yaml"]
SYSTEMS = yaml.safe_load((REPO / "tests" / "config" / "tiny.yaml").read_text())["train"]["systems"]
# What the tiny run's jobs fit in on a 2-core machine; nothing else of the profile changes.
SMALL_MEM_MB = 2000
SMALL_CPUS = 1
SUBMITTED = re.compile(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")


def cluster(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(CLUSTER), command], capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def slurm_env() -> dict[str, str]:
    """The environment that reaches the cluster; starts it when it is down, stops it after if so."""
    started = False
    if cluster("status").returncode != 0:
        start = cluster("start")
        if start.returncode == 3:
            pytest.skip(f"no SLURM: {start.stderr.strip().splitlines()[-1]}")
        assert start.returncode == 0, start.stdout + start.stderr
        started = "already running" not in start.stderr  # another session's start may have won the race
    exports = dict(re.findall(r"export (\w+)=(\S+)", cluster("env").stdout))
    try:
        yield {**os.environ, **exports}
    finally:
        if started:
            stop = cluster("stop")
            assert stop.returncode == 0, stop.stdout + stop.stderr


def profile_value(value) -> str:
    """A profile value as Snakemake passes it on (snakemake.profiles.ProfileConfigFileParser)."""
    if isinstance(value, str):
        for kind in (int, float):
            try:
                kind(value)
                return repr(value)
            except ValueError:
                pass
    return str(value)


def fitted(resources: dict) -> dict:
    """The profile's resources with memory and CPU requests capped for this machine, the rest as is."""
    small = dict(resources)
    if "mem_mb" in small:
        small["mem_mb"] = min(small["mem_mb"], SMALL_MEM_MB)
    if isinstance(small.get("cpus_per_task"), int):
        small["cpus_per_task"] = min(small["cpus_per_task"], SMALL_CPUS)
    return small


def small_machine_overrides() -> list[str]:
    """--default-resources and --set-resources: the profile's own, with less memory and fewer CPUs.

    A command-line option replaces the profile's whole key, so every entry is passed again.
    """
    profile = yaml.safe_load(PROFILE.read_text())
    defaults = fitted(profile["default-resources"])
    per_rule = {rule: fitted(resources) for rule, resources in profile["set-resources"].items()}
    for system in SYSTEMS:
        assert per_rule[f"train_{system}"]["gpu"] == profile["set-resources"][f"train_{system}"]["gpu"] >= 1
    return [
        "--default-resources",
        *(f"{key}={profile_value(value)}" for key, value in defaults.items()),
        "--set-resources",
        *(
            f"{rule}:{key}={profile_value(value)}"
            for rule, resources in per_rule.items()
            for key, value in resources.items()
        ),
    ]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, slurm_env) -> tuple[Path, Path, str]:
    """(local run, SLURM run, the SLURM run's log): the same tiny config, the same seed.

    The SLURM run mostly waits (submission, scheduling, status polls), so the local run goes
    meanwhile.
    """
    on_slurm = workflow_copy(tmp_path_factory.mktemp("slurm"))
    with open(on_slurm.parent / "snakemake.log", "w+") as log:
        slurm_run = subprocess.Popen(
            [
                *SNAKEMAKE,
                "--profile",
                "workflow/profiles/slurm",
                # no accounting database on the test cluster
                "--slurm-status-command",
                "squeue",
                "--slurm-no-account",
                "--slurm-keep-successful-logs",
                "--slurm-init-seconds-before-status-checks",
                "2",
                *small_machine_overrides(),
            ],
            cwd=on_slurm,
            env=slurm_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            local = workflow_copy(tmp_path_factory.mktemp("local"))
            run = subprocess.run([*SNAKEMAKE, "--cores", "2"], cwd=local, capture_output=True, text=True)
            assert run.returncode == 0, run.stderr[-3000:]
            slurm_run.wait(timeout=1800)
        finally:
            if slurm_run.poll() is None:
                slurm_run.terminate()  # Snakemake cancels its SLURM jobs
                slurm_run.wait(timeout=120)
        log.seek(0)
        output = log.read()
    assert slurm_run.returncode == 0, output[-5000:]
    return local, on_slurm, output


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


def test_training_embedding_and_feature_jobs_ran_as_slurm_jobs(runs, slurm_env):
    _, on_slurm, log = runs
    jobs = slurm_jobs(log)
    assert len(jobs.get("cqt_shard", [])) == 2, log[-3000:]
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
    """The tables of one run, with the run's own folder cut from paths (catalog paths are absolute)."""
    found = {}
    for path in sorted((work / "results").glob(pattern)):
        table = pd.read_parquet(path)
        for column in table.columns:
            if pd.api.types.is_string_dtype(table[column]):
                table[column] = table[column].str.replace(f"{work}/", "", regex=False)
        found[path.name] = table
    return found


@pytest.mark.parametrize(
    "pattern", ["catalog/tracks.parquet", "features/shard-*.parquet", "rankings/*.parquet", "triplets/*.parquet"]
)
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
