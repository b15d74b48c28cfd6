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
