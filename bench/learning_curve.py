"""Learning curve: how many tagged train tracks before learning pays off (issue 19, part 4).

From a finished run (``--results``, e.g. of ``catalog: scores`` at 2,000 tracks or more), nested
subsets of its train split are drawn (each holds the one before it; the train split is artist-disjoint
from val and test, which stay fixed). For each subset size, the train split's
rankings and triplet tables are made anew on the subset alone (its own oracle ranks, as a catalog of
that size would have), and each system trains from scratch with each seed, then is evaluated on the
fixed val split (``--confirm``: the test split, to confirm a choice made on val) as the workflow does:

- the trained systems of ``--systems`` (default ``at_baseline`` and ``tl_online``); one that starts from
  the tagger's trunk (``tl_listwise_from_at``) starts from the ``at_baseline`` of its size and seed, listed before it;
- ``at_trunk``, the trunk of that size's auto-tagger (when ``at_baseline`` is among them);
- ``untrained``, the TL network at its initialisation (the same at every size: a size of 0);
- ``mfcc_stats``, MFCC statistics standardised on the run's train split (no training at all).

Per size: the mean MAP@20 and nDCG@20 over seeds, and paired differences (per query, each
query's values averaged over the seeds first, 95 % Student-t) of every system against
``mfcc_stats``, ``untrained`` and ``at_baseline``; ``curve.csv``, ``paired.csv`` and ``curve.png``.
``growth.csv`` pairs each system with itself at the smallest size: ``mfcc_stats`` and the test
queries are the same at every size, so a system's lead over ``mfcc_stats`` grows from one size to
another by exactly its own paired difference between them, which says whether the lead grows.

    python bench/learning_curve.py --results results --sizes 150 300 600 0 --seeds 0 1 2 \\
        --systems at_baseline tl_autopool_online --val-patches 2 --out /tmp/curve   # 0: the whole train split
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import learning  # noqa: E402  (bench/learning.py: one variant trained, embedded and evaluated)

from trackrank.data.catalog import CatalogFiles  # noqa: E402
from trackrank.learn.settings import mines_offline, starts_from, system_spec, with_malloc_settings  # noqa: E402
from trackrank.rank.metrics import paired_difference  # noqa: E402
from trackrank.rank.mining import write_triplet_tables  # noqa: E402
from trackrank.rank.oracle import write_rankings  # noqa: E402
from trackrank.rank.similarity import split_oracle  # noqa: E402
from trackrank.workflow_settings import mining_settings, ranking_settings, similarity_settings

#: A train track outside the subset: in no split the training or the evaluation reads.
UNUSED = "unused"


def nested_subsets(tracks: pd.DataFrame, sizes: list[int], seed: int) -> dict[int, list[str]]:
    """Train tracks in nested subsets of each size (0: all), drawn in one seeded order, in catalog order;
    keyed by their number of tracks.

    Tracks, not whole artists, join: the train split is already artist-disjoint from val and test, and
    a catalog has few artists at its start (the 2,000-track ``scores`` catalog has 17 train composers,
    one of them 190 tracks), so whole artists would make a small subset one or two composers."""
    train = tracks.loc[tracks["split"] == "train", "track_id"].to_numpy()
    order = train[np.random.default_rng(seed).permutation(len(train))]
    position = {track: i for i, track in enumerate(train)}
    return {
        len(chosen): sorted(chosen, key=position.get)
        for chosen in (list(order[: size or len(order)]) for size in sizes)
    }


def subset_results(results: Path, train_ids: list[str], out: Path, config: dict, strategies: list[str]) -> Path:
    """A run's results/ seen by a catalog whose train split is ``train_ids``: the catalog with the other
    train tracks unused, the cache and the val/test rankings linked, train rankings and triplets made anew."""
    folder = out / "results"
    outputs = {s: folder / "triplets" / s / "part-0000.parquet" for s in strategies}
    if (folder / "done").exists():  # an earlier run of the bench made it; mine the strategies it did not need
        missing = {s: path for s, path in outputs.items() if not path.exists()}
        if missing:
            ids, oracle = train_oracle(folder, config)
            write_triplet_tables(oracle, ids, outputs=missing, **mining_settings(config))
        return folder
    (folder / "catalog").mkdir(parents=True, exist_ok=True)
    tracks = pd.read_parquet(results / "catalog" / "tracks.parquet")
    tracks.loc[(tracks["split"] == "train") & ~tracks["track_id"].isin(train_ids), "split"] = UNUSED
    tracks.to_parquet(folder / "catalog" / "tracks.parquet", index=False)
    for name in ("tags.parquet", "taxonomy.csv"):
        _link(results / "catalog" / name, folder / "catalog" / name)
    _link(results / "cache", folder / "cache")
    for split in ("val", "test"):
        _link(results / "rankings" / split, folder / "rankings" / split)
    ids, oracle = train_oracle(folder, config)
    write_rankings(oracle, ids, output=folder / "rankings" / "train" / "part-0000.parquet", **ranking_settings(config))
    if outputs:
        write_triplet_tables(oracle, ids, outputs=outputs, **mining_settings(config))
    (folder / "done").write_text(json.dumps({"train_tracks": len(ids)}) + "\n")
    return folder


def train_oracle(folder: Path, config: dict):
    """The subset's train split (its ids and Oracle) under the configured S."""
    return split_oracle(CatalogFiles.in_folder(folder / "catalog"), "train", **similarity_settings(config))


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        target.symlink_to(source.resolve())


