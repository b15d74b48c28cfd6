"""The figures a reader sees, written from committed result files: never typed by hand.

Each block of README.md or docs/*.md between ``<!-- headline:NAME -->`` and ``<!-- /headline:NAME -->`` is
rendered from ``bench/results/headline/``:

- ``NAME`` a folder there (e.g. ``demo``): a run's report as ``record`` copied it (``table.csv``,
  ``served.json``): one row per system, mean MAP@20 and nDCG@20 with their 95 % half-widths, the kept epoch,
  and the system the index serves, chosen on val;
- ``times``: ``times.csv``, every measured time with its machine and date (docs/benchmarks.md);
- ``times-short``: the rows of ``times.csv`` marked ``readme`` (what and how long; the README's);
- ``confirm_<catalog>``: a confirmation run of ``bench/learning.py --confirm`` copied to
  ``bench/results/confirm_<catalog>/`` (``<variant>/seed<N>/metrics/{val,test}.per_query.parquet``): each
  variant's test nDCG@20 over its seeds and its difference to ``untrained`` and to ``mfcc_stats``, per query
  and over (query x seed), and the servable variant chosen on val;
- ``val_<folder>``: the same comparison on the val split of ``bench/results/<folder>/`` (a choice's evidence);
- either with ``-vs-<reference>-<reference>...``: against those variants instead (e.g.
  ``confirm_scores1001-vs-at_trunk``);
- ``defaults_<folder>``: each default's confirmed gain over the value it replaced (:data:`REPLACED_VALUES`);
  ``defaults_<folder>-only-<option>`` that option's rows alone (e.g. ``-only-min_epochs``);
- ``curve_<folder>``: a learning curve's ``curve.csv`` (``bench/learning_curve.py``): test MAP@20 / nDCG@20 of
  each system at each train-split size;
- ``changed_<folder>-from-<earlier>``: each variant of ``bench/results/<folder>/`` on the test split against
  the same variant in ``bench/results/<earlier>/`` (the same catalog trained with other defaults).

    python bench/headline.py record results --name demo   # copy a finished run's report here
    python bench/headline.py                              # rewrite every block from the files
    python bench/headline.py --check                      # exit 1, naming each block that differs
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
HEADLINE = REPO / "bench" / "results" / "headline"
BLOCK = re.compile(r"(<!-- headline:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /headline:(?P=name) -->)", re.DOTALL)


def bench_learning():
    """``bench/learning.py``, beside this script: the run layout and the paired comparison its tables share
    (imported when a table needs it)."""
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    import learning

    return learning


def documents(repo: Path = REPO) -> list[Path]:
    """The pages that may quote a headline figure."""
    return [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]


def run_table(folder: Path) -> str:
    """A recorded run's table: system, MAP@20 and nDCG@20 (mean ± 95 % half-width), kept epoch; then
    the served system with its val and test nDCG."""
    table = pd.read_csv(folder / "table.csv")
    lines = ["| system | MAP@20 (%) | nDCG@20 (%) | kept epoch |", "|---|---|---|---|"]
    for values in table.to_dict("records"):
        kept = "—" if pd.isna(values["kept_epoch"]) else str(values["kept_epoch"]).removesuffix(".0")
        cells = [f"{values[m]:.1f} ± {values[m + '_ci95']:.1f}" for m in ("map@20", "ndcg@20")]
        lines.append(f"| {values['system']} | {cells[0]} | {cells[1]} | {kept} |")
    served = json.loads((folder / "served.json").read_text())
    metric = served["metric"]
    lines += [
        "",
        f"Served by `trackrank recommend` and `serve`: **{served['system']}**, {served['chosen_by']} "
        f"(val {metric} {served['val']['mean']:.1f}, test {served['test']['mean']:.1f}).",
    ]
    return "\n".join(lines) + "\n"


def times_table(short: bool) -> str:
    """``times.csv`` as a table: every row with machine and date, or (``short``) the README's rows."""
    times = pd.read_csv(HEADLINE / "times.csv", keep_default_na=False)
    if short:
        rows = times[times["readme"] == "yes"]
        lines = ["| command | time |", "|---|---|"]
        lines += [f"| {r.what} | {r.wall} |" for r in rows.itertuples(index=False)]
    else:
        lines = ["| what | wall time | machine | measured | conditions |", "|---|---|---|---|---|"]
        lines += [
            f"| {r.what} | {r.wall} | {r.machine} | {r.date} | {r.conditions} |" for r in times.itertuples(index=False)
        ]
    return "\n".join(lines) + "\n"


