"""The result tables a reader sees equal the committed files they are written from (bench/headline.py)."""

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("headline", REPO / "bench" / "headline.py")
headline = importlib.util.module_from_spec(spec)
spec.loader.exec_module(headline)


def test_every_quoted_table_equals_its_files():
    pages = headline.documents()
    assert any("<!-- headline:demo -->" in page.read_text() for page in pages), "the README quotes the demo"
    assert headline.stale_blocks(pages) == []


def test_an_edited_digit_in_a_quoted_table_is_found(tmp_path):
    readme = (REPO / "README.md").read_text()
    block = headline.BLOCK.search(readme[readme.index("<!-- headline:demo -->") :])
    body = block.group("body")
    digit = next(i for i, c in enumerate(body) if c.isdigit())
    edited = body[:digit] + str((int(body[digit]) + 1) % 10) + body[digit + 1 :]
    page = tmp_path / "README.md"
    page.write_text(readme.replace(body, edited))
    assert headline.stale_blocks([page]) == ["README.md: demo"]
    page.write_text(headline.rewritten(page.read_text()))
    assert headline.stale_blocks([page]) == []


def test_the_run_table_reads_the_recorded_report_and_the_served_system(tmp_path):
    pd.DataFrame(
        {
            "system": ["random", "tl_online"],
            "n_queries": [80, 80],
            "map@20": [6.25, 50.0],
            "map@20_ci95": [1.0, 4.04],
            "ndcg@20": [13.9, 61.96],
            "ndcg@20_ci95": [1.5, 3.0],
            "kept_epoch": [None, 12.0],
        }
    ).to_csv(tmp_path / "table.csv", index=False)
    served = {"system": "tl_online", "chosen_by": "the best val ndcg@20 of 2 indexed systems", "metric": "ndcg@20"}
    served |= {"val": {"mean": 55.04, "ci95": 1.0}, "test": {"mean": 61.96, "ci95": 3.0}}
    (tmp_path / "served.json").write_text(json.dumps(served))
    table = headline.run_table(tmp_path)
    assert "| random | 6.2 ± 1.0 | 13.9 ± 1.5 | — |" in table
    assert "| tl_online | 50.0 ± 4.0 | 62.0 ± 3.0 | 12 |" in table
    assert "**tl_online**, the best val ndcg@20 of 2 indexed systems (val ndcg@20 55.0, test 62.0)" in table


@pytest.mark.parametrize("short", [True, False])
def test_the_times_tables_come_from_times_csv(short):
    times = pd.read_csv(headline.HEADLINE / "times.csv", keep_default_na=False)
    text = headline.times_table(short)
    shown = times[times.readme == "yes"] if short else times
    assert text.count("\n") == 2 + len(shown)
    for row in shown.itertuples():
        assert row.wall in text


def write_runs(folder, split: str, values: dict[str, list[float]]) -> None:
    """Finished bench runs of one seed: each variant's per-query nDCG@20 (0-1) on ``split``."""
    for variant, ndcg in values.items():
        run = folder / variant / "seed0"
        (run / "metrics").mkdir(parents=True, exist_ok=True)
        (run / "result.json").write_text("{}")
        per_query = pd.DataFrame({"query": [f"q{i}" for i in range(len(ndcg))], "map": ndcg, "ndcg": ndcg})
        per_query.to_parquet(run / "metrics" / f"{split}.per_query.parquet")


def test_a_val_table_compares_each_variant_with_the_references_it_names(tmp_path, monkeypatch):
    """``val_<folder>-vs-a-b``: the val split of bench/results/<folder>/, one pair of columns per reference."""
    monkeypatch.setattr(headline, "REPO", tmp_path)
    folder = tmp_path / "bench" / "results" / "trial"
    write_runs(folder, "val", {"at_trunk": [0.5, 0.6, 0.7], "tl_listwise": [0.6, 0.7, 0.8], "untrained": [0.3] * 3})
    table = headline.render("val_trial-vs-untrained-at_trunk")
    assert table.startswith("Val split, 3 queries, training seeds 0;")
    assert "| variant | nDCG@20 (%) | − untrained | over seeds | − at_trunk | over seeds |" in table
    assert "| tl_listwise | 70.0 | +40.0" in table and "| +10.0 ± 0.0 |" in table
    assert "Served" not in table, "no choice is made from a table of the split it was made on"


