"""The tiny config's run through the SLURM profile, started in the background when the session starts.

Why in the background: that run mostly waits (submission, scheduling, status polls), so it goes on
while the rest of the suite runs, and tests/workflow/test_slurm.py only waits for what is left of it. It
starts only when a test marked ``slurm`` is selected (``-m "not slurm"`` starts nothing).

workflow/profiles/slurm/local-cluster.sh starts slurmctld, slurmd and munged from Debian's packages
(installing them with apt-get when missing; the tests skip only when that is impossible). The run
uses the profile as it is, except for memory and CPU requests shrunk to fit a small machine; its GPU
requests stay (the node advertises one GPU backed by /dev/null).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "workflow" / "profiles" / "slurm" / "local-cluster.sh"
PROFILE = REPO / "workflow" / "profiles" / "slurm" / "config.yaml"
SYSTEMS = yaml.safe_load((REPO / "tests" / "config" / "tiny.yaml").read_text())["train"]["systems"]
# What the tiny run's jobs fit in on a 2-core machine; nothing else of the profile changes.
SMALL_MEM_MB = 2000
SMALL_CPUS = 1
SLURM_ANCHORS_PER_JOB = 5  # the tiny train split (13 tracks) in 3 parts, not the local run's one


def cluster(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(CLUSTER), command], capture_output=True, text=True, timeout=900)


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
    """--default-resources and --set-resources: the profile's own, with less memory and fewer CPUs, and
    training's memory request (train.resources in the config) capped the same way.

    A command-line option replaces the profile's whole key, so every entry is passed again.
    """
    profile = yaml.safe_load(PROFILE.read_text())
    defaults = fitted(profile["default-resources"])
    per_rule = {rule: fitted(resources) for rule, resources in profile["set-resources"].items()}
    return [
        "--config",  # training's own request (train.resources), its memory capped like the rest
        f"train={{resources: {{mem_mb: {SMALL_MEM_MB}}}}}",
        # rankings and mining in parts of a few anchors: the tables must still equal the local run's, made in one part
        f"ranking={{anchors_per_job: {SLURM_ANCHORS_PER_JOB}}}",
        "--default-resources",
        *(f"{key}={profile_value(value)}" for key, value in defaults.items()),
        "--set-resources",
        *(
            f"{rule}:{key}={profile_value(value)}"
            for rule, resources in per_rule.items()
            for key, value in resources.items()
        ),
    ]


@dataclass
class SlurmRun:
    """The background run: its working folder, the environment that reaches the cluster, its process."""

    work: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    log: Path | None = None
    skip: str | None = None  # why the SLURM tests skip (no Slurm and no way to install it)
    problem: str | None = None  # why the run could not start (the SLURM tests fail with it)

    def wait(self) -> str:
        """Everything the run printed, once it has ended; fails the calling test if it did not succeed."""
        if self.skip:
            pytest.skip(self.skip)
        assert self.problem is None, self.problem
        self.process.wait(timeout=1800)
        output = self.log.read_text()
        assert self.process.returncode == 0, output[-5000:]
        return output


def start_slurm_run(work: Path) -> tuple[SlurmRun, bool]:
    """(the started run, whether this session started the cluster and so stops it)."""
    started = False
    if cluster("status").returncode != 0:
        start = cluster("start")
        if start.returncode == 3:
            return SlurmRun(skip=f"no SLURM: {start.stderr.strip().splitlines()[-1]}"), False
        if start.returncode != 0:
            return SlurmRun(problem=f"the local cluster did not start: {start.stdout}{start.stderr}"), False
        started = "already running" not in start.stderr  # another session's start may have won the race
    env = {**os.environ, **dict(re.findall(r"export (\w+)=(\S+)", cluster("env").stdout))}
    log = work.parent / "snakemake.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "snakemake",
                "--configfile",
                "tiny.yaml",
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
            cwd=work,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    return SlurmRun(work=work, env=env, process=process, log=log), started


@pytest.fixture(scope="session", autouse=True)
def slurm_run(request, tmp_path_factory):
    """The SLURM run of the tiny config, started at the session's first test when a ``slurm`` test is
    selected, else None; cancelled if still running at the end, and the cluster stopped if it started it."""
    if not any(item.get_closest_marker("slurm") for item in request.session.items):
        yield None
        return
    from conftest import workflow_copy

    run, started = start_slurm_run(workflow_copy(tmp_path_factory.mktemp("slurm")))
    try:
        yield run
    finally:
        if run.process is not None and run.process.poll() is None:
            run.process.terminate()  # Snakemake cancels its SLURM jobs
            run.process.wait(timeout=120)
        if started:
            stop = cluster("stop")
            assert stop.returncode == 0, stop.stdout + stop.stderr
