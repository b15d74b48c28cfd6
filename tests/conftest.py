"""Shared fixtures: tiny catalogs synthesised in the test, never stored files."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import xdist
from slurm_run import slurm_run, stop_slurm_run  # noqa: F401  (autouse: the SLURM run starts with the session)

REPO = Path(__file__).resolve().parents[1]
if "PYTEST_XDIST_WORKER" in os.environ:  # one worker per core (pyproject's -n auto): one thread each for torch
    os.environ.setdefault("OMP_NUM_THREADS", "1")
TAGS = ["rock", "jazz", "piano", "calm"]


def sine(
    freq: float = 440.0, seconds: float = 13.0, sr: int = 44100, amplitude: float = 0.5, channels: int = 1
) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    y = amplitude * np.sin(2 * np.pi * freq * t)
    return np.stack([y] * channels, axis=1) if channels > 1 else y


def write_catalog(folder: Path, rows: list[dict], tags: list[str] = TAGS) -> Path:
    """Write tags.csv and tags_meta.csv for ``rows`` (track_id, path, artist, tag values)."""
    folder.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    for tag in tags:
        table[tag] = table[tag].fillna(0.5) if tag in table else 0.5
    table[["track_id", "path", "artist", *tags]].to_csv(folder / "tags.csv", index=False)
    categories = {"rock": "Genre", "jazz": "Genre", "piano": "Recording", "calm": "Mood"}
    pd.DataFrame({"tag": tags, "category": [categories.get(t, "Mood") for t in tags]}).to_csv(
        folder / "tags_meta.csv", index=False
    )
    return folder


@pytest.fixture
def cache_dir(tmp_path):
    """A patch cache of three tracks (a, b, c) of 600 random CQT frames (dB)."""
    folder = tmp_path / "cache"
    folder.mkdir()
    rng = np.random.default_rng(0)
    np.save(folder / "cqt.f16.npy", (rng.normal(-40, 15, (3 * 600, 96))).astype(np.float16))
    pd.DataFrame({"track_id": ["a", "b", "c"], "offset": [0, 600, 1200], "n_frames": 600}).to_parquet(
        folder / "index.parquet"
    )
    return folder


@pytest.fixture
def small_catalog(tmp_path: Path) -> Path:
    """Six good tracks by three artists, one per supported format and rate."""
    folder = tmp_path / "catalog"
    (folder / "audio").mkdir(parents=True)
    rows = []
    formats = [
        ("wav", 44100, 1),
        ("flac", 22050, 2),
        ("ogg", 48000, 1),
        ("mp3", 44100, 2),
        ("wav", 16000, 2),
        ("flac", 44100, 1),
    ]
    for i, (ext, sr, channels) in enumerate(formats):
        path = f"audio/t{i}.{ext}"
        sf.write(folder / path, sine(110.0 * (i + 1), sr=sr, channels=channels), sr)
        rows.append({"track_id": f"t{i}", "path": path, "artist": f"a{i % 3}", "rock": i / 5})
    return write_catalog(folder, rows)


SNAKEMAKE = [sys.executable, "-m", "snakemake"]
#: Fixtures that run the workflow: a test that uses one is a ``workflow`` test.
WORKFLOW_FIXTURES = {"finished_run"}
#: Snakemake calls that only read a workflow folder: they do not lock it, as tests in two workers read the
#: session's finished run at once (a dry run takes Snakemake's lock for a moment; two at once would clash).
READ_ONLY = {"-n", "--dry-run", "--report", "--detailed-summary", "--summary"}


#: Fixture scopes shared by the tests of a module: such tests stay together, so the fixture is built once.
SHARED_SCOPES = {"module", "class", "package"}


def shares_a_fixture(item) -> bool:
    """Whether ``item`` uses a module-, class- or package-scoped fixture (built once per worker that needs it)."""
    info = getattr(item, "_fixtureinfo", None)  # pytest's record of a test function's fixtures
    return info is not None and any(d.scope in SHARED_SCOPES for defs in info.name2fixturedefs.values() for d in defs)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the groups
def pytest_collection_modifyitems(items):
    """Mark every test that runs Snakemake ``workflow`` (``-m "not workflow"``: the unit tests alone):
    those that use a workflow fixture, and those of modules that declare ``pytestmark = workflow``.

    For pytest-xdist (``--dist loadgroup``): the tests of a module that share a module fixture form one group
    (the fixture is built once, in one worker); every other test is a unit of its own, which either worker
    takes. The order keeps both workers busy: first the unit that makes the session's tiny run, then the
    units that do not need it (the other worker runs them meanwhile), then those that read it, the largest
    groups first, so that the last minutes are spread over both workers in single tests."""
    group_of, reading_run = {}, []
    for item in items:
        group_of[item] = item.module.__name__ if shares_a_fixture(item) else item.nodeid
        if group_of[item] != item.nodeid:
            item.add_marker(pytest.mark.xdist_group(group_of[item]))
        if WORKFLOW_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.workflow)
            reading_run.append(group_of[item])  # in collection order: the first one makes the run
    maker = reading_run[0] if reading_run else None
    needs_run, size = set(reading_run), Counter(group_of.values())

    def place(item) -> tuple[int, int]:
        group = group_of[item]
        return (0, 0) if group == maker else (2, -size[group]) if group in needs_run else (1, 0)

    items.sort(key=place)


def pytest_sessionfinish(session):
    """In the process that started the workers (or the only one): stop the session's SLURM run."""
    if not xdist.is_xdist_worker(session):
        stop_slurm_run(session.config._tmp_path_factory.getbasetemp())