def test_a_defaults_table_gives_each_defaults_gain_over_the_value_it_replaced(tmp_path, monkeypatch):
    """``defaults_<folder>``: the default's variant less the replaced value's, on the seeds both finished."""
    monkeypatch.setattr(headline, "REPO", tmp_path)
    folder = tmp_path / "bench" / "results" / "reserved"
    write_runs(folder, "test", {"tl_distance": [0.5, 0.6, 0.7], "tl_distance_margin_0.5": [0.4, 0.5, 0.6]})
    write_runs(folder, "val", {"tl_online_lr_1e-3": [0.4, 0.5, 0.6]})  # started, not yet on test
    table = headline.render("defaults_reserved")
    assert "| `train.margin` | tl_distance | tl_distance_margin_0.5 | +10.0 ± 0.0 |" in table
    assert "| `train.online.lr` | tl_online | tl_online_lr_1e-3 | not run yet | | |" in table
    assert "train.lr_tagger" not in table  # an option this run did not check is left out


def test_a_changed_table_pairs_each_variant_with_itself_in_the_earlier_folder(tmp_path, monkeypatch):
    """``changed_<folder>-from-<earlier>``: the same catalog under other defaults, variant by variant, on the
    queries both evaluated; a variant the earlier folder lacks has no row."""
    monkeypatch.setattr(headline, "REPO", tmp_path)
    results = tmp_path / "bench" / "results"
    write_runs(results / "reverted", "test", {"tl_distance": [0.5, 0.6, 0.7], "tl_listwise": [0.9] * 3})
    write_runs(results / "before", "test", {"tl_distance": [0.6, 0.8, 0.7], "at_trunk": [0.9] * 3})
    table = headline.render("changed_reverted-from-before")
    assert "| tl_distance | 60.0 | 70.0 | -10.0 ± " in table
    assert "tl_listwise" not in table and "at_trunk" not in table


def test_a_defaults_table_of_one_option_has_its_rows_alone(tmp_path, monkeypatch):
    """``defaults_<folder>-only-min_epochs``: the minimum's rows, one per system it was checked on."""
    monkeypatch.setattr(headline, "REPO", tmp_path)
    folder = tmp_path / "bench" / "results" / "reserved"
    write_runs(folder, "test", {"tl_online": [0.5, 0.6, 0.7], "tl_online_min_epochs_1": [0.3, 0.6, 0.6]})
    table = headline.render("defaults_reserved-only-min_epochs")
    assert "| `train.min_epochs` | tl_online | tl_online_min_epochs_1 | +10.0 ± " in table
    assert "`train.margin`" not in table and "`train.online.lr`" not in table
    minimum = [row for row in headline.REPLACED_VALUES if row[0] == "train.min_epochs"]
    assert table.count("| `train.min_epochs` |") == len(minimum) == 6  # one row per system it binds


def test_a_confirmation_table_of_one_servable_system_names_no_choice(tmp_path, monkeypatch):
    """A folder that compares one system with a variant of it (``confirm_margin_<catalog>``) makes no
    choice of a served system: there is one candidate."""
    monkeypatch.setattr(headline, "REPO", tmp_path)
    folder = tmp_path / "bench" / "results" / "confirm_margin"
    for split in ("val", "test"):
        write_runs(folder, split, {"tl_distance": [0.5, 0.6, 0.7], "tl_distance_margin_0.2": [0.5, 0.5, 0.7]})
    table = headline.render("confirm_margin-vs-tl_distance")
    assert "| tl_distance_margin_0.2 | 56.7 | -3.3 ± " in table
    assert "Served" not in table


def test_a_curve_table_gives_each_systems_map_and_ndcg_at_each_size(tmp_path, monkeypatch):
    monkeypatch.setattr(headline, "REPO", tmp_path)
    folder = tmp_path / "bench" / "results" / "curve"
    folder.mkdir(parents=True)
    pd.DataFrame(
        {
            "split": ["test"] * 5,
            "train_tracks": [1211, 1211, 150, 150, 1211],
            "system": ["at_trunk", "mfcc_stats", "at_trunk", "mfcc_stats", "tl_distance"],
            "map": [28.25, 20.3, 27.0, 20.3, 21.04],
            "ndcg": [41.8, 32.7, 40.96, 32.7, 32.9],
        }
    ).to_csv(folder / "curve.csv", index=False)
    assert headline.render("curve_curve").splitlines() == [
        "| train tracks | `at_trunk` | `mfcc_stats` | `tl_distance` |",
        "|---|---|---|---|",
        "| 150 | 27.0 / 41.0 | 20.3 / 32.7 | — |",  # a system run at one size only
        "| 1,211 | 28.2 / 41.8 | 20.3 / 32.7 | 21.0 / 32.9 |",
    ]
