"""Figures and tables that people read."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from trackrank.atomic import atomic_output
from trackrank.learn.settings import REFERENCES, system_spec
from trackrank.rank.metrics import paired_difference, verdict
from trackrank.rank.oracle import read_curve


def plot_similarity_vs_rank(curve_parts: list[str | Path], output: str | Path) -> None:
    """The paper's Fig. 1 (top): mean S of the r-th ranked track against r, in percent, from the
    curve sums of every part of the train split's rankings."""
    plt = _pyplot()
    curve = read_curve(curve_parts)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(curve["rank"], 100 * curve["mean_score"], color="tab:blue")
    ax.set_xlabel("rank r in the oracle ranking")
    ax.set_ylabel("mean S(t, r-th track) (%)")
    ax.set_title(f"Similarity vs rank, train split ({len(curve) + 1} tracks)")
    ax.set_xlim(1, max(len(curve), 2))
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, plt, output)


#: The paper's Table 2 (Prétet et al. 2020), measured on its private 14,246-track catalog.
PAPER_TABLE_2 = [
    ("AT Baseline", (4.50, 0.34), (12.57, 0.66), (15.62, 1.07), (11.30, 0.69)),
    ("TL Neighbors", (5.58, 0.41), (12.73, 0.67), (19.18, 1.23), (13.41, 0.80)),
    ("TL Random uniform", (5.39, 0.38), (15.01, 0.70), (17.86, 1.12), (13.50, 0.76)),
    ("TL Distance-based", (5.98, 0.40), (15.79, 0.73), (19.89, 1.19), (14.41, 0.78)),
    ("TL Autopool (Distance-based)", (7.99, 0.51), (17.74, 0.79), (24.68, 1.34), (17.95, 0.92)),
]
METRIC_NAMES = {"map": "MAP", "recall": "Recall", "rr": "RR", "ndcg": "nDCG"}


def results_table(summaries: list[dict]) -> pd.DataFrame:
    """One row per system: each metric's mean and 95 % CI half-width, in percent."""
    rows = []
    for summary in summaries:
        k = summary["k"]
        row = {"system": summary["system"], "n_queries": summary["n_queries"]}
        for metric in METRIC_NAMES:
            row[f"{metric}@{k}"] = summary[f"{metric}@{k}"]["mean"]
            row[f"{metric}@{k}_ci95"] = summary[f"{metric}@{k}"]["ci95"]
        rows.append(row)
    return pd.DataFrame(rows)


