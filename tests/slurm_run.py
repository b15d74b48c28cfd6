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

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
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
    """The background run: its working folder, the environment that reaches the cluster, and the folder
    where its log and, once it has ended, its exit status are written (any worker of the session waits
    on those files: the run is started once for the session)."""

    work: Path | None = None
    exports: dict[str, str] = field(default_factory=dict)
    folder: Path | None = None
    skip: str | None = None  # why the SLURM tests skip (no Slurm and no way to install it)
    problem: str | None = None  # why the run could not start (the SLURM tests fail with it)
    pid: int | None = None  # its process group, stopped at the session's end if it is still running
    started_cluster: bool = False  # whether this session started the cluster, and so stops it

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, **self.exports}

    def wait(self) -> str:
        """Everything the run printed, once it has ended; fails the calling test if it did not succeed."""
        if self.skip:
            pytest.skip(self.skip)
        assert self.problem is None, self.problem
        deadline = time.monotonic() + 1800
        while not (self.folder / RETURNCODE).exists():
            assert time.monotonic() < deadline, "the SLURM run did not end within 30 minutes"
            time.sleep(2)
        output = (self.folder / LOG).read_text()
        assert (self.folder / RETURNCODE).read_text().strip() == "0", output[-5000:]
        return output

    def save(self) -> None:
        state = {key: str(value) if isinstance(value, Path) else value for key, value in asdict(self).items()}
        (self.folder / STATE).write_text(json.dumps(state))

    @classmethod
    def load(cls, folder: Path) -> SlurmRun:
        state = json.loads((folder / STATE).read_text())
        return cls(**{**state, "work": state["work"] and Path(state["work"]), "folder": folder})


STATE, LOG, RETURNCODE = "run.json", "snakemake.log", "returncode"


def start_slurm_run(folder: Path) -> SlurmRun:
    """Start the run in ``folder`` (a new process group; its exit status is written to ``folder/returncode``)."""
    if cluster("status").returncode != 0:
        start = cluster("start")
        if start.returncode == 3:
            return SlurmRun(folder=folder, skip=f"no SLURM: {start.stderr.strip().splitlines()[-1]}")
        if start.returncode != 0:
            return SlurmRun(folder=folder, problem=f"the local cluster did not start: {start.stdout}{start.stderr}")
        started = "already running" not in start.stderr  # another session's start may have won the race
    else:
        started = False
    from conftest import workflow_copy

    work = workflow_copy(folder)
    exports = dict(re.findall(r"export (\w+)=(\S+)", cluster("env").stdout))
    command = [
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
    ]
    # the shell writes the exit status when Snakemake ends, for whichever worker waits on it
    wrapper = '"${@:3}" > "$1" 2>&1; echo $? > "$2.part" && mv "$2.part" "$2"'
    process = subprocess.Popen(
        ["bash", "-c", wrapper, "slurm-run", str(folder / LOG), str(folder / RETURNCODE), *command],
        cwd=work,
        env={**os.environ, **exports},
        start_new_session=True,
    )
    return SlurmRun(work=work, exports=exports, folder=folder, pid=process.pid, started_cluster=started)


@pytest.fixture(scope="session", autouse=True)
def slurm_run(request, tmp_path_factory):
    """The SLURM run of the tiny config when a ``slurm`` test is selected, else None: started by the first
    test of the session (of whichever pytest-xdist worker comes first), once; stopped by
    :func:`stop_slurm_run` when the session ends."""
    if not any(item.get_closest_marker("slurm") for item in request.session.items):
        return None
    from conftest import file_lock, session_folder

    folder = session_folder(tmp_path_factory) / "slurm"
    folder.mkdir(exist_ok=True)
    with file_lock(folder / "lock"):
        if not (folder / STATE).exists():
            start_slurm_run(folder).save()
        return SlurmRun.load(folder)


def group_alive(pid: int) -> bool:
    """Whether a process of the group ``pid`` leads is still running."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_slurm_run(session_folder: Path) -> None:
    """At the session's end: cancel the run if it is still going (Snakemake cancels its SLURM jobs), and
    stop the cluster if the session started it."""
    folder = session_folder / "slurm"
    if not (folder / STATE).exists():
        return
    run = SlurmRun.load(folder)
    if run.pid is not None and not (folder / RETURNCODE).exists():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGTERM)
        deadline = time.monotonic() + 120
        while group_alive(run.pid) and time.monotonic() < deadline:
            time.sleep(1)
    if run.started_cluster:
        stop = cluster("stop")
        if stop.returncode != 0:
            sys.stderr.write(f"the local SLURM cluster did not stop: {stop.stdout}{stop.stderr}\n")
