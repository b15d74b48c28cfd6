"""Training variants compared on the test split, at equal step budgets, over seeds, paired by query.

Why: with ~87 test queries a 95 % CI is about ±5 MAP points and the seed alone moves a
system by up to 10, so a change to training or mining is judged by the mean per-query
difference to a reference variant (each query's values averaged over the seeds first),
with a paired 95 % Student-t CI, never by two overlapping intervals.

Reads a finished run's tables (``--results``, default ``results/``: cache, catalog,
rankings, triplets) and trains each variant from scratch in its own folder; variants
run side by side in ``--jobs`` processes of one thread each.

    python bench/learning.py --variants bench/variants.json --seeds 0 1 --out /tmp/learning
    python bench/learning.py --compare /tmp/learning/at /tmp/other/tl_online   # folders of earlier runs

``variants.json`` maps a name to ``{"system": ..., <TrainSettings field>: value, ...}``
(and optionally ``"triplets": path`` for an offline system's table, or ``"continues": <variant>``:
this variant resumes that variant's finished run of the same seed from its ``last.pt``, so that a change
to the stopping rule alone (``epochs``, ``patience``, ``min_epochs``) costs only the epochs it adds, and
both are the runs they would be on their own: resuming is exact; or ``"starts_from": <variant>``: its
network starts from that variant's trained model.pt of the same seed, e.g. a ``tl_distance_from_ssl``
from a ``tl_ssl`` variant)
(and ``"trunk_row": <name>`` on an ``at_baseline`` variant: beside it, a row of that name for its trained
trunk used as an embedding, as the workflow's ``at_trunk`` reference is made)
(anything not given comes from ``config.yaml`` as the workflow would set it); the first
variant is the reference of the paired differences, unless ``--reference`` names one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from trackrank.data.catalog import CatalogFiles
from trackrank.data.feature_cache import cache_in_folder
from trackrank.learn.settings import with_malloc_settings
from trackrank.rank.metrics import paired_difference  # noqa: E402  (after the path)
from trackrank.rank.parts import parts_in


def run_variant(name: str, overrides: dict, seed: int, results: Path, out: Path, config: dict) -> dict:
    """Train one (variant, seed), embed the test split with 8 patches, evaluate; per-query metrics.

    A (variant, seed) whose folder holds ``result.json`` finished in an earlier run of the bench and is
    read back, not trained again, so a long experiment cut off resumes where it stopped."""
    folder = out / name / f"seed{seed}"
    if finished(folder):
        return finished_run(folder)
    import torch

    torch.set_num_threads(1)
    from trackrank.learn.embedding import write_embeddings
    from trackrank.learn.loading import load_training_data
    from trackrank.learn.settings import TrainSettings, mines_offline, starts_from, train_settings
    from trackrank.learn.training import train
    from trackrank.logs import log_to
    from trackrank.rank.similarity import similarity_settings

    folder.mkdir(parents=True, exist_ok=True)
    log_to(str(folder / "train.log"))
    overrides = dict(overrides)
    system = overrides.pop("system")
    triplets = overrides.pop("triplets", None)  # another triplet table than the run's (e.g. other Np, Nn)
    continues = overrides.pop("continues", None)
    starts = overrides.pop("starts_from", None)
    overrides.pop("trunk_row", None)  # made by run_chain, after the training
    fields = {**train_settings(system, config), **overrides, "seed": seed}
    if starts:  # another variant's network of the same seed (e.g. a tl_ssl variant for a *_from_ssl one)
        fields["init_trunk"] = str(out / starts / f"seed{seed}" / "model.pt")
    elif start := starts_from(system):  # the run's own (at_baseline, tl_ssl), unless the variant names another
        fields.setdefault("init_trunk", str(results / "models" / start / "model.pt"))
    settings = TrainSettings.from_params(system, fields)
    if continues:
        continue_run(out / continues / f"seed{seed}", folder, settings)
    strategy = settings.strategy
    cache, catalog = cache_in_folder(results / "cache"), CatalogFiles.in_folder(results / "catalog")
    data = load_training_data(
        settings,
        cache,
        catalog=catalog,
        val_rankings=run_table(results, "rankings", "val"),
        triplets=triplets or (run_table(results, "triplets", strategy) if mines_offline(strategy) else None),
        train_rankings=run_table(results, "rankings", "train"),
        similarity=similarity_settings(config),
    )
    history = train(
        settings,
        data,
        model_file=folder / "model.pt",
        history_file=folder / "history.csv",
        last_file=folder / "last.pt",
    )
    per_query = test_metrics(results, config, folder, write_embeddings, folder / "model.pt")
    kept = int(history.loc[history["kept"], "epoch"].iloc[0])
    return record_run(
        folder, {"variant": name, "seed": seed, "kept": kept, "epochs": int(history["epoch"].max())}, per_query
    )


def chains(variants: dict) -> list[list[tuple[str, dict]]]:
    """The variants in runs of one process each: a variant that ``continues`` or ``starts_from`` another
    runs after it."""
    chained: dict[str, list] = {}
    for name, settings in variants.items():
        base = settings.get("continues", settings.get("starts_from"))
        if base is not None and base not in chained:
            raise SystemExit(f"variant {name} continues '{base}', which is not listed before it")
        chained[name] = chained[base] if base is not None else []
        chained[name].append((name, settings))
    return list({id(chain): chain for chain in chained.values()}.values())


def run_chain(chain: list[tuple[str, dict]], seed: int, results: Path, out: Path, config: dict) -> list[dict]:
    """:func:`run_variant` for each variant of a chain in turn (one seed), each followed by its trunk's row
    where it names one (``trunk_row``)."""
    runs = []
    for name, settings in chain:
        runs.append(run_variant(name, settings, seed, results, out, config))
        if "trunk_row" in settings:
            runs.append(trunk_run(settings["trunk_row"], out / name / f"seed{seed}", runs[-1], results, out, config))
    return runs


def trunk_run(name: str, tagger: Path, run: dict, results: Path, out: Path, config: dict) -> dict:
    """The row ``name`` of the auto-tagger trained in ``tagger`` (its run ``run``): its trunk's penultimate
    layer as the embedding (the workflow's ``at_trunk`` reference), evaluated on the test split."""
    folder = out / name / f"seed{run['seed']}"
    if finished(folder):
        return finished_run(folder)
    from trackrank.evaluate.references.at_trunk import write_trunk_embeddings

    folder.mkdir(parents=True, exist_ok=True)
    per_query = test_metrics(results, config, folder, write_trunk_embeddings, tagger / "model.pt")
    row = {"variant": name, "seed": run["seed"], "kept": run["kept"], "epochs": run["epochs"]}  # the tagger's epochs
    return record_run(folder, row, per_query)


def continue_run(earlier: Path, folder: Path, settings) -> None:
    """Start ``folder`` from the finished run in ``earlier`` (its last.pt, model.pt and history), which
    ``settings`` must train on the same terms (the same checkpoint fingerprint), so that training resumes.
    A continuation cut off before it finished goes on from its own last.pt instead."""
    from trackrank.learn.checkpoints import load_checkpoint

    if not finished(earlier):
        raise SystemExit(f"{earlier}: the run to continue has not finished (run its variant first)")
    checkpoint = load_checkpoint(earlier / "last.pt", keys=("fingerprint",))
    if checkpoint["fingerprint"] != settings.fingerprint():
        raise SystemExit(f"{earlier}: trained with other settings than the stopping rule's; it cannot be continued")
    own = folder / "last.pt"
    if own.exists() and load_checkpoint(own, keys=("fingerprint",))["fingerprint"] == checkpoint["fingerprint"]:
        return
    for name in ("last.pt", "model.pt", "history.csv"):
        shutil.copy2(earlier / name, folder / name)


def record_run(folder: Path, run: dict, per_query: pd.DataFrame) -> dict:
    """Mark a (variant, seed) finished (``result.json`` beside its metrics); the run with its per-query metrics."""
    (folder / "result.json").write_text(json.dumps(run) + "\n")
    return {**run, "per_query": per_query}


def finished(folder: Path) -> bool:
    """Whether the (variant, seed) of ``folder`` finished in an earlier run of the bench."""
    return (folder / "result.json").exists()


def finished_run(folder: Path) -> dict:
    """A (variant, seed) an earlier run of the bench finished: its result.json and per-query metrics."""
    run = json.loads((folder / "result.json").read_text())
    return {**run, "per_query": pd.read_parquet(folder / "metrics" / "variant.per_query.parquet")}


def test_metrics(results: Path, config: dict, folder: Path, embedder, model: Path) -> pd.DataFrame:
    """The test split embedded by ``embedder`` (write_embeddings, or another with its signature) from
    ``model`` into ``folder``, and evaluated as the workflow does: per-query metrics."""
    from trackrank.evaluate.evaluation import evaluate, evaluation_settings, test_tracks
    from trackrank.rank.similarity import similarity_settings

    cache, catalog = cache_in_folder(results / "cache"), CatalogFiles.in_folder(results / "catalog")
    test_ids, oracle = test_tracks(catalog, [part.index for part in cache], **similarity_settings(config))
    embedder(
        model,
        cache,
        track_ids=test_ids,
        output=folder / "embeddings.parquet",
        n_patches=config["evaluate"]["n_patches"],
        seed=config["seed"],
        device="cpu",
    )
    evaluate(
        "variant",
        test_ids=test_ids,
        oracle=oracle,
        test_rankings=run_table(results, "rankings", "test"),
        predictions=folder / "predictions" / "variant.parquet",
        summary=folder / "metrics" / "variant.json",
        per_query=folder / "metrics" / "variant.per_query.parquet",
        embeddings=folder / "embeddings.parquet",
        **evaluation_settings(config),
    )
    return pd.read_parquet(folder / "metrics" / "variant.per_query.parquet")


def run_table(results: Path, kind: str, name: str) -> list[Path]:
    """A finished run's rankings or triplet table: its parts, or the one file of a run made before parts."""
    single = results / kind / f"{name}.parquet"
    return [single] if single.exists() else parts_in(results / kind / name)


def compare_folders(folders: list[Path]) -> None:
    """Paired differences of finished variant folders (``<out>/<variant>``) to the first one.

    Each folder's ``seed*/metrics/variant.per_query.parquet`` are averaged per query over the
    seeds the folders share, so runs made by separate invocations compare like one run.
    """
    seeds = set.intersection(*[{p.name for p in f.glob("seed*")} for f in folders])
    if not seeds:
        raise SystemExit("the folders share no seed")
    by_query = {}
    for folder in folders:
        tables = [
            pd.read_parquet(folder / seed / "metrics" / "variant.per_query.parquet").set_index("query")
            for seed in sorted(seeds)
        ]
        by_query[str(folder)] = pd.concat(tables).groupby(level=0)[["map", "ndcg"]].mean()
    reference = by_query[str(folders[0])]
    print(f"seeds {sorted(seeds)}; paired difference to {folders[0]} (points):")
    for name, values in by_query.items():
        cells = []
        for metric in ("map", "ndcg"):
            mean, half = paired_difference(values[metric].to_numpy(), reference.loc[values.index, metric].to_numpy())
            cells.append(f"{metric} {100 * values[metric].mean():.1f} ({100 * mean:+.1f} ± {100 * half:.1f})")
        print(f"  {name}: " + ", ".join(cells))


def main() -> None:
    with_malloc_settings()  # as the workflow's training jobs run; first, so nothing is done twice
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--compare", type=Path, nargs="+", help="only compare finished variant folders (the first is the reference)"
    )
    parser.add_argument("--variants", help="JSON file or JSON text: name -> settings")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--results", type=Path, default=REPO / "results")
    parser.add_argument("--config", type=Path, default=REPO / "config.yaml")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--reference", help="variant the others are compared with (default: the first)")
    args = parser.parse_args()
    if args.compare:
        compare_folders(args.compare)
        return
    if not args.variants or not args.out:
        parser.error("--variants and --out are needed to train")
    text = Path(args.variants).read_text() if Path(args.variants).exists() else args.variants
    variants = json.loads(text)
    config = load_config(args.config)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [
            pool.submit(run_chain, chain, seed, args.results, args.out, config)
            for chain in chains(variants)
            for seed in args.seeds
        ]
        runs = [run for f in futures for run in f.result()]
    report(runs, args.reference or next(iter(variants)), args.out)