def markdown_table(table: pd.DataFrame, *, k: int, title: str) -> str:
    """Table 2 layout: mean ± CI per metric, then the kept epoch of trained systems ("—" for the others).

    Parameters
    ----------
    table : one row per system, the metric means and CI half-widths in percent (:func:`collect_metrics`).
    k : the cut-off of every metric (``evaluate.k``), named in the header (MAP@k ...).
    title : the table's Markdown heading.
    """
    header = "| Model | " + " | ".join(f"{name}@{k}" for name in METRIC_NAMES.values()) + " | kept epoch |"
    lines = [f"# {title}", "", header, "|---" * (len(METRIC_NAMES) + 2) + "|"]
    for _, row in table.iterrows():
        cells = [f"{row[f'{m}@{k}']:.2f} ± {row[f'{m}@{k}_ci95']:.2f}" for m in METRIC_NAMES]
        kept = row.get("kept_epoch")
        cells.append(kept if isinstance(kept, str) and kept else "—")
        lines.append(f"| {row['system']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def kept_epochs(histories: dict[str, pd.DataFrame]) -> dict[str, str]:
    """'kept of last' per trained system, e.g. '7 of 10' (epoch 0 is the untrained network)."""
    return {system: f"{kept_epoch(history)} of {int(history['epoch'].max())}" for system, history in histories.items()}


def paper_table_markdown() -> str:
    lines = [
        "# Table 2 of the paper (for reference)",
        "",
        "Measured by Prétet, Richard and Peeters (ICASSP 2020) on their **private** catalog of 14,246 "
        "tracks with their own oracle S: not comparable number for number with a run on another catalog.",
        "",
        "| Model | MAP@20 | Recall@20 | RR@20 | nDCG@20 |",
        "|---|---|---|---|---|",
    ]
    for name, *values in PAPER_TABLE_2:
        lines.append(f"| {name} | " + " | ".join(f"{m:.2f} ± {c:.2f}" for m, c in values) + " |")
    return "\n".join(lines) + "\n"


def _bar_colour(system: str) -> str:
    """Grey for chance, orange for the references that need no ranking training, blue for the systems."""
    return "tab:gray" if system == "random" else "tab:orange" if system in REFERENCES else "tab:blue"


def plot_metric_bars(table: pd.DataFrame, *, k: int, output: str | Path) -> None:
    """One panel per metric: a bar per system with its 95 % CI.

    Parameters
    ----------
    table : as :func:`markdown_table`'s.
    k : the metrics' cut-off, in the panel titles.
    output : the PNG written.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(METRIC_NAMES), figsize=(3.2 * len(METRIC_NAMES), 3.6), sharey=False)
    for ax, (metric, name) in zip(axes, METRIC_NAMES.items()):
        ax.bar(
            table["system"],
            table[f"{metric}@{k}"],
            yerr=table[f"{metric}@{k}_ci95"],
            capsize=3,
            color=[_bar_colour(s) for s in table["system"]],
        )
        ax.set_title(f"{name}@{k} (%)")
        ax.tick_params(axis="x", rotation=60, labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    _save(fig, plt, output)


def kept_epoch(history: pd.DataFrame) -> int:
    """The epoch whose weights ``model.pt`` holds.

    The ``kept`` column (True on that row) where the history has one: it is the training's
    own record, right even when a rule other than "best val MAP" chose. Else the first epoch
    with the highest ``val_map@k``, which is what early stopping keeps.
    """
    if "kept" in history.columns:
        kept = history["kept"].astype(str).str.strip().str.lower().isin(("true", "1"))
        if kept.any():
            return int(history.loc[kept, "epoch"].iloc[-1])
    metric = next(c for c in history.columns if c.startswith("val_map@"))
    return int(history.loc[history[metric].idxmax(), "epoch"])


def _is_tagger(system: str) -> bool:
    try:
        return system_spec(system)[0] == "fcn5_tagger"
    except ValueError:  # a name outside Table 2 (e.g. in tests): plotted with the embedding systems
        return False


def plot_training_curves(histories: dict[str, pd.DataFrame], output: str | Path) -> list[str]:
    """One panel per quantity, the kept epoch of each system starred on its curves.

    Why separate panels: the auto-tagger's binary cross-entropy and the triplet loss are on
    different scales and mean different things; one axis would flatten one of them. Panels:
    the auto-tagger's train/val BCE, the TL systems' train/val triplet loss, the validation
    MAP that early stopping watches (every system), and ``active_fraction`` where a history
    has that column.

    Returns
    -------
    The panel titles, left to right.
    """
    plt = _pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    metric = next((c for h in histories.values() for c in h.columns if c.startswith("val_map@")), "val_map@k")
    panels = [
        ("AT train/val BCE", "binary cross-entropy"),
        ("TL train/val triplet loss", "triplet loss"),
        (f"val MAP@{metric.split('@')[1]}", "MAP (fraction)"),
    ]
    if any("active_fraction" in h.columns for h in histories.values()):
        panels.append(("active fraction", "fraction of triplets with loss > 0"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    handles = []
    for i, (system, history) in enumerate(histories.items()):
        colour = colours[i % len(colours)]
        kept = history["epoch"] == kept_epoch(history)
        loss_ax = axes[0] if _is_tagger(system) else axes[1]
        curves = [(loss_ax, "train_loss", "-"), (loss_ax, "val_loss", "--"), (axes[2], metric, "-")]
        if "active_fraction" in history.columns:
            curves.append((axes[3], "active_fraction", "-"))
        for ax, column, style in curves:
            if column not in history.columns:
                continue
            ax.plot(history["epoch"], history[column], style, color=colour, marker="o", markersize=3)
            ax.plot(
                history.loc[kept, "epoch"],
                history.loc[kept, column],
                "*",
                color=colour,
                markersize=13,
                markeredgecolor="black",
            )
        handles.append(Line2D([], [], color=colour, label=system))
    handles += [
        Line2D([], [], color="gray", linestyle="-", label="train"),
        Line2D([], [], color="gray", linestyle="--", label="validation"),
        Line2D(
            [],
            [],
            color="gray",
            marker="*",
            linestyle="",
            markersize=11,
            markeredgecolor="black",
            label="kept epoch (model.pt)",
        ),
    ]
    for ax, (title, ylabel) in zip(axes, panels):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if not ax.lines:
            ax.text(0.5, 0.5, "no such system trained", ha="center", va="center", transform=ax.transAxes, color="gray")
    fig.tight_layout(rect=(0, 0, 0.86, 1))
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(0.86, 0.5), fontsize=8)
    _save(fig, plt, output)
    return [title for title, _ in panels]


#: The metrics compared query by query with the auto-tagger.
PAIRED_METRICS = ("map", "ndcg")
BASELINE = "at_baseline"
#: The second bar of the paired comparisons: a trained system that does not beat the network it
#: started from (trackrank.evaluate.references.untrained) has learnt nothing from the rankings.
UNTRAINED = "untrained"
NOT_TRAINED = ("random", *REFERENCES)


def paired_table(
    per_query: dict[str, pd.DataFrame], k: int, *, baseline: str = BASELINE, systems: list[str] | None = None
) -> pd.DataFrame:
    """Each system minus ``baseline``, query by query: mean difference, paired 95 % CI, verdict.

    Why paired: all systems answer the same test queries, and a query that is hard for one is
    hard for all. The interval of the per-query differences says whether a system beats the
    auto-tagger; two overlapping separate intervals (``table.md``) do not say it does not.

    Parameters
    ----------
    per_query : system -> its ``metrics/{system}.per_query.parquet`` (``query`` and one column
        per metric, fractions), ``baseline`` among them.

    Returns
    -------
    One row per other system (or per one of ``systems``), in the given order: ``baseline``,
    ``system``, ``n_queries`` and, per metric, ``{metric}@{k}_diff`` and ``_diff_ci95``
    (percentage points) and ``_verdict`` (better / worse / no difference).
    """
    if baseline not in per_query:
        raise ValueError(f"no per-query metrics of '{baseline}' to compare with")
    reference = per_query[baseline].set_index("query")
    rows = []
    for system, values in per_query.items():
        if system == baseline or (systems is not None and system not in systems):
            continue
        values = values.set_index("query")
        if set(values.index) != set(reference.index):
            raise ValueError(
                f"the per-query metrics of '{system}' and '{baseline}' cover different queries "
                f"({len(values)} and {len(reference)}): a paired comparison needs the same ones"
            )
        values = values.loc[reference.index]
        row = {"baseline": baseline, "system": system, "n_queries": len(values)}
        for metric in PAIRED_METRICS:
            mean, half = paired_difference(values[metric].to_numpy(), reference[metric].to_numpy())
            row[f"{metric}@{k}_diff"] = 100 * mean
            row[f"{metric}@{k}_diff_ci95"] = 100 * half
            row[f"{metric}@{k}_verdict"] = verdict(mean, half)
        rows.append(row)
    return pd.DataFrame(rows, columns=_paired_columns(k))


def _paired_columns(k: int) -> list[str]:
    return [
        "baseline",
        "system",
        "n_queries",
        *(f"{m}@{k}_{s}" for m in PAIRED_METRICS for s in ("diff", "diff_ci95", "verdict")),
    ]


def paired_markdown(table: pd.DataFrame, k: int, *, baseline: str = BASELINE, level: str = "#") -> str:
    """The paired differences as a Markdown table, with what the numbers mean above it."""
    n_queries = int(table["n_queries"].iloc[0]) if len(table) else 0
    names = [METRIC_NAMES[m] for m in PAIRED_METRICS]
    lines = [
        f"{level} Difference to {baseline}, paired over the same {n_queries} test queries",
        "",
        f"Mean per-query difference (system − {baseline}) in percentage points ± the half-width of its "
        "paired 95 % Student-t interval; *better* / *worse* where that interval excludes 0, else "
        "*no difference*.",
        "",
        "| Model | " + " | ".join(f"Δ{name}@{k} | {name}@{k} vs {baseline}" for name in names) + " |",
        "|---" * (1 + 2 * len(PAIRED_METRICS)) + "|",
    ]
    for _, row in table.iterrows():
        cells = [
            f"{row[f'{m}@{k}_diff']:+.2f} ± {row[f'{m}@{k}_diff_ci95']:.2f} | {row[f'{m}@{k}_verdict']}"
            for m in PAIRED_METRICS
        ]
        lines.append(f"| {row['system']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_paired(
    per_query_files: dict[str, str | Path], k: int, *, csv: str | Path, md: str | Path
) -> list[pd.DataFrame]:
    """The paired differences of ``per_query_files`` (system -> its per-query metrics) as ``csv`` and
    ``md`` (Markdown): every system against ``at_baseline`` (the
    paper's comparison), and every trained system against ``untrained`` (did training teach it anything);
    a baseline without metrics gets a line saying so instead.

    Returns the tables written (one per baseline present), their rows in ``csv`` one after the other.
    """
    per_query = {system: pd.read_parquet(path) for system, path in per_query_files.items()}
    trained = [system for system in per_query if system not in NOT_TRAINED]
    tables, sections = [], []
    for baseline, systems in ((BASELINE, None), (UNTRAINED, trained)):
        if baseline not in per_query:
            sections.append(f"# Difference to {baseline}\n\n{baseline} was not run: no paired comparison.\n")
            continue
        tables.append(paired_table(per_query, k, baseline=baseline, systems=systems))
        sections.append(paired_markdown(tables[-1], k, baseline=baseline))
    _write_csv(pd.concat(tables) if tables else pd.DataFrame(columns=_paired_columns(k)), csv)
    _write_text("\n".join(sections), md)
    return tables


def _write_csv(table: pd.DataFrame, output: Path) -> None:
    with atomic_output(output) as tmp:
        table.to_csv(tmp, index=False)


def _write_text(text: str, output: Path) -> None:
    with atomic_output(output) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, plt, output: str | Path) -> None:
    try:
        with atomic_output(output) as tmp:
            fig.savefig(tmp, dpi=120)
    finally:
        plt.close(fig)


def write_report(
    metric_files: list[str | Path],
    history_files: dict[str, str | Path],
    *,
    table_csv: str | Path,
    table_md: str | Path,
    paper_md: str | Path,
    bars: str | Path,
    curves: str | Path,
    per_query_files: dict[str, str | Path] | None = None,
    paired_csv: str | Path | None = None,
    paired_md: str | Path | None = None,
) -> pd.DataFrame:
    """The results table (``table_csv``, ``table_md``), the paper's table (``paper_md``), the metric bars
    (``bars``) and the training curves (``curves``, PNG) of ``history_files`` (trained system -> its
    history.csv); with ``per_query_files`` (system -> its per-query metrics), also the paired
    differences (``paired_csv``, ``paired_md``) and their section in ``table_md``."""
    if per_query_files is not None and (paired_csv is None or paired_md is None):
        raise ValueError("per_query_files needs paired_csv and paired_md to write the paired differences to")
    for output in (table_csv, table_md, paper_md):
        Path(output).parent.mkdir(parents=True, exist_ok=True)
    summaries = [json.loads(Path(f).read_text()) for f in metric_files]
    k = summaries[0]["k"]
    table = results_table(summaries)
    histories = {system: pd.read_csv(path) for system, path in history_files.items()}
    kept = kept_epochs(histories)
    table["kept_epoch"] = [kept.get(system, "") for system in table["system"]]
    _write_csv(table, table_csv)
    n_queries = summaries[0]["n_queries"]
    markdown = markdown_table(
        table, k=k, title=f"Retrieval on the test split ({n_queries} queries), mean ± 95 % CI, in %"
    )
    if per_query_files is not None:
        for paired in write_paired(per_query_files, k, csv=paired_csv, md=paired_md):
            if len(paired):
                markdown += "\n" + paired_markdown(paired, k, baseline=paired["baseline"].iloc[0], level="##")
    _write_text(markdown, table_md)
    _write_text(paper_table_markdown(), paper_md)
    plot_metric_bars(table, k=k, output=bars)
    plot_training_curves(histories, curves)
    return table
