"""Benchmark: training throughput in patches per second, real data pipeline against no data loading.

Runs the real training loop (trackrank.training._train_epoch: DataLoader over TripletBatches,
or TagBatches for at_baseline, on the memory-mapped PatchCache) on the same model, the same
batches (one epoch of --steps batches, as training runs it, DataLoader start-up included):
  baseline   the cache replaced by one in-memory random batch: the training step alone;
  real       the real PatchCache with W = 0 .. --workers DataLoader worker processes.
A TL step processes batch_size + 2 patches (anchor, positive, negatives), an AT step batch_size.
The ratio real / baseline is what data loading leaves of the step's speed (target >= 0.9).

Data: a synthetic run laid out like results/ (random tags, one CQT shard of random dB values,
its cache, val rankings and the triplet table of the system's strategy) in a temporary folder,
or an existing run's with --results (its catalog/, cache/, rankings/val.parquet, triplets/).

The process runs with trackrank.systems.MALLOC_SETTINGS, as the workflow's jobs do (without
them a CPU step is about 2x slower); the script re-executes itself to set them.

Usage: python bench/train_throughput.py [--system tl_distance] [--width 0.0625] [--steps 50]
           [--workers 1] [--device auto] [--threads 1] [--tracks 200] [--results results]
"""

from __future__ import annotations

import os
import sys

from trackrank.systems import MALLOC_SETTINGS

if any(name not in os.environ for name in MALLOC_SETTINGS):  # glibc reads them at process start only
    os.environ.update({name: value for name, value in MALLOC_SETTINGS.items() if name not in os.environ})
    os.execv(sys.executable, [sys.executable, *sys.argv])

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch

from trackrank.feature_cache import build_cache
from trackrank.features import N_BINS, PARQUET_OPTIONS, PATCH_FRAMES, shard_table
from trackrank.mining import write_triplets
from trackrank.ranking import write_rankings
from trackrank.similarity import split_oracle
from trackrank.training import TrainSettings, _new_state, _train_epoch, choose_device, load_training_data

CATEGORIES = ["Genre", "Recording", "Mood", "Movement"]
TRACK_FRAMES = 1300  # 30 s of CQT frames


def write_synthetic_results(root: Path, n_tracks: int, n_frames: int, strategy: str | None) -> None:
    """A run's results/ in miniature: catalog (1 track in 10 in val), cache, val rankings, triplets."""
    rng = np.random.default_rng(0)
    ids = [f"t{i:04d}" for i in range(n_tracks)]
    tag_names = [f"tag{t:02d}" for t in range(24)]
    tags = np.zeros((n_tracks, len(tag_names)))
    for row in tags:  # 5 random tags per track, as tests/test_similarity.py random_tags
        row[rng.choice(len(tag_names), 5, replace=False)] = rng.uniform(0.05, 1.0, 5).round(2)
    catalog = root / "catalog"
    catalog.mkdir(parents=True)
    split = ["val" if i % 10 == 0 else "train" for i in range(n_tracks)]
    pd.DataFrame({"track_id": ids, "split": split}).to_parquet(catalog / "tracks.parquet")
    pd.DataFrame(tags, columns=tag_names).assign(track_id=ids).to_parquet(catalog / "tags.parquet")
    pd.DataFrame({"tag": tag_names, "category": [CATEGORIES[t % 4] for t in range(len(tag_names))],
                  "weight": 1.0}).to_csv(catalog / "taxonomy.csv", index=False)

    cqts = [rng.normal(-50, 15, (n_frames, N_BINS)).astype(np.float16) for _ in ids]
    pq.write_table(shard_table(ids, cqts), root / "shard-000.parquet", **PARQUET_OPTIONS)
    build_cache([root / "shard-000.parquet"], root / "cache")
    val_ids, val_oracle = split_oracle(catalog, "val")
    write_rankings(val_oracle, val_ids, root / "rankings" / "val.parquet")
    if strategy:
        train_ids, train_oracle = split_oracle(catalog, "train")
        write_triplets(train_oracle, train_ids, root / "triplets" / f"{strategy}.parquet", strategy)


class InMemoryPatches:
    """Stands in for the PatchCache: hands back one pre-made random batch, so nothing is loaded."""

    def __init__(self, n_patches: int):
        self.batch = np.random.default_rng(0).normal(-50, 15, (n_patches, N_BINS, PATCH_FRAMES)).astype(np.float32)

    def patches(self, tracks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.batch[:len(tracks)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", default="tl_distance", help="tl_distance, tl_autopool_distance, at_baseline...")
    parser.add_argument("--width", type=float, default=0.0625)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1, help="measure 0 .. this many DataLoader workers")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--tracks", type=int, default=200, help="synthetic tracks (30 s each)")
    parser.add_argument("--results", type=Path, help="an existing run's results/ folder instead of synthetic data")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = TrainSettings(system=args.system, width=args.width, device=args.device)
    device = choose_device(args.device)

    with tempfile.TemporaryDirectory() as tmp:
        root = args.results
        if root is None:
            root = Path(tmp)
            write_synthetic_results(root, args.tracks, TRACK_FRAMES, settings.strategy)
        triplets = root / "triplets" / f"{settings.strategy}.parquet" if settings.strategy else None
        data = load_training_data(settings, root / "cache", root / "catalog", root / "rankings" / "val.parquet",
                                  triplets)
        patches_per_step = settings.batch_size + (2 if settings.strategy else 0)
        in_memory = dataclasses.replace(data, cache=InMemoryPatches(patches_per_step))
        model, optimizer, scaler = _new_state(settings, data, device)

        def epoch_seconds(batches_from, workers: int, steps: int) -> float:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            run = dataclasses.replace(settings, workers=workers, batches_per_epoch=steps)
            start = time.perf_counter()
            _train_epoch(model, optimizer, scaler, batches_from, run, epoch=1, device=device)  # .item() per step syncs
            return time.perf_counter() - start

        epoch_seconds(in_memory, workers=0, steps=3)  # warm-up: first-step allocations, kernels
        runs = [("baseline: in-memory random batches", in_memory, 0),
                *[(f"real pipeline, {w} worker(s)", data, w) for w in range(args.workers + 1)]]
        rows = []
        for name, batches_from, workers in runs:
            wall = epoch_seconds(batches_from, workers, args.steps)
            peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
            rows.append((name, wall, peak))

    n_patches = args.steps * patches_per_step
    baseline = n_patches / rows[0][1]
    source = args.results or f"synthetic, {args.tracks} tracks"
    print(f"{args.system} ({settings.architecture}), width {args.width}, {args.steps} steps x {patches_per_step} "
          f"patches, {device.type}, {args.threads} thread(s), data: {source}")
    peak_header = f" {'peak GiB':>9s}" if device.type == "cuda" else ""
    print(f"{'what':36s} {'wall s':>8s} {'patches/s':>10s} {'ratio':>6s}{peak_header}")
    for name, wall, peak in rows:
        print(f"{name:36s} {wall:8.2f} {n_patches / wall:10.1f} {n_patches / wall / baseline:6.2f}"
              + (f" {peak:9.2f}" if peak is not None else ""))


if __name__ == "__main__":
    main()
