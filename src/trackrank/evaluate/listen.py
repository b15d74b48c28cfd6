"""The listening page: test queries with what S ranks first and what each system retrieves.

Metrics say how often a system finds the oracle's tracks; listening says what its mistakes
sound like. For a few seeded test queries the page shows the query, its relevant tracks
(``metrics.relevant_from_rankings``: the first ``n_relevant`` by the oracle S among the
tracks the systems ranked, graded n_relevant..1, as the metrics grade them),
then each system's first ``n_shown`` retrieved tracks, each with an audio player and the
track's tags; a retrieved track that is among the oracle's first gets its grade.

Audio players point at the catalog's own files through paths relative to the page, so the
page plays where it was written (open it from ``results/report/``) and nothing is copied.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

from trackrank.atomic import atomic_output
from trackrank.rank.metrics import relevant_from_rankings
from trackrank.rank.parts import TableParts, read_parts

STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 80em; }
section { border-top: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; }
td, th { padding: 0.25em 0.6em; text-align: left; vertical-align: middle; }
tr.relevant td { background: #e6f4e6; }
.tags { color: #555; font-size: 0.85em; }
audio { height: 2em; }
"""
#: The header row of every table of tracks on the page.
HEADER = "<tr><th>rank</th><th>track</th><th>artist</th><th>grade</th><th>audio</th><th>tags</th></tr>"


def pick_queries(queries: list[str], n_queries: int, *, seed: int) -> list[str]:
    """``n_queries`` of the test queries, seeded, in the catalog order of ``queries``."""
    chosen = np.random.default_rng([seed, 17]).choice(len(queries), min(n_queries, len(queries)), replace=False)
    return [queries[i] for i in sorted(chosen)]


def tag_summary(tags: pd.Series, threshold: float = 0.5) -> str:
    """A track's tags with likelihood >= threshold, strongest first."""
    strong = tags[tags >= threshold].sort_values(ascending=False, kind="stable")
    return ", ".join(f"{tag} {value:.1f}" for tag, value in strong.items())


def _audio_cell(path: str, page_dir: Path) -> str:
    src = quote(os.path.relpath(path, page_dir).replace(os.sep, "/"))
    return f'<audio controls preload="none" src="{html.escape(src)}"></audio>'


def _track_rows(
    ids: list[str], grade: dict[str, int], tracks: pd.DataFrame, tags: pd.DataFrame, page_dir: Path
) -> list[str]:
    rows = []
    for rank, track in enumerate(ids, start=1):
        graded = grade.get(track)
        rows.append(
            f'<tr class="{"relevant" if graded else ""}"><td>{rank}</td><td>{html.escape(track)}</td>'
            f"<td>{html.escape(str(tracks.at[track, 'artist']))}</td><td>{graded or ''}</td>"
            f"<td>{_audio_cell(tracks.at[track, 'path'], page_dir)}</td>"
            f'<td class="tags">{html.escape(tag_summary(tags.loc[track]))}</td></tr>'
        )
    return rows


def listening_page(
    tracks: pd.DataFrame,
    tags: pd.DataFrame,
    *,
    test_rankings: pd.DataFrame,
    predictions: dict[str, pd.DataFrame],
    page_dir: str | Path,
    n_queries: int = 10,
    n_relevant: int = 5,
    n_shown: int = 5,
    seed: int = 0,
) -> str:
    """The page's HTML.

    Parameters
    ----------
    tracks : the validated tracks table (``track_id``, ``path``, ``artist``, ...).
    tags : tag likelihoods, indexed by ``track_id``, one column per tag.
    test_rankings : the test split's oracle rankings (``anchor``, ``rank``, ``other``).
    predictions : system -> its predictions table (``query``, ``rank``, ``track_id``).
    page_dir : the folder the page is written to (audio paths are relative to it).
    """
    page_dir = Path(page_dir).resolve()
    tracks = tracks.set_index("track_id")
    retrieved = _retrieved(predictions)
    # the tracks the systems ranked (test tracks with features), in catalog order, as the metrics see them
    ranked = {t for by_query in retrieved.values() for q, ids in by_query.items() for t in (q, *ids)}
    ids = [t for t in tracks.index if t in ranked]
    relevant = relevant_from_rankings(test_rankings, ids, n_relevant=n_relevant)
    queries = [t for t in ids if all(t in by_query for by_query in retrieved.values())]
    sections = []
    for query in pick_queries(queries, n_queries, seed=seed):
        oracle_first = [ids[i] for i in relevant[ids.index(query)] if i >= 0]
        sections.append(
            _query_section(
                query, oracle_first, retrieved, tracks, tags, page_dir, n_relevant=n_relevant, n_shown=n_shown
            )
        )
    return _page(sections, n_relevant)


