"""Figures and tables that people read."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd


def plot_similarity_vs_rank(curve_csv: str | Path, output: str | Path) -> None:
    """The paper's Fig. 1 (top): mean S of the r-th ranked track against r, in percent."""
    plt = _pyplot()
    curve = pd.read_csv(curve_csv)
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


def markdown_table(table: pd.DataFrame, k: int, title: str) -> str:
    """Table 2 layout: mean ± CI per metric."""
    header = "| Model | " + " | ".join(f"{name}@{k}" for name in METRIC_NAMES.values()) + " |"
    lines = [f"# {title}", "", header, "|---" * (len(METRIC_NAMES) + 1) + "|"]
    for _, row in table.iterrows():
        cells = [f"{row[f'{m}@{k}']:.2f} ± {row[f'{m}@{k}_ci95']:.2f}" for m in METRIC_NAMES]
        lines.append(f"| {row['system']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def paper_table_markdown() -> str:
    lines = ["# Table 2 of the paper (for reference)", "",
             "Measured by Prétet, Richard and Peeters (ICASSP 2020) on their **private** catalog of 14,246 "
             "tracks with their own oracle S: not comparable number for number with a run on another catalog.",
             "", "| Model | MAP@20 | Recall@20 | RR@20 | nDCG@20 |", "|---|---|---|---|---|"]
    for name, *values in PAPER_TABLE_2:
        lines.append(f"| {name} | " + " | ".join(f"{m:.2f} ± {c:.2f}" for m, c in values) + " |")
    return "\n".join(lines) + "\n"


def plot_metric_bars(table: pd.DataFrame, k: int, output: str | Path) -> None:
    """One panel per metric: a bar per system with its 95 % CI."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(METRIC_NAMES), figsize=(3.2 * len(METRIC_NAMES), 3.6), sharey=False)
    for ax, (metric, name) in zip(axes, METRIC_NAMES.items()):
        ax.bar(table["system"], table[f"{metric}@{k}"], yerr=table[f"{metric}@{k}_ci95"], capsize=3,
               color=["tab:gray" if s == "random" else "tab:blue" for s in table["system"]])
        ax.set_title(f"{name}@{k} (%)")
        ax.tick_params(axis="x", rotation=60, labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    _save(fig, plt, output)


def plot_training_curves(histories: dict[str, pd.DataFrame], output: str | Path) -> None:
    """Train loss, validation loss and validation MAP per epoch, one line per system."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for system, history in histories.items():
        metric = next(c for c in history.columns if c.startswith("val_map@"))
        for ax, column in zip(axes, ("train_loss", "val_loss", metric)):
            ax.plot(history["epoch"], history[column], marker="o", markersize=3, label=system)
            ax.set_title(column)
            ax.set_xlabel("epoch")
    axes[0].legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, plt, output)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, plt, output: str | Path) -> None:
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=120)
    plt.close(fig)


def write_report(metric_files: list[str | Path], history_files: list[str | Path], out_dir: str | Path) -> pd.DataFrame:
    """``table.md``, ``table.csv``, ``table_paper.md``, ``metrics.png`` and ``training_curves.png``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summaries = [json.loads(Path(f).read_text()) for f in metric_files]
    k = summaries[0]["k"]
    table = results_table(summaries)
    table.to_csv(out_dir / "table.csv", index=False)
    n_queries = summaries[0]["n_queries"]
    (out_dir / "table.md").write_text(markdown_table(
        table, k, f"Retrieval on the test split ({n_queries} queries), mean ± 95 % CI, in %"))
    (out_dir / "table_paper.md").write_text(paper_table_markdown())
    plot_metric_bars(table, k, out_dir / "metrics.png")
    histories = {Path(f).parent.name: pd.read_csv(f) for f in history_files}
    plot_training_curves(histories, out_dir / "training_curves.png")
    return table
