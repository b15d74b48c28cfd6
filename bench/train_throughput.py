"""Benchmark: training throughput in patches per second, real data pipeline against no data loading.

Runs the real training loop (trackrank.learn.training._train_epoch: DataLoader over TripletBatches,
or TagBatches for at_baseline, on the memory-mapped PatchCache) on the same model, the same
batches (one epoch of --steps batches, as training runs it, DataLoader start-up included):
  baseline   the cache replaced by one in-memory random batch: the training step alone;
  real       the real PatchCache with W = 0 .. --workers DataLoader worker processes.
A TL step processes batch_size + 2 x pairs patches (anchors, positives, negatives; --offline-pairs, 1 as in
paper.yaml), an AT step batch_size.
The ratio real / baseline is what data loading leaves of the step's speed (target >= 0.9).
Beside them, the data pipeline alone (the same batches with no model) for each W: the most
patches per second those workers can feed a faster device.

Cost of a training epoch at another scale (the paper's, by default): the FLOPs of one step
(forward and backward, counted by torch.utils.flop_counter) and of one validation patch,
the measured baseline step and validation times, and from them the hours of one epoch of
--epoch-steps steps plus the validation of --val-tracks x --val-patches patches.

Data: a synthetic run laid out like results/ (random tags, one CQT shard of random dB values,
its cache, val and train rankings and the triplet table of an offline system's strategy) in a
temporary folder, or an existing run's with --results (its catalog/, cache/, rankings/, triplets/).

The process runs with trackrank.learn.settings.MALLOC_SETTINGS, as the workflow's jobs do (without
them a CPU step is about 2x slower); the script re-executes itself to set them.

Usage: python bench/train_throughput.py [--system tl_distance] [--width 0.0625] [--steps 50]
           [--workers 1] [--device auto] [--threads 1] [--tracks 200] [--results results]
           [--epoch-steps 1000] [--val-tracks 2849] [--val-patches 8]
GPU, the paper's width: python bench/train_throughput.py --width 1 --device cuda --threads 8 --workers 4
"""

from __future__ import annotations

from trackrank.learn.settings import with_malloc_settings

with_malloc_settings()  # as the workflow's jobs run

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch
from torch.utils.flop_counter import FlopCounterMode

from trackrank.data.catalog import CatalogFiles
from trackrank.data.feature_cache import CacheFiles, build_cache, cache_in_folder
from trackrank.data.features import N_BINS, PARQUET_OPTIONS, PATCH_FRAMES, shard_table
from trackrank.learn.embedding import choose_device, track_outputs
from trackrank.learn.kinds import kind_of
from trackrank.learn.loading import load_training_data
from trackrank.learn.settings import TrainSettings, mines_offline
from trackrank.learn.training import _new_state, _train_epoch, epoch_batches
from trackrank.rank.mining import write_triplets
from trackrank.rank.oracle import write_rankings
from trackrank.rank.parts import parts_in
from trackrank.rank.similarity import split_oracle

CATEGORIES = ["Genre", "Recording", "Mood", "Movement"]
TRACK_FRAMES = 1300  # 30 s of CQT frames


