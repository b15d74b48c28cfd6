"""Training variants compared on the val split, at equal step budgets, over seeds, paired by query.

Why: with ~80 queries a 95 % CI is about ±5 MAP points and the seed alone moves a system by up to 10, so a
change to training or mining is judged by its difference to a reference variant, paired by query, never by
two overlapping intervals: the mean per-query difference (each query averaged over the seeds) with its
Student-t CI, and beside it the interval of a bootstrap over queries **and** seeds, which includes what
reseeding moves; "better" means that second interval excludes 0.

Choices are made on the **val** split (8 patches per track, as the test split is evaluated). The test split
is read only with ``--confirm``: a confirmation of a choice already made, on catalogs no choice has seen
(docs/evaluation.md, "How a default is chosen"); its printout says so and it cannot feed a choice.

Reads a finished run's tables (``--results``, default ``results/``: cache, catalog,
rankings, triplets) and trains each variant from scratch in its own folder; variants
run side by side in ``--jobs`` processes of one thread each.

    python bench/learning.py --variants bench/variants.json --seeds 0 1 --out /tmp/learning
    python bench/learning.py --compare /tmp/learning/at /tmp/other/tl_online   # folders of earlier runs
    python bench/learning.py --variants ... --out ... --confirm   # the test split: confirmation only

``variants.json`` maps a name to ``{"system": ..., <TrainSettings field>: value, ...}``
(and optionally ``"triplets": path`` for an offline system's table, or ``"continues": <variant>``:
this variant resumes that variant's finished run of the same seed from its ``last.pt``, so that a change
to the stopping rule alone (``epochs``, ``patience``, ``budget_tracks``) costs only the epochs it adds, and
both are the runs they would be on their own: resuming is exact; or ``"starts_from": <variant>``: its
network starts from that variant's trained model.pt of the same seed, e.g. a ``tl_distance_from_ssl``
from a ``tl_ssl`` variant)
(and ``"trunk_row": <name>`` on an ``at_baseline`` variant: beside it, a row of that name for its trained
trunk used as an embedding, as the workflow's ``at_trunk`` reference is made; ``{"reference": "mfcc_stats"}``:
the MFCC statistics reference, which trains nothing; ``{"system": "tl_online", "epochs": 0}``: the untrained
network)
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

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from trackrank.data.catalog import CatalogFiles
from trackrank.data.feature_cache import cache_in_folder
from trackrank.learn.settings import with_malloc_settings
from trackrank.rank.metrics import interval_verdict, paired_difference, seed_and_query_interval
from trackrank.rank.parts import parts_in

#: The split choices are made on; the test split only confirms (``--confirm``).
CHOICE_SPLIT, CONFIRMATION_SPLIT = "val", "test"


def reference_run(name: str, seed: int, results: Path, out: Path, config: dict, split: str) -> dict:
    """The ``mfcc_stats`` reference as a run of ``seed`` (it does not train: every seed has the same values),
    from the run's MFCC statistics standardised on its train split, evaluated on ``split``."""
    from trackrank.evaluate.references.mfcc_stats import write_reference_embeddings

    def embed(stats, cache, *, track_ids, output, **_):
        written = write_reference_embeddings(
            stats, tracks=results / "catalog" / "tracks.parquet", cache_index=[p.index for p in cache],
            output=output, split=split,
        )  # fmt: skip
        if written["track_id"].tolist() != track_ids:
            raise SystemExit(f"mfcc_stats: the {split} tracks with statistics differ from those evaluated")

    folder = out / name / f"seed{seed}"
    if not finished(folder):
        folder.mkdir(parents=True, exist_ok=True)
        record_run(folder, {"variant": name, "seed": seed, "kept": 0, "epochs": 0})
    return with_metrics(folder, results, config, embed, results / "features" / "mfcc_stats.parquet", split)


def run_variant(
    name: str, overrides: dict, seed: int, results: Path, out: Path, config: dict, split: str = CHOICE_SPLIT
) -> dict:
    """Train one (variant, seed), embed ``split`` with 8 patches, evaluate; per-query metrics.

    A (variant, seed) whose folder holds ``result.json`` finished in an earlier run of the bench and is
    read back, not trained again, so a long experiment cut off resumes where it stopped; a split it was not
    evaluated on then is evaluated from its model.pt."""
    from trackrank.learn.embedding import write_embeddings

    folder = out / name / f"seed{seed}"
    if finished(folder):
        return with_metrics(folder, results, config, write_embeddings, folder / "model.pt", split)
    import torch

    torch.set_num_threads(1)
    from trackrank.learn.loading import load_training_data
    from trackrank.learn.settings import TrainSettings, mines_offline, starts_from, train_settings
    from trackrank.learn.training import train
    from trackrank.logs import log_to
    from trackrank.workflow_settings import similarity_settings

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
    kept = int(history.loc[history["kept"], "epoch"].iloc[0])
    record_run(folder, {"variant": name, "seed": seed, "kept": kept, "epochs": int(history["epoch"].max())})
    return with_metrics(folder, results, config, write_embeddings, folder / "model.pt", split)


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


