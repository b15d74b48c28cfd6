"""The results tables in Markdown and CSV: the run's Table 2 (each system's metrics with their 95 % CIs and
the epoch its model.pt kept) and the paper's, for reference."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from trackrank.atomic import atomic_output

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
    table : one row per system, the metric means and CI half-widths in percent (:func:`results_table`).
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


def kept_epochs(histories: dict[str, pd.DataFrame]) -> dict[str, str]:
    """'kept of last' per trained system, e.g. '7 of 10' (epoch 0 is the untrained network)."""
    return {system: f"{kept_epoch(history)} of {int(history['epoch'].max())}" for system, history in histories.items()}


def write_csv(table: pd.DataFrame, output: str | Path) -> None:
    """``table`` as CSV to ``output``, atomically."""
    with atomic_output(output) as tmp:
        table.to_csv(tmp, index=False)


def write_text(text: str, output: str | Path) -> None:
    """``text`` (UTF-8) to ``output``, atomically."""
    with atomic_output(output) as tmp:
        tmp.write_text(text, encoding="utf-8")
