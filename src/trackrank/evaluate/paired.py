"""Paired comparisons: each system minus a baseline, query by query, with a paired 95 % CI and a verdict.

Two baselines: the auto-tagger (the paper's comparison) and the untrained network each trained system started
from (did training on the rankings teach it anything).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from trackrank.evaluate.tables import METRIC_NAMES, write_csv, write_text
from trackrank.learn.settings import REFERENCES
from trackrank.rank.metrics import paired_difference, verdict

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
    write_csv(pd.concat(tables) if tables else pd.DataFrame(columns=_paired_columns(k)), csv)
    write_text("\n".join(sections), md)
    return tables
