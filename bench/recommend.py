"""Benchmark: catalog search and recommendation latency, FAISS against numpy brute force.

Why: the index table of docs/cold-start.md and the closing note quote these figures, to show what the FAISS
index buys over the obvious numpy search and at which catalog size an approximate index (HNSW)
starts to matter, and how long one cold-start query takes end to end on a trained run.

Part 1, index search: for each --sizes N, N random unit vectors (d = 128, seeded) and --repeats
queries (other random unit vectors), searched one at a time for their top 10:
  numpy   the baseline: scores = vectors @ q, np.argpartition for the top 10, then sorted;
  exact   new_faiss_index(vectors, "exact"), an IndexFlatIP: must give numpy's ids;
  hnsw    new_faiss_index(vectors, "hnsw") with efSearch 128 as CatalogIndex opens it;
          recall@10 against exact (random vectors are HNSW's worst case: real embeddings do better).
Build time, queries/s, p50/p95 latency, speed-up in queries/s over numpy in the same run.

Part 2, with --index (a run's results/index, its default system, or one system's folder): on
--files catalog tracks of that index, with its model (--device) and CatalogIndex:
  search      CatalogIndex.search of one embedded query (k = 10, Neighbour rows included);
  decoded     Recommender.embed(cqt) + search, the CQT computed beforehand (query_cqt);
  end to end  Recommender.recommend(path): decoding, CQT, embedding, search.

--threads (default 1) sets torch.set_num_threads, faiss.omp_set_num_threads and the BLAS/OpenMP
pools numpy loads (OMP/OPENBLAS/MKL_NUM_THREADS, set before numpy is imported): single-thread
figures compare methods fairly; more threads show what a server core budget gives.
The 1 M size needs ~2 GiB of memory and a few minutes for its HNSW build (one thread).

Usage: .venv/bin/python bench/recommend.py --index results/index
           [--sizes 10000 100000 1000000] [--repeats 200] [--recommends 20] [--files 5]
           [--threads 1] [--device auto] [--seed 0]
"""

from __future__ import annotations

import argparse
import os


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=200, help="queries timed per size and method, and in part 2")
    parser.add_argument("--recommends", type=int, default=20, help="end-to-end recommend() calls timed")
    parser.add_argument("--files", type=int, default=5, help="catalog audio files used as queries in part 2")
    parser.add_argument("--index", help="index folder (results/index or results/index/<system>); no part 2 without")
    parser.add_argument("--threads", type=int, default=1, help="torch, faiss and BLAS threads")
    parser.add_argument("--device", default="auto", help="the model's device in part 2")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


if __name__ == "__main__":  # BLAS and OpenMP size their pools when loaded: set them before numpy is imported
    ARGS = parse_args()
    os.environ.update(dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), str(ARGS.threads)))

import time
from functools import partial
from pathlib import Path

import faiss
import numpy as np
import torch

from trackrank.coldstart.index import new_faiss_index
from trackrank.coldstart.recommend import Recommender, query_cqt

K, DIM = 10, 128


def unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.standard_normal((n, DIM), dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def numpy_top(vectors: np.ndarray, q: np.ndarray) -> np.ndarray:
    scores = vectors @ q
    top = np.argpartition(-scores, K)[:K]
    return top[np.argsort(-scores[top])]


def faiss_top(index: faiss.Index, q: np.ndarray) -> np.ndarray:
    return index.search(q[None, :], K)[1][0]


def cycle(items: list, n: int) -> list:
    return [items[i % len(items)] for i in range(n)]


def timed(call, inputs) -> tuple[list, np.ndarray]:
    """Results and per-call seconds of ``call`` on each input, after one untimed warm-up call."""
    call(inputs[0])
    results, seconds = [], []
    for item in inputs:
        start = time.perf_counter()
        results.append(call(item))
        seconds.append(time.perf_counter() - start)
    return results, np.array(seconds)


def stats(seconds: np.ndarray) -> tuple[float, float, float]:
    """Queries/s, p50 and p95 in ms."""
    return len(seconds) / seconds.sum(), *(np.percentile(seconds, [50, 95]) * 1e3)


def search_part(args) -> None:
    print(f"Part 1: top-{K} search, d = {DIM}, random unit vectors, {args.repeats} queries one at a time")
    print(
        f"{'size':>9s} {'method':7s} {'build_s':>8s} {'qps':>9s} {'p50_ms':>8s} {'p95_ms':>8s} "
        f"{'speedup':>8s} {'recall@10':>9s}"
    )
    for size in args.sizes:
        rng = np.random.default_rng([args.seed, size])
        vectors, queries = unit_vectors(rng, size), unit_vectors(rng, args.repeats)
        rows, answers = [], {}
        answers["numpy"], seconds = timed(partial(numpy_top, vectors), queries)
        rows.append(("numpy", None, stats(seconds)))
        for kind in ("exact", "hnsw"):
            start = time.perf_counter()
            index = new_faiss_index(vectors, kind=kind)
            build = time.perf_counter() - start
            if kind == "hnsw":
                index.hnsw.efSearch = 128  # as CatalogIndex opens an HNSW index
            answers[kind], seconds = timed(partial(faiss_top, index), queries)
            rows.append((kind, build, stats(seconds)))
            index = None  # free it before the next build (1 M vectors: 0.5 GiB each)
        base = rows[0][2][0]
        for method, build, (qps, p50, p95) in rows:
            recall = np.mean([len(set(a) & set(e)) / K for a, e in zip(answers[method], answers["exact"])])
            print(
                f"{size:9,d} {method:7s} {'-' if build is None else f'{build:.2f}':>8s} {qps:9,.0f} {p50:8.3f} "
                f"{p95:8.3f} {qps / base:8.2f} {recall:9.3f}"
            )
        mismatches = sum(not np.array_equal(a, e) for a, e in zip(answers["numpy"], answers["exact"]))
        print(f"{'':9s} top-10 ids of numpy and FAISS exact differ for {mismatches} of {args.repeats} queries")


def recommend_part(args) -> None:
    recommender = Recommender(args.index, device=args.device)
    index = recommender.index
    catalog = Path(index.identity["catalog_dir"])
    chosen = np.linspace(0, len(index.tracks) - 1, min(args.files, len(index.tracks))).astype(int)
    paths = [p if Path(p).is_absolute() else catalog / p for p in index.tracks.path.iloc[chosen]]
    cqts = [query_cqt(path) for path in paths]
    vectors = [recommender.embed(cqt) for cqt in cqts]
    rows = [
        ("search (CatalogIndex.search)", timed(lambda v: index.search(v, K), cycle(vectors, args.repeats))[1]),
        (
            "decoded (embed + search)",
            timed(lambda c: index.search(recommender.embed(c), K), cycle(cqts, args.repeats))[1],
        ),
        ("end to end (recommend(path))", timed(recommender.recommend, cycle(paths, args.recommends))[1]),
    ]
    identity = index.identity
    print(
        f"\nPart 2: {identity['system']} index at {index.folder} ({identity['kind']}, {identity['n_tracks']} tracks, "
        f"{identity['n_patches']} patches per query), model on {recommender.device.type}; "
        f"{len(paths)} query files, {np.mean([len(c) for c in cqts]):.0f} CQT frames on average"
    )
    end_to_end = stats(rows[-1][1])[0]
    print(f"{'what':30s} {'calls':>6s} {'qps':>9s} {'p50_ms':>8s} {'p95_ms':>8s} {'x e2e':>7s}")
    for name, seconds in rows:
        qps, p50, p95 = stats(seconds)
        print(f"{name:30s} {len(seconds):6d} {qps:9,.1f} {p50:8.2f} {p95:8.2f} {qps / end_to_end:7.1f}")


def main(args) -> None:
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    print(
        f"{os.cpu_count()} CPUs, {args.threads} thread(s) (torch, faiss, BLAS); faiss {faiss.__version__}, "
        f"numpy {np.__version__}, torch {torch.__version__}\n"
    )
    search_part(args)
    if args.index:
        recommend_part(args)


if __name__ == "__main__":
    main(ARGS)
