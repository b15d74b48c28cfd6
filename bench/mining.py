"""Benchmark: oracle rankings and triplet mining at the paper's scale.

A synthetic tag table like the paper's catalog (N = 14,246 tracks, m = 488 tags in 5
categories, 5 to 35 tags per track, 16.8 on average) is scored, ranked and mined with
Np = 15, Nn = 250 (~53 M triplets per strategy). Each step runs in its own process, so
its peak RSS is its own. The floor is computing the S scores alone (every anchor
against every track): mining cannot be faster than scoring.

Usage: python bench/mining.py [--tracks 14246] [--similarity category_geometric]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from trackrank.rank.mining import STRATEGIES, write_triplets
from trackrank.rank.oracle import write_rankings
from trackrank.rank.similarity import Oracle

CATEGORIES = ["Genre", "Recording", "Mood", "Movement", "Lyrics"]


def paper_like_tags(n_tracks: int, n_tags: int = 488, mean_tags: float = 16.8, seed: int = 0) -> np.ndarray:
    """Sparse likelihoods: 5-35 tags per track, popular tags likelier (Zipf-like)."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_tags + 1) ** 0.8
    popularity /= popularity.sum()
    counts = np.clip(rng.poisson(mean_tags, n_tracks), 5, 35)
    tags = np.zeros((n_tracks, n_tags), dtype=np.float32)
    for row, k in zip(tags, counts):
        row[rng.choice(n_tags, k, replace=False, p=popularity)] = rng.uniform(0.1, 1.0, k).round(2)
    return tags


def build_oracle(args) -> tuple[Oracle, list[str]]:
    tags = paper_like_tags(args.tracks)
    categories = [CATEGORIES[t * len(CATEGORIES) // tags.shape[1]] for t in range(tags.shape[1])]
    oracle = Oracle(tags, np.ones(tags.shape[1]), categories, name=args.similarity)
    return oracle, [f"t{i:05d}" for i in range(args.tracks)]


def run_step(args) -> None:
    """One step in this process; prints wall time and peak RSS as JSON."""
    oracle, ids = build_oracle(args)
    out = Path(args.out)
    start = time.perf_counter()
    rows = 0
    if args.step == "scores":
        for anchor in range(oracle.n_tracks):
            oracle.scores(anchor)
    elif args.step == "rankings":
        write_rankings(oracle, ids, output=out / "rankings.parquet", top_k=300)
        rows = oracle.n_tracks * min(300, oracle.n_tracks - 1)
    else:
        rows = write_triplets(
            oracle,
            ids,
            output=out / f"{args.step}.parquet",
            strategy=args.step,
            n_positives=15,
            n_negatives=250,
            seed=0,
        )
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    size = sum(p.stat().st_size for p in out.glob(f"{args.step}*.parquet")) / 2**20
    print(json.dumps({"step": args.step, "wall": wall, "peak_gib": peak, "rows": rows, "mib": size}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=14246)
    parser.add_argument("--similarity", default="category_geometric")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        run_step(args)
        return
    results = []
    with tempfile.TemporaryDirectory() as out:
        for step in ("scores", "rankings", *STRATEGIES):
            child = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--tracks",
                    str(args.tracks),
                    "--similarity",
                    args.similarity,
                    "--step",
                    step,
                    "--out",
                    out,
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            results.append(json.loads(child.stdout.strip().splitlines()[-1]))
            print(f"  {step}: {results[-1]['wall']:.1f} s", file=sys.stderr)
    floor = results[0]["wall"]
    print(f"N = {args.tracks} tracks, m = 488 tags, S = {args.similarity}, Np = 15, Nn = 250")
    print(f"{'step':12s} {'wall s':>8s} {'x floor':>8s} {'peak GiB':>9s} {'rows':>12s} {'MiB':>8s}")
    for r in results:
        print(
            f"{r['step']:12s} {r['wall']:8.1f} {r['wall'] / floor:8.2f} {r['peak_gib']:9.2f} "
            f"{r['rows']:12,d} {r['mib']:8.1f}"
        )


if __name__ == "__main__":
    main()