def load_config(path: Path) -> dict:
    """config.yaml with the schema's defaults, as the workflow sees it."""
    from snakemake.utils import validate

    config = yaml.safe_load(path.read_text())
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return config


def report(runs: list[dict], reference: str, out: Path) -> None:
    rows = []
    for run in runs:
        values = run["per_query"]
        rows.append(
            {
                "variant": run["variant"],
                "seed": run["seed"],
                "kept": f"{run['kept']}/{run['epochs']}",
                "map": 100 * values["map"].mean(),
                "ndcg": 100 * values["ndcg"].mean(),
            }
        )
    table = pd.DataFrame(rows)
    table.to_csv(out / "runs.csv", index=False)
    print(table.to_string(index=False, float_format="%.1f"))
    by_query = {
        name: pd.concat([r["per_query"][["map", "ndcg"]] for r in runs if r["variant"] == name]).groupby(level=0).mean()
        for name in table["variant"].unique()
    }
    print(f"\nmean over seeds, and paired difference to {reference} (per query, seeds averaged), in points:")
    lines = []
    for name, values in by_query.items():
        line = {"variant": name, "map": 100 * values["map"].mean(), "ndcg": 100 * values["ndcg"].mean()}
        for metric in ("map", "ndcg"):
            mean, half = paired_difference(values[metric].to_numpy(), by_query[reference][metric].to_numpy())
            line[f"d_{metric}"] = f"{100 * mean:+.1f} ± {100 * half:.1f}"
        lines.append(line)
    summary = pd.DataFrame(lines)
    summary.to_csv(out / "summary.csv", index=False)
    print(summary.to_string(index=False, float_format="%.1f"))


if __name__ == "__main__":
    main()