def write_synthetic_results(root: Path, n_tracks: int, n_frames: int, strategy: str | None) -> None:
    """A run's results/ in miniature: catalog (1 track in 10 in val), cache, val and train rankings (online
    systems mine in the batch from the latter), and the triplet table of an offline system's strategy."""
    rng = np.random.default_rng(0)
    ids = [f"t{i:04d}" for i in range(n_tracks)]
    tag_names = [f"tag{t:02d}" for t in range(24)]
    tags = np.zeros((n_tracks, len(tag_names)))
    for row in tags:  # 5 random tags per track, as tests/test_similarity.py random_tags
        row[rng.choice(len(tag_names), 5, replace=False)] = rng.uniform(0.05, 1.0, 5).round(2)
    catalog = root / "catalog"
    catalog.mkdir(parents=True)
    split = ["val" if i % 10 == 0 else "train" for i in range(n_tracks)]
    pd.DataFrame({"track_id": ids, "artist": ids, "split": split}).to_parquet(catalog / "tracks.parquet")
    pd.DataFrame(tags, columns=tag_names).assign(track_id=ids).to_parquet(catalog / "tags.parquet")
    pd.DataFrame(
        {"tag": tag_names, "category": [CATEGORIES[t % 4] for t in range(len(tag_names))], "weight": 1.0}
    ).to_csv(catalog / "taxonomy.csv", index=False)

    cqts = [rng.normal(-50, 15, (n_frames, N_BINS)).astype(np.float16) for _ in ids]
    pq.write_table(shard_table(ids, cqts), root / "shard-000.parquet", **PARQUET_OPTIONS)
    build_cache([root / "shard-000.parquet"], CacheFiles.in_folder(root / "cache"))
    val_ids, val_oracle = split_oracle(CatalogFiles.in_folder(catalog), "val")
    write_rankings(val_oracle, val_ids, output=root / "rankings" / "val" / "part-0000.parquet")
    train_ids, train_oracle = split_oracle(CatalogFiles.in_folder(catalog), "train")
    write_rankings(train_oracle, train_ids, output=root / "rankings" / "train" / "part-0000.parquet")
    if mines_offline(strategy):
        write_triplets(  # the paper's Np, Nn
            train_oracle,
            train_ids,
            output=root / "triplets" / strategy / "part-0000.parquet",
            strategy=strategy,
            n_positives=15,
            n_negatives=250,
            seed=0,
        )