def session_folder(tmp_path_factory) -> Path:
    """The session's own temporary folder, shared by its pytest-xdist workers (each has one below it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if "PYTEST_XDIST_WORKER" in os.environ else base


@contextlib.contextmanager
def file_lock(lock: Path, mode: int = fcntl.LOCK_EX):
    """Hold a lock on ``lock`` (created if missing): exclusive, one worker of the session at a time, or
    shared (``fcntl.LOCK_SH``), with other sharers but never with an exclusive holder."""
    with open(lock, "a") as handle:
        fcntl.flock(handle, mode)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def workflow_copy(tmp_path: Path) -> Path:
    """The workflow's files in a fresh folder, so the test never touches the repo's results/."""
    work = tmp_path / "work"
    work.mkdir()
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, work / name)
    for name in ("workflow", "envs", "src"):
        shutil.copytree(REPO / name, work / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "tests" / "config" / "tiny.yaml", work / "tiny.yaml")
    return work


def snakemake(work: Path, *args: str) -> subprocess.CompletedProcess:
    unlocked = ["--nolock"] if READ_ONLY & set(args) else []
    return subprocess.run(
        [*SNAKEMAKE, "--cores", "2", "--configfile", "tiny.yaml", *unlocked, *args],
        cwd=work,
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    """The whole tiny workflow, run once for the session (tests/config/tiny.yaml): the first worker that
    needs it runs it, the others wait for it and read the same folder (tests copy it to change anything)."""
    folder = session_folder(tmp_path_factory) / "finished_run"
    folder.mkdir(exist_ok=True)
    failed = folder / "failed.txt"
    with file_lock(folder / "lock"):
        if not (folder / "work").exists() and not failed.exists():
            work = workflow_copy(folder)
            run = snakemake(work)
            if run.returncode != 0:
                failed.write_text(run.stderr[-3000:])
    assert not failed.exists(), failed.read_text()
    return folder / "work"


@pytest.fixture(autouse=True)
def reads_the_finished_run(request):
    """A test that changes the session's finished run (marker ``changes_finished_run``, restoring it after)
    runs while no other worker's test reads it, and the others wait for it."""
    if "finished_run" not in request.fixturenames:
        yield
        return
    folder = request.getfixturevalue("finished_run").parent
    changes = request.node.get_closest_marker("changes_finished_run") is not None
    with file_lock(folder / "readers.lock", fcntl.LOCK_EX if changes else fcntl.LOCK_SH):
        yield


@pytest.fixture(scope="session")
def small_index(tmp_path_factory) -> tuple[Path, list[str]]:
    """An exact index of three 40 s tracks (3+ patches each) whose sound changes along the track, built
    with a TL network at its initialisation; its checkpoint is a trained one's shape."""
    import torch

    from builders import checkpoint, index_small_catalog
    from trackrank.data.feature_cache import CacheFiles, build_cache
    from trackrank.data.features import PARQUET_OPTIONS, shard_table, track_cqt
    from trackrank.learn.models import build_model
    from trackrank.learn.settings import TrainSettings

    root = tmp_path_factory.mktemp("small_index")
    ids, paths, matrices = [], [], []
    for i in range(3):
        audio = np.concatenate([sine(110.0 * (i + 1) * (j + 1), seconds=10.0) for j in range(4)])
        path = root / f"t{i}.wav"
        sf.write(path, audio, 44100)
        ids.append(f"t{i}")
        paths.append(str(path))
        matrices.append(track_cqt(path).astype(np.float16))
    pq.write_table(shard_table(ids, matrices), root / "shard-000.parquet", **PARQUET_OPTIONS)
    cache = CacheFiles.in_folder(root / "cache")
    build_cache([root / "shard-000.parquet"], cache)
    pd.DataFrame({"track_id": ids, "path": paths, "artist": ["a", "a", "b"], "split": "train"}).to_parquet(
        root / "tracks.parquet"
    )
    settings = TrainSettings(system="tl_distance", width=1 / 32, dim=8)
    model = build_model("triplet", dim=8, width=settings.width, seed=0)
    torch.save(checkpoint(model, tags=["x"], **dataclasses.asdict(settings)), root / "model.pt")
    pd.DataFrame(
        {"track_id": ids, "rock": [0.9, 0.2, 0.6], "jazz": [0.0, 0.8, 0.7], "calm": [0.5, 0.4, 0.95]}
    ).to_parquet(root / "tags.parquet")
    pd.DataFrame({"tag": ["rock", "jazz", "calm"], "category": ["Genre", "Genre", "Mood"], "weight": 1.0}).to_csv(
        root / "taxonomy.csv", index=False
    )
    folder = index_small_catalog(root, root / "model.pt", root / "index")
    return folder, paths


@pytest.fixture
def index_copy(small_index, tmp_path) -> Path:
    """The session's small index copied, so a test may add to it or remove from it."""
    folder = tmp_path / "index"
    shutil.copytree(small_index[0], folder)
    return folder


@pytest.fixture
def new_files(tmp_path) -> list[Path]:
    """Two 14 s files not in the index, whose sound changes half-way (``fresh``, ``other``)."""
    folder = tmp_path / "incoming"
    folder.mkdir()
    for name, freq in (("fresh", 700.0), ("other", 1500.0)):
        sf.write(folder / f"{name}.wav", np.concatenate([sine(freq, seconds=7.0), sine(freq / 2, seconds=7.0)]), 44100)
    return [folder / "fresh.wav", folder / "other.wav"]
