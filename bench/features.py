"""Benchmark: CQT extraction throughput, in seconds of audio per second of wall time.

Compares, in one run and on the same files:
  baseline   a bare loop of librosa.load + librosa.cqt in one process, run first and last (their mean);
  shard      one trackrank shard job (decode, CQT, dB, float16, Parquet) with N workers;
  stage      the whole feature stage run by `snakemake --cores N` (catalog validation included), on the
             catalog and on its first few tracks: the two walls split the stage into its fixed cost
             (Snakemake's start, the validation job, each job's imports: seconds, whatever the catalog)
             and its rate per audio second beyond it, the figure that a large catalog sees.

Usage: python bench/features.py [--tracks 96] [--duration 60] [--cores 2]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import librosa
import pandas as pd

from trackrank.data.demo.catalog import DemoSettings, write_demo_catalog
from trackrank.data.features import BINS_PER_OCTAVE, FMIN, HOP_LENGTH, N_BINS, extract_shard

REPO = Path(__file__).resolve().parents[1]
#: Tracks of the small catalog whose stage run measures the fixed cost (enough artists for the split).
SMALL_TRACKS = 12


def bare_loop(paths: list[str]) -> float:
    start = time.perf_counter()
    for path in paths:
        y, sr = librosa.load(path, sr=44100, mono=True)
        librosa.cqt(y, sr=sr, hop_length=HOP_LENGTH, fmin=FMIN, n_bins=N_BINS, bins_per_octave=BINS_PER_OCTAVE)
    return time.perf_counter() - start


def small_catalog(catalog: Path, folder: Path, n_tracks: int) -> Path:
    """The first ``n_tracks`` of ``catalog`` as a catalog of their own (their audio copied: paths stay inside)."""
    tags = pd.read_csv(catalog / "tags.csv").head(n_tracks)
    for path in tags["path"]:
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(catalog / path, folder / path)
    tags.to_csv(folder / "tags.csv", index=False)
    shutil.copy(catalog / "tags_meta.csv", folder / "tags_meta.csv")
    return folder


def stage(catalog: Path, work: Path, cores: int, n_shards: int) -> float:
    work.mkdir()
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, work / name)
    for name in ("workflow", "envs", "src"):
        shutil.copytree(REPO / name, work / name, ignore=shutil.ignore_patterns("__pycache__"))
    (work / "bench.yaml").write_text(f"catalog: {catalog}\nfeatures: {{n_shards: {n_shards}, threads: 1}}\n")
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "features",
            "--cores",
            str(cores),
            "--configfile",
            "bench.yaml",
            "--quiet",
            "all",
        ],
        cwd=work,
        check=True,
        capture_output=True,
    )
    wall = time.perf_counter() - start
    for tsv in sorted((work / "results" / "benchmarks").rglob("*.tsv")):
        seconds = pd.read_csv(tsv, sep="\t")["s"].iloc[0]
        print(f"  job {tsv.parent.name}/{tsv.stem}: {seconds:.2f} s")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=96)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        settings = DemoSettings(n_artists=max(3, args.tracks // 4), tracks_per_artist=4, duration_s=args.duration)
        catalog = tmp / "catalog"
        tags = write_demo_catalog(
            settings, tags=catalog / "tags.csv", meta=catalog / "tags_meta.csv", workers=args.cores
        ).head(args.tracks)
        tags.to_csv(tmp / "catalog" / "tags.csv", index=False)
        paths = [str(tmp / "catalog" / p) for p in tags["path"]]
        audio_s = len(paths) * args.duration
        tracks = pd.DataFrame({"track_id": tags["track_id"], "path": paths})
        bare_loop(paths[:1])  # warm caches and imports for everyone alike

        bare_first = bare_loop(paths)
        rows = []
        for workers in sorted({1, args.cores}):
            start = time.perf_counter()
            extract_shard(tracks, tmp / f"shard-w{workers}.parquet", workers=workers)
            rows.append((f"one shard job, {workers} worker(s)", time.perf_counter() - start))
        whole = stage(tmp / "catalog", tmp / "work", args.cores, n_shards=args.cores)
        rows.append((f"whole stage, snakemake --cores {args.cores}", whole))
        small = small_catalog(tmp / "catalog", tmp / "small", SMALL_TRACKS)
        small_wall = stage(small, tmp / "work-small", args.cores, n_shards=args.cores)
        bare_last = bare_loop(paths)  # before and after the rest: a drift in the machine's speed cancels out
        rows.insert(0, ("baseline: bare librosa loop, 1 process", (bare_first + bare_last) / 2))

    # wall = fixed + audio / rate, through the two stage runs
    rate = (audio_s - SMALL_TRACKS * args.duration) / (whole - small_wall)
    fixed = small_wall - SMALL_TRACKS * args.duration / rate
    rows.append((f"whole stage beyond its fixed {fixed:.1f} s", audio_s / rate))
    baseline = audio_s / rows[0][1]
    print(f"{len(paths)} tracks x {args.duration:.0f} s = {audio_s:.0f} s of audio, {args.cores} cores")
    print(f"{'what':45s} {'wall s':>8s} {'audio s / s':>12s} {'ratio':>6s}")
    for name, wall in rows:
        print(f"{name:45s} {wall:8.2f} {audio_s / wall:12.1f} {audio_s / wall / baseline:6.2f}")
    print(f"(the stage on its first {SMALL_TRACKS} tracks: {small_wall:.2f} s; the bare loop first and last:"
          f" {bare_first:.2f} s, {bare_last:.2f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