def size_chains(systems: list[str]) -> list[list[str]]:
    """The systems in runs of one process each: a system that starts from another's trained network (a
    ``_from_at`` one from ``at_baseline``) runs after it, from that size's network of the same seed."""
    chains: dict[str, list[str]] = {}
    for system in systems:
        start = starts_from(system)
        if start is None:
            chains[system] = [system]
        elif start in chains:
            chains[start].append(system)
        else:
            raise SystemExit(f"{system} starts from {start}'s network: list {start} before it in --systems")
    return list(chains.values())


def train_and_test(chain: list[str], seed: int, results: Path, out: Path, config: dict, split: str) -> list[dict]:
    """One chain of systems (:func:`size_chains`, one seed) at one size: learning.run_chain, with the tagger's
    trunk beside at_baseline and a system that starts from a trained network started from this size's."""
    variants = []
    for system in chain:
        if system == "untrained":
            variants.append((system, {"system": "tl_online", "epochs": 0}))
        elif system == "at_baseline":
            variants.append((system, {"system": system, "trunk_row": "at_trunk"}))
        elif starts_from(system):
            variants.append((system, {"system": system, "starts_from": starts_from(system)}))
        else:
            variants.append((system, {"system": system}))
    return learning.run_chain(variants, seed, results, out, config, split)


def mfcc_row(results: Path, config: dict, out: Path, split: str) -> pd.DataFrame:
    """``mfcc_stats`` on ``split`` (per query: ``map``, ``ndcg``): it does not train, so it is the same at every
    size (standardised on the run's whole train split)."""
    run = learning.reference_run("mfcc_stats", 0, results, out, config, split)
    return run["per_query"].set_index("query")[["map", "ndcg"]]


def finished(size: int, chain: list[str], seed: int, results: Path, out: Path) -> bool:
    """Whether a job of the curve finished in an earlier run of the bench (at_baseline: its trunk's row too)."""
    names = chain + (["at_trunk"] if "at_baseline" in chain else [])
    return all(learning.finished(out / name / f"seed{seed}") for name in names)


def report(runs: list[dict], mfcc: pd.DataFrame, out: Path, split: str) -> None:
    """curve.csv (mean over seeds), paired.csv (against mfcc_stats, untrained, at_baseline), curve.png."""
    by = {}
    for run in runs:
        by.setdefault((run["size"], run["variant"]), []).append(run["per_query"].set_index("query")[["map", "ndcg"]])
    means = {key: pd.concat(tables).groupby(level=0).mean() for key, tables in by.items()}
    sizes = sorted({size for size, _ in means})
    for size in sizes:
        means[(size, "mfcc_stats")] = mfcc
    curve = pd.DataFrame(
        [
            {"train_tracks": size, "system": name, "map": 100 * v["map"].mean(), "ndcg": 100 * v["ndcg"].mean()}
            for (size, name), v in sorted(means.items())
        ]
    )
    curve.insert(0, "split", split)
    curve.to_csv(out / "curve.csv", index=False)
    rows = []
    for (size, name), values in sorted(means.items()):
        for baseline in ("mfcc_stats", "untrained", "at_baseline"):
            reference = means.get((size, baseline))
            if reference is None or baseline == name:
                continue
            row = {"train_tracks": size, "system": name, "baseline": baseline}
            for metric in ("map", "ndcg"):
                mean, half = paired_difference(
                    values[metric].to_numpy(), reference.loc[values.index, metric].to_numpy()
                )
                row[f"d_{metric}"], row[f"ci_{metric}"] = 100 * mean, 100 * half
            rows.append(row)
    paired = pd.DataFrame(rows)
    paired.to_csv(out / "paired.csv", index=False)
    growth = growth_from_smallest(means, sizes)
    growth.to_csv(out / "growth.csv", index=False)
    print(curve.to_string(index=False, float_format="%.1f"))
    print(paired.to_string(index=False, float_format="%.1f"))
    print(growth.to_string(index=False, float_format="%.1f"))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("map", "ndcg")):
        for name, table in curve.groupby("system"):
            ax.plot(table["train_tracks"], table[metric], "o-", label=name)
        ax.set(xscale="log", xlabel="tagged train tracks", ylabel=f"{split} {metric.upper()}@20 (%)")
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "curve.png", dpi=120)


