"""The listening page: which tracks it shows, their grades, and players that find the audio."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pandas as pd

from builders import IDS, tables
from trackrank.evaluate.listen import listening_page, pick_queries, tag_summary


def section(page: str, query: str) -> str:
    return re.search(rf'<section id="{re.escape(query)}">(.*?)</section>', page, re.S).group(1)


def test_retrieved_tracks_among_the_oracles_first_carry_their_grade(tmp_path):
    tracks, tags, rankings = tables(tmp_path)
    # the system finds the oracle's 2nd track first, then a track outside the oracle's first 2
    predictions = pd.DataFrame({"query": ["q1"] * 3, "rank": [1, 2, 3], "track_id": ["b", "d", "a"]})
    page = listening_page(
        tracks[tracks.track_id != "c <x>"],
        tags,
        test_rankings=rankings,
        predictions={"tl_x": predictions},
        page_dir=tmp_path,
        n_queries=1,
        n_relevant=2,
        n_shown=3,
    )
    system = section(page, "q1").split("<h3>tl_x: first 3 retrieved</h3>")[1]
    rows = re.findall(r'<tr class="(\w*)"><td>(\d)</td><td>([^<]+)</td><td>[^<]*</td><td>(\d?)</td>', system)
    assert rows == [("relevant", "1", "b", "1"), ("", "2", "d", ""), ("relevant", "3", "a", "2")]


def test_only_queries_every_system_retrieved_for_are_shown(tmp_path):
    tracks, tags, rankings = tables(tmp_path)
    predictions = pd.DataFrame({"query": ["a", "b"], "rank": [1, 1], "track_id": ["b", "a"]})
    page = listening_page(
        tracks, tags, test_rankings=rankings, predictions={"random": predictions}, page_dir=tmp_path, n_queries=10
    )
    assert re.findall(r'<section id="([^"]+)">', page) == ["a", "b"]


def test_players_point_at_the_audio_files_relative_to_the_page(tmp_path):
    audio_dir, page_dir = tmp_path / "audio", tmp_path / "results" / "report"
    audio_dir.mkdir()
    page_dir.mkdir(parents=True)
    tracks, tags, rankings = tables(audio_dir)
    predictions = pd.DataFrame({"query": IDS, "rank": 1, "track_id": ["a", "q1", "q1", "q1", "q1"]})
    page = listening_page(
        tracks, tags, test_rankings=rankings, predictions={"random": predictions}, page_dir=page_dir, n_queries=5
    )
    sources = re.findall(r'<audio controls preload="none" src="([^"]+)">', page)
    assert len(sources) == 5 * (1 + 4 + 1)  # the query, its 4 other tracks by S, 1 retrieved
    assert all(not source.startswith("/") for source in sources)
    assert {(page_dir / unquote(source)).resolve() for source in sources} == {Path(p) for p in tracks.path}


def test_track_ids_are_escaped(tmp_path):
    tracks, tags, rankings = tables(tmp_path)
    predictions = pd.DataFrame({"query": ["c <x>"], "rank": [1], "track_id": ["q1"]})
    page = listening_page(
        tracks, tags, test_rankings=rankings, predictions={"random": predictions}, page_dir=tmp_path, n_queries=1
    )
    assert "c &lt;x&gt;" in page and "c <x>" not in page


def test_queries_are_seeded_and_keep_catalog_order():
    queries = [f"t{i:02d}" for i in range(30)]
    chosen = pick_queries(queries, 5, seed=3)
    assert chosen == pick_queries(queries, 5, seed=3) == sorted(chosen)
    assert chosen != pick_queries(queries, 5, seed=4)
    assert pick_queries(queries[:3], 5, seed=3) == queries[:3]


def test_tag_summary_lists_strong_tags_strongest_first():
    assert tag_summary(pd.Series({"rock": 0.6, "calm": 0.2, "jazz": 0.9})) == "jazz 0.9, rock 0.6"