def servable_name(variant: str) -> bool:
    """Whether a confirmation variant, named as its system, is an embedding an index could serve: a trained
    TL system or the tagger's trunk, not a reference row (``untrained``, ``mfcc_stats``) nor the tagger."""
    from trackrank.coldstart.settings import indexable
    from trackrank.errors import ConfigError
    from trackrank.learn.settings import TRUNK_SYSTEM

    try:
        return variant == TRUNK_SYSTEM or indexable(variant)
    except ConfigError:  # not a system's name: a reference row
        return False


def comparison_table(folder: Path, split: str = "test", references: tuple[str, ...] = ("untrained", "mfcc_stats")):
    """A run's comparison on ``split`` to each of ``references`` (nDCG@20, points), over the seeds every
    variant has finished; on the test split, also the servable variant with the best val nDCG@20 over them."""
    learning = bench_learning()

    finished = {}
    for result in sorted(folder.glob("*/seed*/result.json")):
        if learning.metrics_file(result.parent, split).exists():
            finished.setdefault(result.parent.parent.name, {})[result.parent.name] = result.parent
    if not finished:
        return "No run has finished yet.\n"
    seeds = sorted(set.intersection(*(set(s) for s in finished.values())))
    runs = [
        {"variant": v, "seed": int(seed[4:]), "per_query": pd.read_parquet(learning.metrics_file(f[seed], split))}
        for v, f in finished.items()
        for seed in seeds
    ]
    table = learning.comparison(runs, list(references), split)
    n_queries = len(runs[0]["per_query"])
    lines = [
        f"{split.capitalize()} split, {n_queries} queries, training seeds {', '.join(s[4:] for s in seeds)}; "
        "nDCG@20 and its difference in points: per query (seeds averaged, ± 95 % t) and over queries and seeds "
        "(95 % bootstrap).",
        "",
        "| variant | nDCG@20 (%) | " + " | ".join(f"− {r} | over seeds" for r in references) + " |",
        "|---|---|" + "---|---|" * len(references),
    ]
    for variant, rows in table.groupby("variant", sort=False):
        cells = {row.against: row for row in rows.itertuples(index=False)}
        differences = " | ".join(f"{cells[r].d_ndcg} | {cells[r].d_ndcg_seeds}" for r in references)
        lines.append(f"| {variant} | {cells[references[0]].ndcg:.1f} | {differences} |")
    if split != "test":
        return "\n".join(lines) + "\n"
    servable = [v for v in finished if servable_name(v)]
    val = [
        {"variant": v, "per_query": pd.read_parquet(learning.metrics_file(finished[v][seed], "val"))}
        for v in servable
        for seed in seeds
        if learning.metrics_file(finished[v][seed], "val").exists()
    ]
    if len(servable) > 1 and len(val) == len(servable) * len(seeds):  # a choice among several  # a choice among several
        lines += ["", f"Served, chosen on val (best val nDCG@20 of {', '.join(servable)}): "
                  f"**{learning.choose_on_val(val, servable)}**."]  # fmt: skip
    return "\n".join(lines) + "\n"


#: The option column of the rows of confirm_pruned.json: the defaults without a confirmed gain alone, together.
PRUNED = "train.smoothing, .budget_tracks, .augment, .online 42 x 1"
#: The systems confirm_pruned.json trained: the default set of that time.
PRUNED_SYSTEMS = ("at_trunk", "at_baseline", "tl_distance", "tl_online", "tl_autopool_online")

