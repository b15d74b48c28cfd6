"""Catalog validation: every bad row gets its reason; the catalog folder stays untouched."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf

from conftest import sine, write_catalog
from trackrank.catalog import CatalogError, ingest, merge_rejected, validate_catalog


def good_row(folder: Path, track_id: str, artist: str = "a", seconds: float = 13.0, **tags) -> dict:
    path = f"audio/{track_id}.wav"
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    sf.write(folder / path, sine(seconds=seconds, sr=8000), 8000)
    return {"track_id": track_id, "path": path, "artist": artist, **tags}


def reasons(folder: Path, **kwargs) -> dict[str, str]:
    _, _, _, rejected = validate_catalog(folder, **kwargs)
    return dict(zip(rejected["track_id"], rejected["reason"]))


def test_every_supported_format_rate_and_channel_count_is_accepted(small_catalog):
    tracks, tags, taxonomy, rejected = validate_catalog(small_catalog)
    assert rejected.empty
    assert list(tracks["track_id"]) == [f"t{i}" for i in range(6)]
    assert tracks["duration_s"].round(1).eq(13.0).all()
    assert list(tags.columns) == ["track_id", "rock", "jazz", "piano", "calm"]
    assert list(taxonomy["category"]) == ["Genre", "Genre", "Recording", "Mood"]


def test_bad_rows_are_skipped_each_with_its_reason(tmp_path):
    folder = tmp_path / "cat"
    rows = [good_row(folder, "ok1", "a"), good_row(folder, "ok2", "b"), good_row(folder, "ok3", "c")]
    rows.append({**good_row(folder, "short", "a", seconds=5.0)})
    rows.append({"track_id": "missing", "path": "audio/nothere.wav", "artist": "a"})
    (folder / "audio" / "garbage.wav").write_bytes(b"this is not audio at all" * 100)
    rows.append({"track_id": "garbage", "path": "audio/garbage.wav", "artist": "a"})
    rows.append({**good_row(folder, "nan", "a"), "rock": "nan"})
    rows.append({**good_row(folder, "toolarge", "a"), "jazz": 1.7})
    rows.append({**good_row(folder, "negative", "a"), "calm": -0.1})
    rows.append({**good_row(folder, "ok1", "a")})  # duplicate id of row 1
    sf.write(tmp_path / "outside.wav", sine(sr=8000), 8000)
    rows.append({"track_id": "escape", "path": "../outside.wav", "artist": "a"})
    rows.append({**good_row(folder, "noartist", "")})
    write_catalog(folder, rows)

    got = reasons(folder)
    assert set(got) == {"short", "missing", "garbage", "nan", "toolarge", "negative", "ok1", "escape", "noartist"}
    assert "too short: 5.00 s" in got["short"] and "short_tracks=pad" in got["short"]
    assert "audio file not found: audio/nothere.wav" in got["missing"]
    assert "unreadable audio" in got["garbage"] and "garbage.wav" in got["garbage"]
    assert "tag 'rock' is missing or not a number ('nan')" in got["nan"]
    assert "likelihood 1.7 for tag 'jazz' is outside [0, 1]" in got["toolarge"]
    assert "likelihood -0.1 for tag 'calm' is outside [0, 1]" in got["negative"]
    assert "duplicate track_id (first at line 2)" in got["ok1"]
    assert "escapes the catalog folder" in got["escape"]
    assert "empty artist" in got["noartist"]
    assert got["toolarge"].startswith("tags.csv line 9:")


def test_short_track_is_kept_when_config_says_pad(tmp_path):
    folder = tmp_path / "cat"
    write_catalog(folder, [good_row(folder, "short", "a", seconds=5.0), good_row(folder, "long", "b")])
    tracks, *_ = validate_catalog(folder, short_tracks="pad")
    assert list(tracks["track_id"]) == ["short", "long"]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: (f / "tags.csv").unlink(), "has no tags.csv"),
        (lambda f: (f / "tags_meta.csv").unlink(), "has no tags_meta.csv"),
        (
            lambda f: pd.read_csv(f / "tags.csv").drop(columns="artist").to_csv(f / "tags.csv", index=False),
            "lacks the required column(s) artist",
        ),
        (
            lambda f: pd.read_csv(f / "tags_meta.csv").iloc[:-1].to_csv(f / "tags_meta.csv", index=False),
            "tag column(s) calm of the tags table are not in",
        ),
        (
            lambda f: pd.read_csv(f / "tags.csv").assign(rock=5).to_csv(f / "tags.csv", index=False),
            "has no valid track",
        ),
    ],
)
def test_an_unusable_catalog_stops_with_one_clear_message(small_catalog, damage, message):
    damage(small_catalog)
    with pytest.raises(CatalogError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_catalog(small_catalog)


def outputs(folder: Path) -> dict[str, Path]:
    """:func:`ingest`'s four output files, in ``folder``."""
    names = {"tracks": "tracks.parquet", "tags": "tags.parquet", "taxonomy": "taxonomy.csv", "rejected": "rejected.csv"}
    return {key: folder / name for key, name in names.items()}


def test_ingest_writes_outputs_and_never_touches_the_catalog_folder(small_catalog, tmp_path):
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in small_catalog.rglob("*")}
    catalog = ingest(small_catalog, **outputs(tmp_path / "results" / "catalog"), seed=3)
    after = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in small_catalog.rglob("*")}
    assert before == after
    tracks = pd.read_parquet(tmp_path / "results" / "catalog" / "tracks.parquet")
    assert list(tracks.columns) == ["track_id", "path", "artist", "split", "duration_s"]
    assert tracks.equals(catalog.tracks)
    assert all(os.path.isabs(p) for p in tracks["path"])
    assert set(tracks["split"]) == {"train", "val", "test"}
    rejected = pd.read_csv(tmp_path / "results" / "catalog" / "rejected.csv")
    assert list(rejected.columns) == ["track_id", "path", "reason"]


def test_ingest_refuses_to_write_inside_the_catalog(small_catalog):
    with pytest.raises(CatalogError, match="never writes into a catalog"):
        ingest(small_catalog, **outputs(small_catalog / "results"))


def test_too_few_artists_for_a_disjoint_split_is_a_catalog_error(tmp_path):
    folder = tmp_path / "cat"
    write_catalog(folder, [good_row(folder, "x", "solo"), good_row(folder, "y", "solo")])
    with pytest.raises(CatalogError, match="needs at least 3 artists"):
        ingest(folder, **outputs(tmp_path / "out"))


def test_one_report_lists_tracks_skipped_by_validation_and_by_the_shards(tmp_path):
    pd.DataFrame({"track_id": ["a"], "path": ["a.wav"], "reason": ["too short"]}).to_csv(
        tmp_path / "rejected.csv", index=False
    )
    pd.DataFrame({"track_id": ["b"], "path": ["b.wav"], "reason": ["cannot decode"]}).to_csv(
        tmp_path / "shard-003.rejected.csv", index=False
    )
    pd.DataFrame(columns=["track_id", "path", "reason"]).to_csv(tmp_path / "shard-004.rejected.csv", index=False)
    merged = merge_rejected(
        [tmp_path / "rejected.csv", tmp_path / "shard-003.rejected.csv", tmp_path / "shard-004.rejected.csv"],
        tmp_path / "all.csv",
    )
    assert merged.values.tolist() == [
        ["a", "a.wav", "validation", "too short"],
        ["b", "b.wav", "shard-003", "cannot decode"],
    ]
    assert pd.read_csv(tmp_path / "all.csv").columns.tolist() == ["track_id", "path", "stage", "reason"]
