"""The report: paired differences to the auto-tagger, and training curves that mark the kept epoch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from builders import per_query, report_outputs, write_run
from trackrank.evaluate.figures import plot_training_curves
from trackrank.evaluate.paired import paired_table, write_paired
from trackrank.evaluate.report import write_report
from trackrank.evaluate.tables import kept_epoch


def test_paired_md_gives_the_sign_and_verdict_of_each_system_against_the_auto_tagger(tmp_path):
    files = write_run(
        tmp_path / "metrics",
        {
            "random": per_query(-0.1, seed=1),
            "at_baseline": per_query(0.0),
            "mfcc_stats": per_query(0.0, seed=2),
            "tl_distance": per_query(0.1, seed=3),
        },
    )
    write_report(
        [tmp_path / "metrics" / f.name.replace(".per_query.parquet", ".json") for f in files.values()],
        {},
        **report_outputs(tmp_path / "report"),
        per_query_files=files,
        paired_csv=tmp_path / "report" / "paired.csv",
        paired_md=tmp_path / "report" / "paired.md",
    )
    paired = pd.read_csv(tmp_path / "report" / "paired.csv")
    assert set(paired["baseline"]) == {"at_baseline"}  # no untrained row in this run
    paired = paired.set_index("system")
    assert paired.index.tolist() == ["random", "mfcc_stats", "tl_distance"]
    assert paired.loc["tl_distance", "map@20_diff"] == pytest.approx(10.0, abs=1.5)
    assert paired.loc["random", "ndcg@20_diff"] == pytest.approx(-10.0, abs=1.5)
    assert paired["map@20_verdict"].tolist() == ["worse", "no difference", "better"]
    markdown = (tmp_path / "report" / "paired.md").read_text()
    assert "| tl_distance | +" in markdown and "| random | -" in markdown
    assert "better" in markdown and "worse" in markdown
    assert "## Difference to at_baseline" in (tmp_path / "report" / "table.md").read_text()


def test_paired_differences_match_queries_by_name_not_by_row_order():
    base, other = per_query(0.0), per_query(0.05, seed=4)
    in_order = paired_table({"at_baseline": base, "tl": other}, k=20)
    shuffled = paired_table({"at_baseline": base, "tl": other.sample(frac=1, random_state=0)}, k=20)
    pd.testing.assert_frame_equal(in_order, shuffled)
    assert in_order.loc[0, "map@20_diff"] == pytest.approx(100 * (other["map"] - base["map"]).mean())


def test_paired_differences_refuse_systems_evaluated_on_other_queries():
    with pytest.raises(ValueError, match="'tl'.*'at_baseline'.*different queries"):
        paired_table({"at_baseline": per_query(0.0), "tl": per_query(0.0).iloc[:-1]}, k=20)


def test_without_the_auto_tagger_paired_md_says_there_is_no_comparison(tmp_path):
    files = write_run(tmp_path / "metrics", {"random": per_query(-0.1), "tl_distance": per_query(0.0)})
    report = tmp_path / "report"
    assert write_paired(files, 20, csv=report / "paired.csv", md=report / "paired.md") == []
    assert "at_baseline was not run" in (tmp_path / "report" / "paired.md").read_text()
    assert pd.read_csv(tmp_path / "report" / "paired.csv").empty


def test_trained_systems_are_compared_with_their_untrained_network_and_the_references_are_not(tmp_path):
    files = write_run(
        tmp_path / "metrics",
        {
            "random": per_query(-0.1, seed=1),
            "untrained": per_query(0.0),
            "mfcc_stats": per_query(0.0, seed=2),
            "at_baseline": per_query(0.02, seed=5),
            "tl_online": per_query(0.1, seed=3),
            "tl_distance": per_query(-0.05, seed=4),
        },
    )
    report = tmp_path / "report"
    write_paired(files, 20, csv=report / "paired.csv", md=report / "paired.md")
    paired = pd.read_csv(report / "paired.csv")
    against_untrained = paired[paired["baseline"] == "untrained"].set_index("system")
    assert against_untrained.index.tolist() == ["at_baseline", "tl_online", "tl_distance"]
    assert against_untrained.loc["tl_online", "map@20_verdict"] == "better"
    assert against_untrained.loc["tl_distance", "map@20_verdict"] == "worse"
    assert paired.loc[paired["baseline"] == "at_baseline", "system"].tolist() == [
        "random",
        "untrained",
        "mfcc_stats",
        "tl_online",
        "tl_distance",
    ]
    markdown = (report / "paired.md").read_text()
    assert "# Difference to at_baseline" in markdown and "# Difference to untrained" in markdown


def test_the_kept_epoch_is_the_kept_row_else_the_best_val_map():
    history = pd.DataFrame({"epoch": [1, 2, 3, 4], "val_map@20": [0.1, 0.4, 0.4, 0.2]})
    assert kept_epoch(history) == 2
    assert kept_epoch(history.assign(kept=[False, False, False, True])) == 4
    assert kept_epoch(history.assign(kept=["False", "True", "False", "False"])) == 2


def test_training_curves_put_bce_and_triplet_loss_on_separate_labelled_panels(tmp_path):
    history = pd.DataFrame(
        {"epoch": [1, 2], "train_loss": [0.7, 0.6], "val_loss": [0.7, 0.65], "val_map@20": [0.3, 0.35]}
    )
    titles = plot_training_curves(
        {"at_baseline": history, "tl_distance": history / [1, 10, 10, 1]}, tmp_path / "curves.png"
    )
    assert titles == ["AT train/val BCE", "TL train/val triplet loss", "val MAP@20"]
    assert (tmp_path / "curves.png").stat().st_size > 10_000
    with_active = {"tl_distance": history.assign(active_fraction=[0.9, 0.5], kept=[False, True])}
    assert plot_training_curves(with_active, tmp_path / "active.png")[-1] == "active fraction"


def test_the_table_reports_each_trained_systems_kept_epoch(tmp_path):
    files = write_run(tmp_path / "metrics", {"random": per_query(-0.1, seed=1), "tl_online": per_query(0.1)})
    (tmp_path / "models" / "tl_online").mkdir(parents=True)
    history = pd.DataFrame(
        {
            "epoch": [0, 1, 2, 3],
            "train_loss": [np.nan, 0.4, 0.3, 0.2],
            "val_loss": [0.5, 0.4, 0.3, 0.3],
            "val_map@20": [0.3, 0.4, 0.5, 0.45],
            "kept": [False, False, True, False],
        }
    )
    history.to_csv(tmp_path / "models" / "tl_online" / "history.csv", index=False)
    table = write_report(
        [f.with_name(f.name.replace(".per_query.parquet", ".json")) for f in files.values()],
        {"tl_online": tmp_path / "models" / "tl_online" / "history.csv"},
        **report_outputs(tmp_path / "report"),
    )
    assert table.set_index("system")["kept_epoch"].to_dict() == {"random": "", "tl_online": "2 of 3"}
    markdown = (tmp_path / "report" / "table.md").read_text()
    assert "| kept epoch |" in markdown and "| 2 of 3 |" in markdown