#: Each default a confirmation checks, as a pair of variants of ``bench/variants/confirm_replaced_values.json``
#: (``confirm_defaults.json``, ``confirm_reverted_*.json``, ``confirm_rest.json``, ``confirm_pruned.json``,
#: ``confirm_np.json``, ``confirm_offline_counts.json``, ``confirm_steps_x3.json``): the option, the variant at
#: its default, the variant at the value it replaced (or, for the step budget, a value toward the paper's).
REPLACED_VALUES = (
    ("train.margin", "tl_distance", "tl_distance_margin_0.5"),
    ("train.offline_negatives", "tl_distance", "tl_distance_table_negatives"),
    ("train.tag_targets", "at_trunk", "at_trunk_binary"),
    ("train.tag_targets", "at_baseline", "at_baseline_binary"),
    ("train.min_epochs", "at_trunk", "at_trunk_min_epochs_1"),
    ("train.min_epochs", "at_baseline", "at_baseline_min_epochs_1"),
    ("train.min_epochs", "tl_distance", "tl_distance_min_epochs_1"),
    ("train.min_epochs", "tl_distance_batch", "tl_distance_batch_min_epochs_1"),
    ("train.min_epochs", "tl_online", "tl_online_min_epochs_1"),
    ("train.min_epochs", "tl_autopool_online", "tl_autopool_online_min_epochs_1"),
    ("train.online.lr", "tl_online", "tl_online_lr_1e-3"),
    ("train.online.mining", "tl_online", "tl_online_batch_all"),
    ("train.online.mining", "tl_autopool_online", "tl_autopool_online_batch_all"),
    ("train.lr_tagger", "at_trunk", "at_trunk_lr_1e-4"),
    ("train.lr_tagger", "at_baseline", "at_baseline_lr_1e-4"),
    ("train.offline_pairs", "tl_distance", "tl_distance_offline_pairs_1"),
    ("train.smoothing", "tl_distance", "tl_distance_smoothing_1"),
    ("train.augment", "at_trunk", "at_trunk_no_augment"),
    ("train.augment", "at_baseline", "at_baseline_no_augment"),
    ("train.online.tracks", "tl_online", "tl_online_21x2"),
    ("train.budget_tracks", "tl_autopool_online", "tl_autopool_online_budget_tracks_0"),
    ("train.lr_triplet", "tl_distance", "tl_distance_lr_1e-6"),
    ("mining.n_positives", "tl_online", "tl_online_np_15"),
    ("mining.n_positives, .n_negatives", "tl_distance", "tl_distance_np15_nn250"),
    ("train.lr_from_at", "tl_online_from_at", "tl_online_from_at_lr_3e-4"),
    ("train.lr_from_ssl", "tl_distance_from_ssl", "tl_distance_from_ssl_lr_1e-3"),
    # the step budget against three times its steps per epoch, toward the paper's (confirm_steps_x3.json)
    ("train.batches_per_epoch", "tl_distance", "tl_distance_steps_x3"),
    ("train.batches_per_epoch", "at_baseline", "at_baseline_steps_x3"),
    ("train.batches_per_epoch", "at_trunk", "at_trunk_steps_x3"),
    # the online systems in train.systems against the paper's they stand in for (confirm_paper_systems.json)
    ("train.systems", "tl_autopool_online", "tl_autopool_distance"),
    ("train.systems", "tl_online", "tl_neighbors"),
    ("train.systems", "tl_online", "tl_uniform"),
    # the four above without a confirmed gain, at the values they replaced together (confirm_pruned.json)
    *((PRUNED, system, f"{system}_pruned") for system in PRUNED_SYSTEMS),
)


def finished_seeds(folder: Path, variant: str, split: str) -> dict[int, Path]:
    """The seeds of ``variant`` in ``folder`` evaluated on ``split``: seed -> metrics file."""
    learning = bench_learning()

    runs = {
        int(r.parent.name[4:]): learning.metrics_file(r.parent, split)
        for r in folder.glob(f"{variant}/seed*/result.json")
    }
    return {seed: path for seed, path in sorted(runs.items()) if path.exists()}


def paired_on_test(ours: dict[int, Path], theirs: dict[int, Path]):
    """Two variants' test metrics files (seed -> file, :func:`finished_seeds`) compared over the seeds both
    have finished: (the first's row, the second's row, those seeds) of ``bench/learning.py``'s comparison
    against the second, or None where they share no seed."""
    seeds = sorted(set(ours) & set(theirs))
    if not seeds:
        return None
    runs = [
        {"variant": variant, "seed": seed, "per_query": pd.read_parquet(files[seed])}
        for variant, files in (("ours", ours), ("theirs", theirs))
        for seed in seeds
    ]
    row, their_row = bench_learning().comparison(runs, ["theirs"], "test").itertuples(index=False)
    return row, their_row, seeds


def defaults_table(folder: Path, option: str = "") -> str:
    """Each default's confirmed gain (``option``: that option's alone; options with no run in ``folder`` left
    out): the test nDCG@20 of its variant less that of the value it replaced, over the training seeds both
    have finished (per query, seeds averaged, ± 95 % t; and over queries and seeds)."""
    lines = [
        "| option | default's variant | against the value it replaced | gain, nDCG@20 points | over seeds | seeds |",
        "|---|---|---|---|---|---|",
    ]
    checked = {name for name, _, replaced in REPLACED_VALUES if (folder / replaced).is_dir()}
    for name, default, replaced in REPLACED_VALUES:
        if (option and name != f"train.{option}") or name not in checked:  # options this run did not check
            continue
        paired = paired_on_test(finished_seeds(folder, default, "test"), finished_seeds(folder, replaced, "test"))
        if paired is None:
            lines.append(f"| `{name}` | {default} | {replaced} | not run yet | | |")
            continue
        row, _, seeds = paired
        seeds_read = ", ".join(map(str, seeds))
        lines.append(f"| `{name}` | {default} | {replaced} | {row.d_ndcg} | {row.d_ndcg_seeds} | {seeds_read} |")
    return "\n".join(lines) + "\n"


