"""Builders of test inputs that several test files share: tag matrices, metric tables, page tables."""

from __future__ import annotations

import json
import shutil
import socket
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trackrank.data.scores.plan import ScoresSettings
from trackrank.learn.settings import TrainSettings

QUERIES = [f"q{i}" for i in range(30)]
IDS = ["q1", "a", "b", "c <x>", "d"]

#: Tests that render the ``scores`` catalog need FluidSynth and the soundfont of its default settings.
needs_fluidsynth = pytest.mark.skipif(
    shutil.which("fluidsynth") is None or not Path(ScoresSettings().soundfont).is_file(),
    reason="FluidSynth and a General-MIDI soundfont are not installed (apt-get install fluidsynth fluid-soundfont-gm)",
)


def random_tags(n: int = 80, m: int = 24, per_track: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    tags = np.zeros((n, m))
    for row in tags:
        row[rng.choice(m, per_track, replace=False)] = rng.uniform(0.05, 1.0, per_track).round(2)
    return tags


def per_query(shift: float, noise: float = 0.02, seed: int = 0) -> pd.DataFrame:
    """Per-query metrics: a shared query difficulty, plus ``shift`` and a little noise."""
    difficulty = np.random.default_rng(99).uniform(0.1, 0.8, len(QUERIES))
    rng = np.random.default_rng(seed)
    values = {
        m: np.clip(difficulty + shift + rng.normal(0, noise, len(QUERIES)), 0, 1)
        for m in ("map", "recall", "rr", "ndcg")
    }
    return pd.DataFrame({"query": QUERIES, **values})


def write_run(folder, systems: dict[str, pd.DataFrame]) -> dict[str, Path]:
    """Each system's per-query metrics and summary JSON in ``folder``; returns system -> per-query file."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for system, table in systems.items():
        table.to_parquet(folder / f"{system}.per_query.parquet", index=False)
        summary = {"system": system, "k": 20, "n_queries": len(table)}
        for m in ("map", "recall", "rr", "ndcg"):
            summary[f"{m}@20"] = {"mean": 100 * table[m].mean(), "ci95": 1.0}
        (folder / f"{system}.json").write_text(json.dumps(summary))
        files[system] = folder / f"{system}.per_query.parquet"
    return files


def tables(audio_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Five test tracks whose files have awkward names; the oracle ranks the others in list order."""
    paths = []
    for i in range(len(IDS)):
        path = audio_dir / f"track #{i} & more.flac"
        path.write_bytes(b"audio")
        paths.append(str(path))
    tracks = pd.DataFrame({"track_id": IDS, "path": paths, "artist": [f"artist{i}" for i in range(5)], "split": "test"})
    tags = pd.DataFrame({"rock": [0.9, 0.2, 0.6, 0.0, 1.0], "calm": [0.5, 0.7, 0.0, 0.3, 0.0]}, index=IDS)
    rows = [
        (anchor, rank, other) for anchor in IDS for rank, other in enumerate((o for o in IDS if o != anchor), start=1)
    ]
    rankings = pd.DataFrame(rows, columns=["anchor", "rank", "other"])
    return tracks, tags, rankings


# Output files as the workflow names them: the tests call the writers with these.


def report_outputs(folder: Path) -> dict[str, Path]:
    """``write_report``'s output files, named as the workflow names them, in ``folder``."""
    names = {
        "table_csv": "table.csv",
        "table_md": "table.md",
        "paper_md": "table_paper.md",
        "bars": "metrics.png",
        "curves": "training_curves.png",
    }
    return {key: folder / name for key, name in names.items()}


def training_outputs(folder: Path) -> dict[str, Path]:
    """``train``'s three output files, named as the workflow names them, in ``folder``."""
    return {"model_file": folder / "model.pt", "history_file": folder / "history.csv", "last_file": folder / "last.pt"}


def evaluation_outputs(folder: Path, system: str) -> dict[str, Path]:
    """``evaluate``'s output files for ``system``, named as the workflow names them, in ``folder``."""
    return {
        "predictions": folder / "predictions" / f"{system}.parquet",
        "summary": folder / "metrics" / f"{system}.json",
        "per_query": folder / "metrics" / f"{system}.per_query.parquet",
    }


def ingest_outputs(folder: Path) -> dict[str, Path]:
    """``ingest``'s four output files, named as the workflow names them, in ``folder``."""
    names = {"tracks": "tracks.parquet", "tags": "tags.parquet", "taxonomy": "taxonomy.csv", "rejected": "rejected.csv"}
    return {key: folder / name for key, name in names.items()}


def checkpoint(model, system: str = "tl_online", tags: list[str] | None = None, **settings) -> dict:
    """A trained system's model.pt contents around ``model``: its weights, settings (``dim`` 16 and the
    tests' width unless given) and tag names."""
    return {
        "model": model.state_dict(),
        "settings": {"system": system, "dim": 16, "width": 0.03125, **settings},
        "tags": tags if tags is not None else ["rock", "jazz"],
    }


class LiveServer:
    """An ASGI app under uvicorn on a free local port, in a thread, until stopped: what a browser or a
    client streaming its body meets."""

    def __init__(self, app, **options):
        """``options``: uvicorn's settings beyond host, port and log level (``trackrank serve``'s, say)."""
        import uvicorn

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, **{"log_level": "warning", **options})
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.server.started, "uvicorn did not start"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def tiny_settings(**overrides) -> TrainSettings:
    """A training run small enough for a test: width 1/32, a few short epochs, each epoch's val MAP alone, no
    augmentation, the paper's offline batch (``overrides`` change any field). Every field a test's numbers
    depend on is written here, so a changed default does not change what the tests train."""
    values = dict(
        system="tl_distance",
        width=0.03125,
        dim=128,
        margin=0.5,
        lr=3e-3,
        epochs=3,
        batches_per_epoch=4,
        val_patches=1,
        batch_size=6,
        patience=10,
        budget_tracks=0,
        smoothing=1,
        k=5,
        n_relevant=2,
        seed=0,
        n_positives=15,
        offline_pairs=1,
        offline_negatives="all",
        tag_threshold=0.5,
        online_tracks=42,
        online_patches=1,
        online_mining="semi_hard",
        listwise_temperature=0.5,
        listwise_target_temperature=0.1,
        **dict.fromkeys(("aug_pitch", "aug_gain_db", "aug_tilt_db", "aug_stretch"), 0),
        workers=0,
        device="auto",
    )
    return TrainSettings(**{**values, **overrides})


def index_small_catalog(root: Path, model: Path, folder: Path) -> Path:
    """The small index's catalog (``conftest.small_index``: its cache, tracks, tags and taxonomy under
    ``root``) indexed into ``folder`` by ``model``, 5 patches a track."""
    from trackrank.coldstart.index import build_index
    from trackrank.data.feature_cache import CacheFiles

    build_index(
        model=model,
        cache=CacheFiles.in_folder(root / "cache"),
        tracks=root / "tracks.parquet",
        catalog_dir=root,
        out_tracks=folder / "tracks.parquet",
        out_vectors=folder / "vectors.faiss",
        out_identity=folder / "identity.json",
        tags=root / "tags.parquet",
        taxonomy=root / "taxonomy.csv",
        n_patches=5,
        device="cpu",
    )
    return folder


def one_hz_wav(path, n_samples: int = 1700) -> None:
    """The issue's probe: 1,700 samples at 1 Hz, 3.4 KB that last "28 minutes" (under the 30-minute limit)."""
    data = (np.random.default_rng(0).standard_normal(n_samples) * 3000).astype("<i2").tobytes()
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, 1, 2, 2, 16)
    path.write_bytes(
        b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + fmt + b"data" + struct.pack("<I", len(data)) + data
    )