def growth_from_smallest(means: dict, sizes: list[int]) -> pd.DataFrame:
    """Each trained system at each larger size against itself at the smallest size, paired per query.

    A system's lead over any reference that does not train (``mfcc_stats``, ``untrained``) grows by
    exactly this difference, with the same confidence interval. A system not run at the smallest size
    has no row.
    """
    rows = []
    for (size, name), values in sorted(means.items()):
        smallest = means.get((sizes[0], name))
        if size == sizes[0] or name in ("mfcc_stats", "untrained") or smallest is None:
            continue
        row = {"train_tracks": size, "system": name, "from_tracks": sizes[0]}
        for metric in ("map", "ndcg"):
            mean, half = paired_difference(values[metric].to_numpy(), smallest.loc[values.index, metric].to_numpy())
            row[f"d_{metric}"], row[f"ci_{metric}"] = 100 * mean, 100 * half
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    with_malloc_settings()  # as the workflow's training jobs run; first, so nothing is done twice
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, required=True, help="a finished run's results/ folder")
    parser.add_argument("--sizes", type=int, nargs="+", default=[150, 300, 600, 1200, 0], help="0: all")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--systems", nargs="+", default=["at_baseline", "tl_online"])
    parser.add_argument("--subset-seed", type=int, default=0, help="the order in which train tracks join")
    parser.add_argument("--config", type=Path, default=learning.REPO / "config.yaml")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--val-patches", type=int, help="patches per val track (train.val_patches): fewer for a val split of hundreds"
    )
    parser.add_argument(
        "--epochs", type=int, help="the step budget, in epochs of train.batches_per_epoch steps (train.epochs)"
    )
    parser.add_argument(
        "--confirm", action="store_true", help="evaluate on the test split: the confirmation of a choice made on val"
    )
    parser.add_argument(
        "--finished-only",
        action="store_true",
        help="report the runs finished so far, training nothing (e.g. while another run of the bench goes on)",
    )
    args = parser.parse_args()
    split = learning.CONFIRMATION_SPLIT if args.confirm else learning.CHOICE_SPLIT
    config = learning.load_config(args.config)
    if args.val_patches:
        config["train"]["val_patches"] = args.val_patches
    if args.epochs:
        config["train"]["epochs"] = args.epochs
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    tracks = pd.read_parquet(args.results / "catalog" / "tracks.parquet")
    strategies = sorted({system_spec(s)[1] for s in args.systems if mines_offline(system_spec(s)[1])})
    subsets = {}
    for size, ids in nested_subsets(tracks, args.sizes, args.subset_seed).items():
        folder = args.out / f"train{size}"
        subsets[size] = (subset_results(args.results, ids, folder, config, strategies), folder)
    # seed by seed, so that a run cut off has whole curves of its first seeds (it resumes the rest)
    jobs = [
        job
        for seed in args.seeds
        for job in [(0, ["untrained"], seed, args.results, args.out)]
        + [(size, chain, seed, *subsets[size]) for size in subsets for chain in size_chains(args.systems)]
    ]
    if args.finished_only:
        jobs = [job for job in jobs if finished(*job)]
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [
            (size, pool.submit(train_and_test, chain, seed, results, folder, config, split))
            for size, chain, seed, results, folder in jobs
        ]
        runs = [dict(run, size=size) for size, future in futures for run in future.result()]
    untrained = [run for run in runs if run["variant"] == "untrained"]
    sizes = sorted({run["size"] for run in runs if run["variant"] != "untrained"})
    runs = [run for run in runs if run["variant"] != "untrained"] + [
        dict(run, size=size) for size in sizes for run in untrained
    ]
    report(runs, mfcc_row(args.results, config, args.out, split), args.out, split)


if __name__ == "__main__":
    main()
