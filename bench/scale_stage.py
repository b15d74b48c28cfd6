"""Benchmark: a catalog's whole ranking + mining stage, every job, against scoring every pair once.

bench/scale.py times one job's work on a sample of anchors; this runs the stage a catalog of N tracks
needs, end to end, on this machine: a synthetic tag table with a professional one's statistics
(``scale.catalog_like_tags``) written as the workflow's catalog tables, split 60/20/20, then every job
the workflow would submit (``rank_split`` for each part of each split, ``mine_triplets`` for each part
of the train split, with ``paper.yaml``'s S, top K, Np = 15 and Nn = 250), each running the workflow's
own script in its own process, ``--cores`` at a time, the longest first. The floor, measured in the
same run: S of every pair of the catalog once (``--cores`` processes each scoring ``--floor-anchors``
anchors against all N tracks; N anchors in all, shared by the cores). The issue's target: the stage
within 1.5x that floor.

The jobs are launched by this script, not by Snakemake, because the stage's inputs are the validated
catalog tables, which a workflow run makes from audio; Snakemake's own cost per job (a second or two)
is not in these figures.

    python bench/scale_stage.py --tracks 100000 --cores 2 --out bench/results/scale
"""

from __future__ import annotations

import argparse
import json
import resource
import runpy
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))
import scale  # noqa: E402  (bench/scale.py: the synthetic tag table)

from trackrank.data.catalog import CatalogFiles  # noqa: E402
from trackrank.rank.mining import STRATEGIES  # noqa: E402
from trackrank.rank.parts import n_parts  # noqa: E402
from trackrank.rank.similarity import split_oracle  # noqa: E402
from trackrank.workflow_settings import (
    mining_settings,
    ranking_settings,
    similarity_settings,
)

SPLITS = {"train": 0.6, "val": 0.2, "test": 0.2}