def _retrieved(predictions: dict[str, pd.DataFrame]) -> dict[str, dict[str, list[str]]]:
    """System -> query -> the tracks it retrieved for that query, in rank order."""
    return {
        system: {
            str(q): [str(t) for t in ids]
            for q, ids in table.sort_values(["query", "rank"]).groupby("query", observed=True)["track_id"]
        }
        for system, table in predictions.items()
    }


def _query_section(
    query: str,
    oracle_first: list[str],
    retrieved: dict[str, dict[str, list[str]]],
    tracks: pd.DataFrame,
    tags: pd.DataFrame,
    page_dir: Path,
    *,
    n_relevant: int,
    n_shown: int,
) -> str:
    """One query's section: the query, the oracle's first tracks ``oracle_first`` (graded from ``n_relevant``
    down), then each system's first ``n_shown`` retrieved tracks, with the grade of those among the oracle's."""
    grade = {t: n_relevant - i for i, t in enumerate(oracle_first)}
    parts = [
        f'<section id="{html.escape(query)}"><h2>Query {html.escape(query)} '
        f"({html.escape(str(tracks.at[query, 'artist']))})</h2>",
        f"<p>{_audio_cell(tracks.at[query, 'path'], page_dir)} "
        f'<span class="tags">{html.escape(tag_summary(tags.loc[query]))}</span></p>',
        f"<h3>Oracle S: the {n_relevant} relevant tracks</h3><table>{HEADER}",
        *_track_rows(oracle_first, grade, tracks, tags, page_dir),
        "</table>",
    ]
    for system, by_query in retrieved.items():
        parts += [
            f"<h3>{html.escape(system)}: first {n_shown} retrieved</h3><table>{HEADER}",
            *_track_rows(by_query[query][:n_shown], grade, tracks, tags, page_dir),
            "</table>",
        ]
    return "\n".join(parts) + "</section>"


def _page(sections: list[str], n_relevant: int) -> str:
    """The whole page: its head, what it shows, then the query ``sections``."""
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>trackrank: listening page'
        f"</title><style>{STYLE}</style></head><body>\n<h1>Listening page: {len(sections)} test queries</h1>\n"
        f"<p>For each query: the tracks the oracle S ranks first among the other test tracks (graded "
        f"{n_relevant}..1, the relevant tracks of the metrics), then what each system retrieves; "
        f"highlighted rows are relevant. Tags shown have likelihood &ge; 0.5.</p>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )


def write_listening_page(
    tracks_file: str | Path,
    *,
    tags_file: str | Path,
    test_rankings_file: TableParts,
    prediction_files: dict[str, str | Path],
    output: str | Path,
    n_queries: int = 10,
    n_relevant: int = 5,
    seed: int = 0,
) -> None:
    """Read the run's tables and write the listening page.

    Parameters
    ----------
    tracks_file, tags_file : the validated catalog's ``tracks.parquet`` and ``tags.parquet``.
    test_rankings_file : the test split's oracle rankings, a file or its parts (``rankings/test/part-*.parquet``).
    prediction_files : system name -> its test predictions (``metrics/<system>.predictions.parquet``).
    output : the HTML page; audio is linked relative to its folder.
    n_queries : test queries shown (>= 1), drawn with ``seed``.
    n_relevant : each query's first oracle-ranked tracks that count as relevant (graded), >= 1.
    """
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    predictions = {system: pd.read_parquet(path) for system, path in prediction_files.items()}
    page = listening_page(
        pd.read_parquet(tracks_file),
        pd.read_parquet(tags_file).set_index("track_id"),
        test_rankings=read_parts(test_rankings_file).to_pandas(),
        predictions=predictions,
        page_dir=output.parent,
        n_queries=n_queries,
        n_relevant=n_relevant,
        n_shown=n_relevant,
        seed=seed,
    )
    with atomic_output(output) as tmp:
        tmp.write_text(page, encoding="utf-8")