def run_chain(
    chain: list[tuple[str, dict]], seed: int, results: Path, out: Path, config: dict, split: str = CHOICE_SPLIT
) -> list[dict]:
    """:func:`run_variant` for each variant of a chain in turn (one seed), each followed by its trunk's row
    where it names one (``trunk_row``)."""
    runs = []
    for name, settings in chain:
        if settings.get("reference") == "mfcc_stats":
            runs.append(reference_run(name, seed, results, out, config, split))
            continue
        runs.append(run_variant(name, settings, seed, results, out, config, split))
        if "trunk_row" in settings:
            tagger = out / name / f"seed{seed}"
            runs.append(trunk_run(settings["trunk_row"], tagger, runs[-1], results, out, config, split))
    return runs


def trunk_run(name: str, tagger: Path, run: dict, results: Path, out: Path, config: dict, split: str) -> dict:
    """The row ``name`` of the auto-tagger trained in ``tagger`` (its run ``run``): its trunk's penultimate
    layer as the embedding (the workflow's ``at_trunk`` reference), evaluated on ``split``."""
    from trackrank.evaluate.references.at_trunk import write_trunk_embeddings

    folder = out / name / f"seed{run['seed']}"
    if not finished(folder):
        folder.mkdir(parents=True, exist_ok=True)
        record_run(folder, {"variant": name, "seed": run["seed"], "kept": run["kept"], "epochs": run["epochs"]})
    return with_metrics(folder, results, config, write_trunk_embeddings, tagger / "model.pt", split)


def continue_run(earlier: Path, folder: Path, settings) -> None:
    """Start ``folder`` from the finished run in ``earlier`` (its last.pt, model.pt and history), which
    ``settings`` must train on the same terms (the same checkpoint fingerprint), so that training resumes.
    A continuation cut off before it finished goes on from its own last.pt instead."""
    from trackrank.learn.checkpoints import fingerprint, load_checkpoint

    if not finished(earlier):
        raise SystemExit(f"{earlier}: the run to continue has not finished (run its variant first)")
    checkpoint = load_checkpoint(earlier / "last.pt", keys=("fingerprint",))
    if checkpoint["fingerprint"] != fingerprint(settings):
        raise SystemExit(f"{earlier}: trained with other settings than the stopping rule's; it cannot be continued")
    own = folder / "last.pt"
    if own.exists() and load_checkpoint(own, keys=("fingerprint",))["fingerprint"] == checkpoint["fingerprint"]:
        return
    for name in ("last.pt", "model.pt", "history.csv"):
        shutil.copy2(earlier / name, folder / name)


def record_run(folder: Path, run: dict) -> None:
    """Mark a (variant, seed) trained (``result.json``: variant, seed, kept and last epoch)."""
    (folder / "result.json").write_text(json.dumps(run) + "\n")


def finished(folder: Path) -> bool:
    """Whether the (variant, seed) of ``folder`` finished training in an earlier run of the bench."""
    return (folder / "result.json").exists()


def metrics_file(folder: Path, split: str) -> Path:
    """A (variant, seed)'s per-query metrics on ``split``; a run made before the val split was read has its
    test metrics under their old name."""
    path = folder / "metrics" / f"{split}.per_query.parquet"
    legacy = folder / "metrics" / "variant.per_query.parquet"
    return legacy if split == CONFIRMATION_SPLIT and not path.exists() and legacy.exists() else path


def with_metrics(folder: Path, results: Path, config: dict, embedder, model: Path, split: str) -> dict:
    """The trained (variant, seed) of ``folder`` (``<out>/<variant>/seed<n>``) with its per-query metrics on
    ``split``, evaluated now from ``model`` by ``embedder`` (write_embeddings, or another with its signature)
    if not already. It is named as its folder: a run linked in from another bench under another name (its
    ``result.json`` keeps the name it was trained as) is compared under the name it has here."""
    path = metrics_file(folder, split)
    if not path.exists():
        split_metrics(results, config, folder, embedder, model, split)
    record = json.loads((folder / "result.json").read_text())
    return {**record, "variant": folder.parent.name, "per_query": pd.read_parquet(path)}


