"""Benchmark: what rankings and mining cost as the catalog grows (10^4, 10^5, 10^6 tracks), per job.

A synthetic tag table with the statistics of a professional one, no audio: m = 488 tags in 5
categories, 5 to 35 tags per track (16.8 on average), popular tags likelier (Zipf), and tags that
co-occur because each track is drawn from one of 200 latent styles with its own tag
preferences (a style's tags are likelier together). Likelihoods are graded (0.1 to 1.0).

Each (N, step) runs in its own process, as one workflow job does (``rank_split``, or ``mine_triplets``
with the paper's Np = 15, Nn = 250 and its three strategies, over one part of ``ranking.anchors_per_job``
anchors of a split of N tracks), so its peak memory is its own. The floor is ``scores``: S of the same
anchors against every track, nothing else. A job's anchors all cost the same on average, so seconds
per anchor measured on a sample of ``--anchors`` of them give a part's time (x anchors_per_job) and
the whole split's (x N, summed over parallel jobs).

The index (``--index VECTORS``): a real run's track embeddings (an index's ``vectors.faiss``) replicated
to each size with Gaussian perturbations (``--spread`` times the median distance between nearest real
tracks, a quarter by default: structure like a trained model's, not uniform random vectors, the worst
case; a spread of 1 blurs the real tracks into each other) and normalised;
the exact index and FAISS IVF (trackrank.coldstart.faiss_index.new_faiss_index) built from them; held-out
perturbed queries answered one at a time on one thread: p50/p95 ms and IVF's recall@10 against exact.

Usage: python bench/scale.py [--sizes 10000 100000 1000000] [--anchors 10000 2000 200]
           [--anchors-per-job 10000] [--out bench/results/scale]
       python bench/scale.py --index results/index/tl_online/vectors.faiss [--sizes ...] [--queries 500]
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
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from trackrank.rank.mining import STRATEGIES, write_triplet_tables  # noqa: E402  (after the path)
from trackrank.rank.oracle import write_rankings  # noqa: E402
from trackrank.rank.similarity import Oracle  # noqa: E402

CATEGORIES = ["Genre", "Recording", "Mood", "Movement", "Lyrics"]
N_TAGS = 488
STEPS = ("scores", "rankings", "mining")


def catalog_like_tags(n_tracks: int, n_styles: int = 200, seed: int = 0) -> sp.csr_matrix:
    """(n_tracks, 488) sparse likelihoods: Zipf tag popularity, latent styles for co-occurrence."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, N_TAGS + 1) ** 0.8
    styles = popularity * rng.gamma(0.3, 1.0, (n_styles, N_TAGS))  # each style favours a few tags
    styles /= styles.sum(axis=1, keepdims=True)
    mixed = 0.7 * styles + 0.3 * popularity / popularity.sum()  # and shares the catalog's popular ones
    style_of = rng.choice(n_styles, n_tracks, p=(w := 1.0 / np.arange(1, n_styles + 1)) / w.sum())
    counts = np.clip(rng.poisson(16.8, n_tracks), 5, 35)
    rows, cols = [], []
    for track, (style, k) in enumerate(zip(style_of, counts)):
        keys = rng.random(N_TAGS) ** (1.0 / mixed[style])  # weighted draw without replacement (Efraimidis-Spirakis)
        cols.append(np.argpartition(keys, N_TAGS - k)[N_TAGS - k :])
        rows.append(np.full(k, track))
    values = rng.uniform(0.1, 1.0, int(counts.sum())).round(2)
    return sp.csr_matrix((values, (np.concatenate(rows), np.concatenate(cols))), shape=(n_tracks, N_TAGS))