def changed_table(folder: Path, earlier: Path) -> str:
    """Each variant of ``folder`` that ``earlier`` holds too, on the test split: its nDCG@20 less the earlier
    one's, over the training seeds both have finished (per query, seeds averaged, ± 95 % t; and over queries and
    seeds). The two folders must be runs of the same catalog: their queries are paired."""
    lines = [
        "| variant | nDCG@20 (%) | earlier nDCG@20 (%) | difference, points | over seeds | seeds |",
        "|---|---|---|---|---|---|",
    ]
    for variant in sorted(p.name for p in folder.iterdir() if p.is_dir()):
        paired = paired_on_test(finished_seeds(folder, variant, "test"), finished_seeds(earlier, variant, "test"))
        if paired is None:
            continue
        row, earlier_row, seeds = paired
        lines.append(
            f"| {variant} | {row.ndcg:.1f} | {earlier_row.ndcg:.1f} | {row.d_ndcg} | {row.d_ndcg_seeds} | "
            f"{', '.join(map(str, seeds))} |"
        )
    return "\n".join(lines) + "\n"


def curve_table(folder: Path) -> str:
    """A learning curve (``curve.csv``): one row per train-split size, MAP@20 / nDCG@20 (%) of each system
    ("—" at a size where a system was not run)."""
    curve = pd.read_csv(folder / "curve.csv")
    systems = list(dict.fromkeys(curve["system"]))
    lines = ["| train tracks | " + " | ".join(f"`{s}`" for s in systems) + " |", "|---" * (len(systems) + 1) + "|"]
    for size, rows in curve.groupby("train_tracks", sort=True):
        cells = rows.set_index("system").reindex(systems)
        values = ("—" if pd.isna(r.map) else f"{r.map:.1f} / {r.ndcg:.1f}" for r in cells.itertuples())
        lines.append(f"| {size:,} | " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"


def render(name: str) -> str:
    """The text a block named ``name`` holds."""
    if name in ("times", "times-short"):
        return times_table(short=name == "times-short")
    if name.startswith("curve_"):
        return curve_table(REPO / "bench" / "results" / name.removeprefix("curve_"))
    if name.startswith("changed_"):
        folder, _, earlier = name.removeprefix("changed_").partition("-from-")
        return changed_table(REPO / "bench" / "results" / folder, REPO / "bench" / "results" / earlier)
    if name.startswith("defaults_"):
        folder, _, option = name.removeprefix("defaults_").partition("-only-")
        return defaults_table(REPO / "bench" / "results" / folder, option)
    if name.startswith(("confirm_", "val_")):
        folder, _, against = name.partition("-vs-")
        references = tuple(against.split("-")) if against else ("untrained", "mfcc_stats")
        if folder.startswith("val_"):
            return comparison_table(REPO / "bench" / "results" / folder.removeprefix("val_"), "val", references)
        return comparison_table(REPO / "bench" / "results" / folder, "test", references)
    folder = HEADLINE / name
    if not (folder / "table.csv").is_file():
        raise SystemExit(f"headline block '{name}': no {folder / 'table.csv'} (record a run with `record`)")
    return run_table(folder)


def rewritten(text: str) -> str:
    """``text`` with every headline block rendered anew."""
    return BLOCK.sub(lambda m: m.group(1) + render(m.group("name")) + m.group(4), text)


def stale_blocks(pages: list[Path]) -> list[str]:
    """``page: block`` for each block whose text differs from its files."""
    stale = []
    for page in pages:
        for match in BLOCK.finditer(page.read_text()):
            if match.group("body") != render(match.group("name")):
                stale.append(f"{page.name}: {match.group('name')}")
    return stale


def record(results: Path, name: str) -> None:
    """Copy a finished run's report table and served system into ``bench/results/headline/<name>/``."""
    folder = HEADLINE / name
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(results / "report" / "table.csv", folder / "table.csv")
    shutil.copy2(results / "report" / "paired.csv", folder / "paired.csv")
    shutil.copy2(results / "index" / "default.json", folder / "served.json")
    print(f"recorded {results} as {folder}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", nargs="*", help="`record RESULTS`: copy a finished run's report")
    parser.add_argument("--name", default="demo", help="the recorded run's folder (with record)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a block differs")
    args = parser.parse_args()
    if args.action:
        if args.action[0] != "record" or len(args.action) != 2:
            parser.error("the only action is `record RESULTS`")
        record(Path(args.action[1]), args.name)
        return
    if args.check:
        stale = stale_blocks(documents())
        for line in stale:
            print(f"stale: {line} (run python bench/headline.py)", file=sys.stderr)
        raise SystemExit(1 if stale else 0)
    for page in documents():
        text = page.read_text()
        if (new := rewritten(text)) != text:
            page.write_text(new)
            print(f"rewrote {page.relative_to(REPO)}")


if __name__ == "__main__":
    main()