def split_metrics(results: Path, config: dict, folder: Path, embedder, model: Path, split: str) -> None:
    """``split`` embedded by ``embedder`` from ``model`` into ``folder`` and evaluated as the workflow does
    (``evaluate.n_patches`` patches per track): per-query metrics in :func:`metrics_file`."""
    from trackrank.evaluate.evaluation import evaluate, evaluated_tracks
    from trackrank.workflow_settings import evaluation_settings, similarity_settings

    cache, catalog = cache_in_folder(results / "cache"), CatalogFiles.in_folder(results / "catalog")
    track_ids, oracle = evaluated_tracks(
        catalog, [part.index for part in cache], split=split, **similarity_settings(config)
    )
    embedder(
        model,
        cache,
        track_ids=track_ids,
        output=folder / f"{split}.embeddings.parquet",
        n_patches=config["evaluate"]["n_patches"],
        seed=config["seed"],
        device="cpu",
    )
    evaluate(
        "variant",
        track_ids=track_ids,
        oracle=oracle,
        rankings=run_table(results, "rankings", split),
        predictions=folder / "predictions" / f"{split}.parquet",
        summary=folder / "metrics" / f"{split}.json",
        per_query=metrics_file(folder, split),
        embeddings=folder / f"{split}.embeddings.parquet",
        **evaluation_settings(config),
    )


def run_table(results: Path, kind: str, name: str) -> list[Path]:
    """A finished run's rankings or triplet table: its parts, or the one file of a run made before parts."""
    single = results / kind / f"{name}.parquet"
    return [single] if single.exists() else parts_in(results / kind / name)


def compare_folders(folders: list[Path], split: str = CHOICE_SPLIT) -> None:
    """Paired differences on ``split`` of finished variant folders (``<out>/<variant>``) to the first one,
    over the seeds the folders share, so runs made by separate invocations compare like one run."""
    seeds = sorted(set.intersection(*[{p.name for p in f.glob("seed*")} for f in folders]))
    if not seeds:
        raise SystemExit("the folders share no seed")
    runs = []
    for folder in folders:
        for seed in seeds:
            path = metrics_file(folder / seed, split)
            if not path.exists():
                raise SystemExit(
                    f"{folder / seed}: no {split} metrics (run its variants again with --variants and --out: "
                    f"a finished run is evaluated on {split} from its model.pt)"
                )
            runs.append({"variant": str(folder), "seed": int(seed[4:]), "per_query": pd.read_parquet(path)})
    print(comparison(runs, [str(folders[0])], split).to_string(index=False, float_format="%.1f"))


def comparison(runs: list[dict], references: list[str], split: str) -> pd.DataFrame:
    """Each variant's mean over seeds and its paired difference to each of ``references`` on ``split``, in
    points: per query (seeds averaged first, Student-t) and over queries and seeds (bootstrap), with the
    latter's verdict.

    ``runs``: one per (variant, seed), each with ``per_query`` metrics (a ``query`` column) of the same
    queries; a variant is compared over the seeds of the reference."""
    tables = {(run["variant"], run["seed"]): run["per_query"].set_index("query")[["map", "ndcg"]] for run in runs}
    lines = []
    for reference in references:
        seeds = sorted(seed for variant, seed in tables if variant == reference)
        for variant in dict.fromkeys(run["variant"] for run in runs):
            line = {"split": split, "variant": variant, "against": reference, "seeds": len(seeds)}
            for metric in ("map", "ndcg"):
                ours, theirs = (
                    np.stack([tables[(name, seed)][metric].to_numpy() for seed in seeds])
                    for name in (variant, reference)
                )
                mean, half = paired_difference(ours.mean(axis=0), theirs.mean(axis=0))
                _, low, high = seed_and_query_interval(ours, theirs)
                line[metric] = 100 * ours.mean()
                line[f"d_{metric}"] = f"{100 * mean:+.1f} ± {100 * half:.1f}"
                line[f"d_{metric}_seeds"] = f"[{100 * low:+.1f}, {100 * high:+.1f}] {interval_verdict(low, high)}"
            lines.append(line)
    return pd.DataFrame(lines)


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
    parser.add_argument(
        "--reference", nargs="+", help="variants the others are compared with, each in turn (default: the first)"
    )
    parser.add_argument(
        "--confirm",
        action="store_true",
        help="compare on the test split instead of val: the confirmation of a choice already made, never a choice",
    )
    args = parser.parse_args()
    split = CONFIRMATION_SPLIT if args.confirm else CHOICE_SPLIT
    if args.confirm:
        print(
            "CONFIRMATION on the test split: these numbers confirm a choice made on val; "
            "they must not make one (docs/evaluation.md, 'How a default is chosen')\n"
        )
    if args.compare:
        compare_folders(args.compare, split)
        return
    if not args.variants or not args.out:
        parser.error("--variants and --out are needed to train")
    text = Path(args.variants).read_text() if Path(args.variants).exists() else args.variants
    variants = json.loads(text)
    if unknown := [name for name in args.reference or () if name not in row_names(variants)]:
        parser.error(f"--reference {' '.join(unknown)}: not a variant of --variants nor a trunk_row of one")
    config = load_config(args.config)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    runs = run_all(variants, args, config, split)
    references = args.reference or [next(iter(variants))]
    report(runs, references, args.out, split)
    if args.confirm:  # the served embedding, chosen on val (finished runs: evaluated only), confirmed here
        served = choose_on_val(run_all(variants, args, config, CHOICE_SPLIT), servable(variants))
        print(f"\nserved: {served} (the best val nDCG@20 of {', '.join(servable(variants))}); on test:")
        print(comparison([r for r in runs if r["variant"] in (served, *references)], references, split)
              .query("variant == @served").to_string(index=False, float_format="%.1f"))  # fmt: skip