class InMemoryPatches:
    """Stands in for the PatchCache: hands back one pre-made random batch, so nothing is loaded."""

    def __init__(self, n_patches: int, track_ids: list[str]):
        self.track_ids = track_ids  # the real cache's: batches whose negatives are the whole batch's place tracks by it
        self.batch = np.random.default_rng(0).normal(-50, 15, (n_patches, N_BINS, PATCH_FRAMES)).astype(np.float32)

    def patches(self, tracks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.batch[np.arange(len(tracks)) % len(self.batch)]


def step_flops(model, optimizer, scaler, data, settings: TrainSettings, device: torch.device) -> int:
    """FLOPs of one training step (forward and backward), counted by torch's FlopCounterMode."""
    with FlopCounterMode(display=False) as counter:
        once = dataclasses.replace(settings, batches_per_epoch=1)
        _train_epoch(model, optimizer, scaler, data, once, 1, device, kind=kind_of(settings))
    return counter.get_total_flops()


def validation_cost(model, cache, n_patches: int, device: torch.device) -> tuple[int, float]:
    """(FLOPs, seconds) of one validation patch: batched inference as training's validation runs it."""
    tracks = np.arange(max(1, n_patches // 8))
    with FlopCounterMode(display=False) as counter:
        track_outputs(model, cache, tracks[:1], n_patches=8, device=device)
    track_outputs(model, cache, tracks[:1], n_patches=8, device=device)  # warm-up
    start = time.perf_counter()
    track_outputs(model, cache, tracks, n_patches=8, device=device)  # .cpu() per batch syncs
    return counter.get_total_flops() // 8, (time.perf_counter() - start) / (8 * len(tracks))


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
    parser.add_argument("--epoch-steps", type=int, default=1000, help="steps per epoch to cost (paper.yaml: 1000)")
    parser.add_argument("--val-tracks", type=int, default=2849, help="val tracks to cost (paper: 20%% of 14,246)")
    parser.add_argument("--val-patches", type=int, default=8, help="patches per val track (paper.yaml: 8)")
    parser.add_argument("--offline-pairs", type=int, default=1, help="(anchor, positive) pairs per TL batch (paper: 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = TrainSettings(system=args.system, width=args.width, device=args.device, offline_pairs=args.offline_pairs)
    device = choose_device(args.device)

    with tempfile.TemporaryDirectory() as tmp:
        root = args.results
        if root is None:
            root = Path(tmp)
            write_synthetic_results(root, args.tracks, TRACK_FRAMES, settings.strategy)
        offline = mines_offline(settings.strategy)
        triplets = parts_in(root / "triplets" / settings.strategy) if offline else None
        data = load_training_data(
            settings,
            cache_in_folder(root / "cache"),
            catalog=CatalogFiles.in_folder(root / "catalog"),
            val_rankings=parts_in(root / "rankings" / "val"),
            triplets=triplets,
            train_rankings=parts_in(root / "rankings" / "train"),
        )
        patches_per_step = settings.batch_size + (2 * settings.offline_pairs if offline else 0)
        in_memory = dataclasses.replace(data, cache=InMemoryPatches(patches_per_step, data.cache.track_ids))
        model, optimizer, scaler = _new_state(settings, data, device)
        kind = kind_of(settings)

        def epoch_seconds(batches_from, workers: int, steps: int) -> float:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            run = dataclasses.replace(settings, workers=workers, batches_per_epoch=steps)
            start = time.perf_counter()
            _train_epoch(model, optimizer, scaler, batches_from, run, 1, device, kind=kind)  # .item() per step syncs
            return time.perf_counter() - start

        epoch_seconds(in_memory, workers=0, steps=3)  # warm-up: first-step allocations, kernels
        runs = [
            ("baseline: in-memory random batches", in_memory, 0),
            *[(f"real pipeline, {w} worker(s)", data, w) for w in range(args.workers + 1)],
        ]
        rows = []
        for name, batches_from, workers in runs:
            wall = epoch_seconds(batches_from, workers, args.steps)
            peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
            rows.append((name, wall, peak))
        for workers in range(args.workers + 1):
            run = dataclasses.replace(settings, workers=workers, batches_per_epoch=args.steps)
            start = time.perf_counter()
            for _ in epoch_batches(data, run, epoch=1, device=device, kind=kind):
                pass
            rows.append((f"data pipeline alone, {workers} worker(s)", time.perf_counter() - start, None))
        flops = step_flops(model, optimizer, scaler, in_memory, settings, device)
        val_flops, val_seconds = validation_cost(model, in_memory.cache, 4 * patches_per_step, device)

    n_patches = args.steps * patches_per_step
    baseline = n_patches / rows[0][1]
    source = args.results or f"synthetic, {args.tracks} tracks"
    print(
        f"{args.system} ({settings.architecture}), width {args.width}, {args.steps} steps x {patches_per_step} "
        f"patches, {device.type}, {args.threads} thread(s), data: {source}"
    )
    peak_header = f" {'peak GiB':>9s}" if device.type == "cuda" else ""
    print(f"{'what':36s} {'wall s':>8s} {'patches/s':>10s} {'ratio':>6s}{peak_header}")
    for name, wall, peak in rows:
        print(
            f"{name:36s} {wall:8.2f} {n_patches / wall:10.1f} {n_patches / wall / baseline:6.2f}"
            + (f" {peak:9.2f}" if peak is not None else "")
        )

    step_seconds = rows[0][1] / args.steps
    val_patches = args.val_tracks * args.val_patches
    epoch_hours = (args.epoch_steps * step_seconds + val_patches * val_seconds) / 3600
    print(
        f"\ncost of one epoch: {args.epoch_steps} steps + validation of {args.val_tracks} tracks x "
        f"{args.val_patches} patches, at the baseline's speed"
    )
    print(
        f"  training step   {flops / 1e9:10.1f} GFLOP  {step_seconds:8.3f} s  "
        f"{flops / step_seconds / 1e12:7.2f} TFLOP/s"
    )
    print(
        f"  val patch       {val_flops / 1e9:10.2f} GFLOP  {val_seconds:8.4f} s  "
        f"{val_flops / val_seconds / 1e12:7.2f} TFLOP/s"
    )
    print(
        f"  epoch           {(args.epoch_steps * flops + val_patches * val_flops) / 1e15:10.2f} PFLOP  "
        f"{epoch_hours:8.3f} h on {device.type}"
    )


if __name__ == "__main__":
    main()