def write_catalog(n_tracks: int, folder: Path) -> CatalogFiles:
    """The validated catalog's three tables for ``n_tracks`` synthetic tracks, split at random."""
    folder.mkdir(parents=True, exist_ok=True)
    tags = scale.catalog_like_tags(n_tracks).toarray().astype(np.float32)
    names = [f"tag{t:03d}" for t in range(scale.N_TAGS)]
    ids = [f"t{i:07d}" for i in range(n_tracks)]
    order = np.random.default_rng(0).permutation(n_tracks)
    split = np.empty(n_tracks, dtype=object)
    bounds = np.cumsum([0] + [round(share * n_tracks) for share in SPLITS.values()])
    for name, start, stop in zip(SPLITS, bounds[:-1], bounds[1:]):
        split[order[start:stop]] = name
    files = CatalogFiles.in_folder(folder)
    pd.DataFrame({"track_id": ids, "split": split}).to_parquet(files.tracks, index=False)
    pd.DataFrame(tags, columns=names).assign(track_id=ids).to_parquet(files.tags, index=False)
    categories = [scale.CATEGORIES[t * len(scale.CATEGORIES) // scale.N_TAGS] for t in range(scale.N_TAGS)]
    pd.DataFrame({"tag": names, "category": categories, "weight": 1.0}).to_csv(files.taxonomy, index=False)
    return files


def paper_config() -> dict:
    """paper.yaml with the schema's defaults filled in (it lists only where the paper differs), as the
    workflow sees it."""
    from snakemake.utils import validate

    config = yaml.safe_load((REPO / "paper.yaml").read_text())
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return config


def run_job(kind: str, split: str, part: int, catalog: Path, out: Path, anchors_per_job: int) -> dict:
    """One workflow job: the workflow's script, given what Snakemake would give it."""
    config = paper_config()
    files = CatalogFiles.in_folder(catalog)
    inputs = SimpleNamespace(tracks=str(files.tracks), tags=str(files.tags), taxonomy=str(files.taxonomy))
    name = f"{kind}-{split}-{part:04d}"
    if kind == "rank":
        outputs = {"rankings": out / f"{name}.parquet", "curve": out / f"{name}.curve.csv"}
        settings, script = ranking_settings(config), "rank_split.py"
    else:
        outputs = {strategy: out / f"{name}.{strategy}.parquet" for strategy in STRATEGIES}
        settings, script = mining_settings(config), "mine_triplets.py"
    outputs = {key: str(path) for key, path in outputs.items()}
    snakemake = SimpleNamespace(
        input=inputs,
        output=SimpleNamespace(**outputs, items=outputs.items),
        params=SimpleNamespace(
            similarity=similarity_settings(config), settings=settings, part=part, anchors_per_job=anchors_per_job
        ),
        wildcards=SimpleNamespace(split=split, part=f"{part:04d}"),
        log=[str(out / f"{name}.log")],
    )
    start, cpu = time.perf_counter(), time.process_time()
    runpy.run_path(str(REPO / "workflow" / "scripts" / script), init_globals={"snakemake": snakemake})
    return {
        "job": name,
        "wall_s": time.perf_counter() - start,
        "cpu_s": time.process_time() - cpu,
        "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,  # KiB -> GiB
    }


def floor_job(catalog: Path, first: int, count: int) -> dict:
    """S of anchors ``first`` .. ``first + count`` against every track of the catalog (one split of all)."""
    files = CatalogFiles.in_folder(catalog)
    config = paper_config()
    whole = CatalogFiles(catalog / "whole.parquet", files.tags, files.taxonomy)  # one split of every track
    _, oracle = split_oracle(whole, "all", **similarity_settings(config))
    start = time.perf_counter()
    for anchor in range(first, first + count):
        oracle.scores(anchor)
    return {"anchors": count, "s_per_anchor": (time.perf_counter() - start) / count, "tracks": oracle.n_tracks}


def child(args: list[str]) -> dict:
    """Run this script on ``args`` in a process of its own; its last line of output as JSON."""
    done = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def side_by_side(commands: list[list[str]], cores: int) -> list[dict]:
    """Each command a process of its own, ``cores`` at a time, in the order given."""
    with ThreadPoolExecutor(cores) as pool:
        return list(pool.map(child, commands))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=100_000)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--anchors-per-job", type=int, default=10_000)
    parser.add_argument("--floor-anchors", type=int, default=1_000, help="anchors each core scores for the floor")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "scale")
    parser.add_argument("--job", nargs=4, metavar=("KIND", "SPLIT", "PART", "CATALOG"), help=argparse.SUPPRESS)
    parser.add_argument("--floor", nargs=3, metavar=("CATALOG", "FIRST", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        kind, split, part, catalog = args.job
        out = Path(catalog).parent / "tables"
        print(json.dumps(run_job(kind, split, int(part), Path(catalog), out, args.anchors_per_job)))
        return
    if args.floor:
        catalog, first, count = args.floor
        print(json.dumps(floor_job(Path(catalog), int(first), int(count))))
        return
    with tempfile.TemporaryDirectory() as folder:
        catalog = Path(folder) / "catalog"
        files = write_catalog(args.tracks, catalog)
        (Path(folder) / "tables").mkdir()
        sizes = pd.read_parquet(files.tracks)["split"].value_counts().to_dict()
        jobs = [("mine", "train", part) for part in range(n_parts(sizes["train"], args.anchors_per_job))] + [
            ("rank", split, part) for split in SPLITS for part in range(n_parts(sizes[split], args.anchors_per_job))
        ]
        extra = ["--anchors-per-job", str(args.anchors_per_job)]
        start = time.perf_counter()
        rows = side_by_side(
            [["--job", kind, split, str(part), str(catalog), *extra] for kind, split, part in jobs], args.cores
        )
        stage_s = time.perf_counter() - start
        pd.read_parquet(files.tracks).assign(split="all").to_parquet(catalog / "whole.parquet", index=False)
        first = np.linspace(0, args.tracks - args.floor_anchors, args.cores).astype(int)
        floors = side_by_side([["--floor", str(catalog), str(f), str(args.floor_anchors)] for f in first], args.cores)
    per_anchor = float(np.mean([f["s_per_anchor"] for f in floors]))
    floor_s = per_anchor * args.tracks / args.cores
    result = {
        "tracks": args.tracks,
        "splits": sizes,
        "cores": args.cores,
        "anchors_per_job": args.anchors_per_job,
        "jobs": rows,
        "stage_wall_s": stage_s,
        "stage_cpu_s": sum(row["cpu_s"] for row in rows),
        "peak_gib_max": max(row["peak_gib"] for row in rows),
        "floor_s_per_anchor": per_anchor,
        "floor_wall_s": floor_s,
        "stage_over_floor": stage_s / floor_s,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"stage_{args.tracks}.json").write_text(json.dumps(result, indent=1) + "\n")
    for row in rows:
        print(f"{row['job']:18s} {row['wall_s']:7.1f} s  peak {row['peak_gib']:.2f} GiB")
    print(
        f"N {args.tracks:,d}: {len(rows)} jobs on {args.cores} cores in {stage_s:.0f} s "
        f"({result['stage_cpu_s'] / 3600:.3f} CPU-h); every pair once: {floor_s:.0f} s "
        f"({per_anchor * 1e3:.1f} ms/anchor); stage / floor {stage_s / floor_s:.2f}"
    )


if __name__ == "__main__":
    main()