def row_names(variants: dict) -> list[str]:
    """The rows a variants file makes, in its order: each variant, and after an auto-tagger variant that names
    one its trunk's row (``trunk_row``)."""
    return [name for variant, settings in variants.items() for name in (variant, settings.get("trunk_row")) if name]


def run_all(variants: dict, args: argparse.Namespace, config: dict, split: str) -> list[dict]:
    """Every (variant, seed), trained unless finished, evaluated on ``split``, ``--jobs`` at a time."""
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [
            pool.submit(run_chain, chain, seed, args.results, args.out, config, split)
            for seed in args.seeds  # seed by seed: a run cut off has every variant of its first seeds
            for chain in chains(variants)
        ]
        return [run for f in futures for run in f.result()]


def servable(variants: dict) -> list[str]:
    """The variants an index could serve: trained embeddings (TL systems, a tagger's trunk row), not the
    references (``mfcc_stats``, an untrained network) nor a tagger's tag estimates."""
    from trackrank.coldstart.settings import indexable

    names = []
    for name, settings in variants.items():
        if "reference" in settings or settings.get("epochs") == 0:
            continue
        names += [settings["trunk_row"]] if "trunk_row" in settings else [name] * indexable(settings["system"])
    return names


def choose_on_val(runs: list[dict], candidates: list[str]) -> str:
    """The candidate with the best val nDCG@20, averaged over its seeds and queries (as index.system: best)."""
    means = {
        name: np.mean([r["per_query"]["ndcg"].mean() for r in runs if r["variant"] == name]) for name in candidates
    }
    return max(means, key=means.get)


def load_config(path: Path) -> dict:
    """config.yaml with the schema's defaults, as the workflow sees it."""
    from snakemake.utils import validate

    config = yaml.safe_load(path.read_text())
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return config


def report(runs: list[dict], references: list[str], out: Path, split: str = CHOICE_SPLIT) -> None:
    """Print and write (``<split>_runs.csv``, ``<split>_summary.csv`` in ``out``) each run and each
    variant's :func:`comparison` to each of ``references``."""
    table = pd.DataFrame(
        {
            "split": split,
            "variant": run["variant"],
            "seed": run["seed"],
            "kept": f"{run['kept']}/{run['epochs']}",
            "map": 100 * run["per_query"]["map"].mean(),
            "ndcg": 100 * run["per_query"]["ndcg"].mean(),
        }
        for run in runs
    )
    table.to_csv(out / f"{split}_runs.csv", index=False)
    print(table.to_string(index=False, float_format="%.1f"))
    summary = comparison(runs, references, split)
    summary.to_csv(out / f"{split}_summary.csv", index=False)
    print(f"\non {split}: mean over seeds; difference in points, per query (seeds averaged, ± 95 % t)")
    print("and over queries and seeds (95 % bootstrap, with its verdict):")
    print(summary.to_string(index=False, float_format="%.1f"))


if __name__ == "__main__":
    main()
