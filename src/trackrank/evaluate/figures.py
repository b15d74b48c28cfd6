"""The report's figures: similarity against rank (the paper's Fig. 1, top), the metric bars, the training
curves. Matplotlib is imported only when a figure is drawn, with the Agg backend (no display on a cluster)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from trackrank.atomic import atomic_output
from trackrank.evaluate.tables import METRIC_NAMES, kept_epoch
from trackrank.learn.settings import REFERENCES, system_spec
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


def _bar_colour(system: str) -> str:
    """Grey for chance, orange for the references that need no ranking training, blue for the systems."""
    return "tab:gray" if system == "random" else "tab:orange" if system in REFERENCES else "tab:blue"


def plot_metric_bars(table: pd.DataFrame, *, k: int, output: str | Path) -> None:
    """One panel per metric: a bar per system with its 95 % CI.

    Parameters
    ----------
    table : as :func:`~trackrank.evaluate.tables.markdown_table`'s.
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
    systems = {system: colours[i % len(colours)] for i, system in enumerate(histories)}
    for system, history in histories.items():
        _plot_history(axes, system, history, metric, systems[system])
    _label_panels(axes, panels)
    fig.tight_layout(rect=(0, 0, 0.86, 1))
    fig.legend(handles=_legend_handles(systems), loc="center left", bbox_to_anchor=(0.86, 0.5), fontsize=8)
    _save(fig, plt, output)
    return [title for title, _ in panels]


def _plot_history(axes, system: str, history: pd.DataFrame, metric: str, colour: str) -> None:
    """One system's curves on the training curves' panels (its loss on the tagger's or the TL systems'),
    its kept epoch starred."""
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


def _label_panels(axes, panels: list[tuple[str, str]]) -> None:
    """Each panel's title, axis labels (whole epochs) and grid; a panel without curves says so."""
    from matplotlib.ticker import MaxNLocator

    for ax, (title, ylabel) in zip(axes, panels):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if not ax.lines:
            ax.text(0.5, 0.5, "no such system trained", ha="center", va="center", transform=ax.transAxes, color="gray")


def _legend_handles(colours: dict[str, str]) -> list:
    """The training curves' legend: each system's colour, then what the line styles and the star mean."""
    from matplotlib.lines import Line2D

    return [Line2D([], [], color=colour, label=system) for system, colour in colours.items()] + [
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