def run_step(tags_file: Path, step: str, n_anchors: int, out: Path) -> dict:
    """One job's work on the first ``n_anchors`` anchors; its wall and CPU seconds, peak memory."""
    columns = sp.load_npz(tags_file).T.toarray(order="C")  # tag-major, as load_split_tags builds it
    categories = [CATEGORIES[t * len(CATEGORIES) // N_TAGS] for t in range(N_TAGS)]
    start, cpu = time.perf_counter(), time.process_time()
    oracle = Oracle(columns.T, np.ones(N_TAGS), categories)  # keeps the matrix without a copy
    del columns
    ids = [f"t{i:07d}" for i in range(oracle.n_tracks)]
    setup = time.perf_counter() - start
    anchors = range(n_anchors)
    start = time.perf_counter()
    if step == "scores":
        for anchor in anchors:
            oracle.scores(anchor)
    elif step == "rankings":
        write_rankings(oracle, ids, output=out / "rankings.parquet", top_k=300, anchors=anchors)
    else:  # every strategy in one pass, as a mine_triplets job
        outputs = {strategy: out / f"{strategy}.parquet" for strategy in STRATEGIES}
        write_triplet_tables(oracle, ids, outputs=outputs, n_positives=15, n_negatives=250, seed=0, anchors=anchors)
    wall = time.perf_counter() - start
    return {
        "step": step,
        "tracks": oracle.n_tracks,
        "anchors": n_anchors,
        "setup_s": setup,
        "wall_s": wall,
        "cpu_s": time.process_time() - cpu,
        "s_per_anchor": wall / n_anchors,
        "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,  # KiB -> GiB
    }


def measure(n_tracks: int, n_anchors: int, anchors_per_job: int, folder: Path) -> list[dict]:
    tags_file = folder / f"tags_{n_tracks}.npz"
    if not tags_file.exists():
        sp.save_npz(tags_file, catalog_like_tags(n_tracks))
    rows = []
    for step in STEPS:
        child = subprocess.run(
            [sys.executable, __file__, "--step", step, "--tags", str(tags_file), "--anchors", str(n_anchors)],
            check=True,
            capture_output=True,
            text=True,
            cwd=folder,
        )
        row = json.loads(child.stdout.strip().splitlines()[-1])
        row["job_s"] = row["setup_s"] + row["s_per_anchor"] * min(anchors_per_job, n_tracks)
        row["split_cpu_h"] = row["s_per_anchor"] * n_tracks / 3600
        rows.append(row)
        print(
            f"N {n_tracks:>9,d} {step:9s} {row['s_per_anchor'] * 1e3:8.2f} ms/anchor "
            f"(x{row['s_per_anchor'] / rows[0]['s_per_anchor']:.2f} scores)  job {row['job_s']:8.0f} s  "
            f"peak {row['peak_gib']:.2f} GiB  split {row['split_cpu_h']:.2f} CPU-h",
            flush=True,
        )
    return rows


def replicated(vectors: np.ndarray, n: int, rng: np.random.Generator, spread: float) -> np.ndarray:
    """``n`` unit vectors: copies of ``vectors`` moved by ``spread`` x their median nearest-neighbour distance."""
    distances = np.linalg.norm(vectors[:, None] - vectors[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    sigma = spread * np.median(distances.min(axis=1)) / np.sqrt(vectors.shape[1])
    out = np.empty((n, vectors.shape[1]), dtype=np.float32)
    for start in range(0, n, 100_000):
        rows = vectors[rng.integers(0, len(vectors), min(100_000, n - start))]
        moved = rows + rng.normal(0, sigma, rows.shape)
        out[start : start + len(rows)] = moved / np.linalg.norm(moved, axis=1, keepdims=True)
    return out


def measure_index(vectors_file: Path, n_tracks: int, n_queries: int, spread: float) -> list[dict]:
    """Build and query the exact and the IVF index of ``n_tracks`` replicated vectors, one thread."""
    import faiss

    from trackrank.coldstart.faiss_index import new_faiss_index

    faiss.omp_set_num_threads(1)
    stored = faiss.read_index(str(vectors_file))
    real = stored.reconstruct_n(0, stored.ntotal)
    rng = np.random.default_rng(0)
    base, queries = replicated(real, n_tracks, rng, spread), replicated(real, n_queries, rng, spread)
    rows, truth = [], None
    for kind in ("exact", "ivf"):
        start = time.perf_counter()
        index = new_faiss_index(base, kind=kind)
        build = time.perf_counter() - start
        times, found = [], []
        for query in queries:
            start = time.perf_counter()
            found.append(index.search(query[None], 10)[1][0])
            times.append(time.perf_counter() - start)
        found = np.stack(found)
        truth = found if kind == "exact" else truth
        recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])
        rows.append(
            {
                "step": f"index_{kind}",
                "tracks": n_tracks,
                "spread": spread,
                "build_s": build,
                "p50_ms": 1e3 * np.percentile(times, 50),
                "p95_ms": 1e3 * np.percentile(times, 95),
                "recall_at_10": recall,
                "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            }
        )
        print(
            f"N {n_tracks:>9,d} spread {spread:g} {kind:5s} build {build:7.1f} s  p50 {rows[-1]['p50_ms']:6.2f} ms  "
            f"p95 {rows[-1]['p95_ms']:6.2f} ms  recall@10 {recall:.3f}",
            flush=True,
        )
        del index
    return rows


def plot(rows: list[dict], output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (time_ax, memory_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for step in STEPS:
        mine = sorted((r for r in rows if r["step"] == step), key=lambda r: r["tracks"])
        n = [r["tracks"] for r in mine]
        time_ax.loglog(n, [r["split_cpu_h"] for r in mine], "o-", label=step)
        memory_ax.loglog(n, [r["peak_gib"] for r in mine], "o-", label=step)
    time_ax.set(xlabel="tracks in the split (N)", ylabel="CPU-hours for the split", title="Cost grows as N²")
    memory_ax.set(xlabel="tracks in the split (N)", ylabel="peak GiB of one job", title="Memory of one job")
    for ax in (time_ax, memory_ax):
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(output, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--anchors", type=int, nargs="+", default=[10_000, 2_000, 200], help="anchors timed per size")
    parser.add_argument("--anchors-per-job", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "scale")
    parser.add_argument("--index", type=Path, help="a run's index vectors.faiss: measure the index instead")
    parser.add_argument("--queries", type=int, default=500, help="queries per index size")
    parser.add_argument("--spread", type=float, default=0.25, help="perturbation / median nearest-neighbour distance")
    parser.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--tags", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        with tempfile.TemporaryDirectory() as out:
            print(json.dumps(run_step(args.tags, args.step, args.anchors[0], Path(out))))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    if args.index:
        for n_tracks in args.sizes:
            rows += measure_index(args.index, n_tracks, args.queries, args.spread)
            (args.out / f"index_spread{args.spread:g}.json").write_text(json.dumps(rows, indent=1) + "\n")
        return
    with tempfile.TemporaryDirectory() as folder:
        for n_tracks, n_anchors in zip(args.sizes, args.anchors):
            rows += measure(n_tracks, min(n_anchors, n_tracks), args.anchors_per_job, Path(folder))
            (args.out / "rankings_mining.json").write_text(json.dumps(rows, indent=1) + "\n")
    plot(rows, args.out / "rankings_mining.png")


if __name__ == "__main__":
    main()
