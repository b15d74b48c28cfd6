"""Figures and tables that people read."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def plot_similarity_vs_rank(curve_csv: str | Path, output: str | Path) -> None:
    """The paper's Fig. 1 (top): mean S of the r-th ranked track against r, in percent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=120)
    plt.close(fig)
