"""The report of a run: its results tables, the paper's table, the paired differences and the figures, written
from the evaluated systems' metrics and training histories (:func:`write_report`)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from trackrank.evaluate.figures import plot_metric_bars, plot_training_curves
from trackrank.evaluate.paired import paired_markdown, write_paired
from trackrank.evaluate.tables import (
    kept_epochs,
    markdown_table,
    paper_table_markdown,
    results_table,
    write_csv,
    write_text,
)


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
    write_csv(table, table_csv)
    n_queries = summaries[0]["n_queries"]
    markdown = markdown_table(
        table, k=k, title=f"Retrieval on the test split ({n_queries} queries), mean ± 95 % CI, in %"
    )
    if per_query_files is not None:
        for paired in write_paired(per_query_files, k, csv=paired_csv, md=paired_md):
            if len(paired):
                markdown += "\n" + paired_markdown(paired, k, baseline=paired["baseline"].iloc[0], level="##")
    write_text(markdown, table_md)
    write_text(paper_table_markdown(), paper_md)
    plot_metric_bars(table, k=k, output=bars)
    plot_training_curves(histories, curves)
    return table
