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

Part 3, with --index and --serve: `trackrank serve`'s app under uvicorn in its own process (as
deployed: the upload limit --max-upload-mb, the duration limit 1800 s); --serve-requests uploads of
those catalog files from 1 and from 4 concurrent clients: p50/p95 latency and requests/s; then the
server's peak memory (VmHWM) after that load, after 4 duration bombs (a 20 KB WAV at 1 Hz claiming
2.8 hours, refused from its header) and after 4 bodies of twice the upload limit (refused as they
stream): the refusals must not raise it. Last, 4 clients at once each upload the worst file the default
limits admit (bench/request_cost.py: 1800 s at 192 kHz on 8 channels, FLAC): the server's peak memory
and CPU seconds after them, and their statuses (past the decodes at once, 503 with Retry-After).

--threads (default 1) sets torch.set_num_threads, faiss.omp_set_num_threads and the BLAS/OpenMP
pools numpy loads (OMP/OPENBLAS/MKL_NUM_THREADS, set before numpy is imported): single-thread
figures compare methods fairly; more threads show what a server core budget gives.
The 1 M size needs ~2 GiB of memory and a few minutes for its HNSW build (one thread).

Usage: .venv/bin/python bench/recommend.py --index results/index [--serve]
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
    parser.add_argument("--serve", action="store_true", help="part 3: the HTTP service under load (needs --index)")
    parser.add_argument("--serve-requests", type=int, default=40, help="uploads timed per client count in part 3")
    parser.add_argument("--max-upload-mb", type=float, default=100.0, help="the service's upload limit in part 3")
    return parser.parse_args()


if __name__ == "__main__":  # BLAS and OpenMP size their pools when loaded: set them before numpy is imported
    ARGS = parse_args()
    os.environ.update(dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), str(ARGS.threads)))

import io
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import faiss
import numpy as np
import soundfile as sf
import torch
from request_cost import write_worst_upload  # bench/request_cost.py, beside this script

from trackrank.coldstart.faiss_index import new_faiss_index
from trackrank.coldstart.recommend import Recommender, query_cqt
from trackrank.coldstart.settings import MAX_DURATION_S

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


SERVER = """
import sys, uvicorn, torch
from trackrank.coldstart.recommend import Recommender
from trackrank.coldstart.service import create_app
torch.set_num_threads(int(sys.argv[3]))
app = create_app(Recommender(sys.argv[1], device="cpu"), int(float(sys.argv[4]) * 2**20), allowed_hosts=["127.0.0.1"])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
"""


def multipart(name: str, data: bytes) -> tuple[bytes, str]:
    boundary = "trackrank-bench-boundary"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n\r\n'.encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def post(url: str, name: str, data: bytes) -> tuple[int, float]:
    """(HTTP status, seconds) of one upload to POST /recommend."""
    body, content_type = multipart(name, data)
    request = urllib.request.Request(url + "recommend", data=body, headers={"Content-Type": content_type})
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except (ConnectionError, urllib.error.URLError):
        status = 0  # the server closed the connection on a refused body
    return status, time.perf_counter() - start


def peak_mib(pid: int) -> float:
    """The process's peak resident memory (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    """The process's CPU time so far (user + system), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worst_uploads(url: str, pid: int, clients: int = 4) -> None:
    """``clients`` at once, each uploading the worst file the default limits admit: the server's peak memory after."""
    with tempfile.TemporaryDirectory() as folder:
        worst = Path(folder) / "worst.flac"
        write_worst_upload(worst, MAX_DURATION_S)
        data = worst.read_bytes()
    used = cpu_s(pid)
    with ThreadPoolExecutor(clients) as pool:
        answers = list(pool.map(lambda _: post(url, "worst.flac", data), range(clients)))
    print(
        f"{clients} clients at once, each uploading the worst file the defaults admit ({MAX_DURATION_S:.0f} s, "
        f"192 kHz, 8 channels, FLAC, {len(data) / 2**20:.1f} MiB): statuses {sorted(s for s, _ in answers)}, "
        f"{', '.join(f'{s:.1f}' for _, s in sorted(answers, key=lambda a: a[1]))} s; server {cpu_s(pid) - used:.0f} "
        f"CPU s, peak memory (VmHWM) {peak_mib(pid):.0f} MiB"
    )


def serve_part(args) -> None:
    index = Recommender(args.index, device="cpu").index
    chosen = np.linspace(0, len(index.tracks) - 1, min(args.files, len(index.tracks))).astype(int)
    uploads = [(Path(p).name, Path(p).read_bytes()) for p in index.tracks.path.iloc[chosen]]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = [sys.executable, "-c", SERVER, str(index.folder), str(port), str(args.threads), str(args.max_upload_mb)]
    server = subprocess.Popen(code)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(url + "health", timeout=2).read()
                break
            except OSError:
                time.sleep(0.2)
        started = peak_mib(server.pid)
        print(f"\nPart 3: the service ({index.identity['system']}, {len(index.tracks)} tracks), {len(uploads)} files")
        print(f"{'clients':>7s} {'requests':>8s} {'req/s':>7s} {'p50_ms':>8s} {'p95_ms':>8s} {'failed':>6s}")
        for clients in (1, 4):
            post(url, *uploads[0])  # warm
            work = cycle(uploads, args.serve_requests)
            begun = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                answers = list(pool.map(lambda upload: post(url, *upload), work))
            wall = time.perf_counter() - begun
            seconds = np.array([s for _, s in answers])
            failed = sum(status != 200 for status, _ in answers)
            p50, p95 = np.percentile(seconds, [50, 95]) * 1e3
            print(f"{clients:7d} {len(work):8d} {len(work) / wall:7.1f} {p50:8.1f} {p95:8.1f} {failed:6d}")
        loaded = peak_mib(server.pid)
        bomb = io.BytesIO()
        noise = np.random.default_rng(args.seed).uniform(-0.5, 0.5, 10000).astype("float32")
        sf.write(bomb, noise, 1, format="WAV", subtype="PCM_16")
        bombs = [post(url, "bomb.wav", bomb.getvalue()) for _ in range(4)]
        after_bombs = peak_mib(server.pid)
        too_big = bytes(int(2 * args.max_upload_mb * 2**20))
        oversized = [post(url, "big.wav", too_big) for _ in range(4)]
        after_oversized = peak_mib(server.pid)
        print(
            f"server peak memory (VmHWM): {started:.0f} MiB started, {loaded:.0f} MiB after the load, "
            f"{after_bombs:.0f} MiB after 4 duration bombs (statuses {sorted({s for s, _ in bombs})}, "
            f"p50 {np.median([s for _, s in bombs]) * 1e3:.0f} ms), {after_oversized:.0f} MiB after 4 bodies of "
            f"{2 * args.max_upload_mb:.0f} MiB (statuses {sorted({s for s, _ in oversized})})"
        )
        worst_uploads(url, server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)


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
    if args.index and args.serve:
        serve_part(args)


if __name__ == "__main__":
    main(ARGS)
