"""Catalog validation: every bad row gets its reason; the catalog folder stays untouched."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf

from builders import ingest_outputs
from conftest import sine, write_catalog
from trackrank.data.catalog import ingest, merge_rejected
from trackrank.data.catalog_validation import validate_catalog
from trackrank.errors import CatalogError


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
    assert "duplicate track_id (first at tags.csv line 2)" in got["ok1"]
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
            lambda f: pd.concat(
                [pd.read_csv(f / "tags_meta.csv"), pd.DataFrame({"tag": ["harp"], "category": ["X"]})]
            ).to_csv(f / "tags_meta.csv", index=False),
            "lists tag(s) harp that the tags table has no column for",
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


def test_ingest_writes_outputs_and_never_touches_the_catalog_folder(small_catalog, tmp_path):
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in small_catalog.rglob("*")}
    catalog = ingest(small_catalog, **ingest_outputs(tmp_path / "results" / "catalog"), seed=3)
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
        ingest(small_catalog, **ingest_outputs(small_catalog / "results"))


def test_too_few_artists_for_a_disjoint_split_is_a_catalog_error(tmp_path):
    folder = tmp_path / "cat"
    write_catalog(folder, [good_row(folder, "x", "solo"), good_row(folder, "y", "solo")])
    with pytest.raises(CatalogError, match="needs at least 3 artists"):
        ingest(folder, **ingest_outputs(tmp_path / "out"))


def test_one_report_lists_tracks_skipped_by_validation_and_by_the_shards(tmp_path):
    pd.DataFrame({"track_id": ["a"], "path": ["a.wav"], "reason": ["too short"]}).to_csv(
        tmp_path / "rejected.csv", index=False
    )
    pd.DataFrame({"track_id": ["b"], "path": ["b.wav"], "reason": ["cannot decode"]}).to_csv(
        tmp_path / "shard-003.rejected.csv", index=False
    )
    pd.DataFrame(columns=["track_id", "path", "reason"]).to_csv(tmp_path / "shard-004.rejected.csv", index=False)
    merged = merge_rejected(
        {
            "validation": tmp_path / "rejected.csv",
            "shard-003": tmp_path / "shard-003.rejected.csv",
            "shard-004": tmp_path / "shard-004.rejected.csv",
        },
        tmp_path / "all.csv",
    )
    assert merged.values.tolist() == [
        ["a", "a.wav", "validation", "too short"],
        ["b", "b.wav", "shard-003", "cannot decode"],
    ]
    assert pd.read_csv(tmp_path / "all.csv").columns.tolist() == ["track_id", "path", "stage", "reason"]


def snapshot(folder: Path) -> dict:
    """Every entry under ``folder`` (symlinks themselves, not their targets) with its mtime and size."""
    return {p: (p.lstat().st_mtime_ns, p.lstat().st_size) for p in folder.rglob("*")}


def symlink_outside(folder: Path) -> dict:
    sf.write(folder.parent / "elsewhere.wav", sine(sr=8000), 8000)
    (folder / "audio" / "link.wav").symlink_to(folder.parent / "elsewhere.wav")
    return {"path": "audio/link.wav"}


def absolute_path(folder: Path) -> dict:
    return {"path": str((folder / "audio" / "bad.wav").resolve())}


#: One bad row each (track 'bad', line 5 of tags.csv, after three good rows), and what its reason says.
MESSY_ROWS = {
    "nan": (lambda f: {"rock": "NaN"}, "likelihood for tag 'rock' is missing or not a number ('NaN')"),
    "empty cell": (lambda f: {"jazz": ""}, "likelihood for tag 'jazz' is missing or not a number ('')"),
    "non-numeric": (lambda f: {"piano": "high"}, "likelihood for tag 'piano' is missing or not a number ('high')"),
    "negative": (lambda f: {"calm": -0.2}, "likelihood -0.2 for tag 'calm' is outside [0, 1]"),
    "above one": (lambda f: {"rock": 1.5}, "likelihood 1.5 for tag 'rock' is outside [0, 1]"),
    "duplicate id": (lambda f: {"track_id": "ok1"}, "duplicate track_id (first at tags.csv line 2)"),
    "id that is a path": (lambda f: {"track_id": "../x"}, "track_id '../x' is a path, not a name"),
    "empty artist": (lambda f: {"artist": " "}, "empty artist"),
    "dot-dot path": (lambda f: {"path": "audio/../../elsewhere.wav"}, "path 'audio/../../elsewhere.wav' escapes"),
    "absolute path": (absolute_path, "is absolute; paths are relative to the catalog folder"),
    "symlink outside": (symlink_outside, "path 'audio/link.wav' escapes the catalog folder"),
    "no audio": (lambda f: {"path": "audio/never_written.wav"}, "audio file not found: audio/never_written.wav"),
    "5-second track": (lambda f: {"seconds": 5.0}, "too short: 5.00 s < one 512-frame patch"),
}


@pytest.mark.parametrize("case", MESSY_ROWS)
def test_a_messy_row_is_skipped_naming_its_line_track_and_reason_and_the_rest_goes_on(tmp_path, case, caplog):
    change, reason = MESSY_ROWS[case]
    folder = tmp_path / "cat"
    rows = [good_row(folder, f"ok{i}", f"artist{i}") for i in (1, 2, 3)]
    sf.write(tmp_path / "elsewhere.wav", sine(sr=8000), 8000)
    overrides = change(folder)
    bad = good_row(folder, "bad", "artist1", seconds=overrides.pop("seconds", 13.0))
    rows.append({**bad, **overrides})
    write_catalog(folder, rows)
    before = snapshot(folder)

    catalog = ingest(folder, **ingest_outputs(tmp_path / "results" / "catalog"))

    assert snapshot(folder) == before
    assert list(catalog.tracks["track_id"]) == ["ok1", "ok2", "ok3"]
    rejected = pd.read_csv(tmp_path / "results" / "catalog" / "rejected.csv", keep_default_na=False)
    assert list(rejected["track_id"]) == [rows[-1]["track_id"]]
    assert rejected["reason"][0].startswith("tags.csv line 5: ") and reason in rejected["reason"][0]
    assert f"line 5 (track '{rows[-1]['track_id']}'): " in caplog.text


def test_the_console_hears_how_many_rows_were_skipped_and_where_the_list_is(tmp_path, capfd):
    from trackrank.logs import log_to

    folder = tmp_path / "cat"
    rows = [good_row(folder, f"ok{i}", f"artist{i}") for i in (1, 2, 3)]
    write_catalog(folder, [*rows, {"track_id": "lost", "path": "audio/lost.wav", "artist": "a"}])
    log_to(tmp_path / "ingest.log")
    ingest(folder, **ingest_outputs(tmp_path / "results"))
    console = capfd.readouterr().err
    assert f"trackrank: 1 of 4 catalog rows skipped, listed with their reasons in {tmp_path / 'results'}" in console
    assert "lost" not in console  # the rows themselves are in the log and the list, not on the console
    assert "audio file not found" in (tmp_path / "ingest.log").read_text()


def test_audio_files_the_table_does_not_list_are_ignored_and_counted(tmp_path, caplog):
    folder = tmp_path / "cat"
    rows = [good_row(folder, f"ok{i}", f"artist{i}") for i in (1, 2, 3)]
    for name in ("extra.wav", "sub/Other.FLAC"):
        (folder / "audio" / name).parent.mkdir(exist_ok=True)
        sf.write(folder / "audio" / name, sine(sr=8000), 8000)
    (folder / "audio" / "notes.txt").write_text("not audio")
    write_catalog(folder, rows)
    caplog.set_level("INFO")
    tracks, *_ = validate_catalog(folder)
    assert len(tracks) == 3
    assert f"2 audio file(s) in '{folder}' are not listed in tags.csv and are ignored" in caplog.text


def write_untagged(folder: Path, rows: list[dict]) -> None:
    """``untagged.csv``: audio without tags (``track_id``, ``path``, ``artist``)."""
    pd.DataFrame(rows, columns=["track_id", "path", "artist"]).to_csv(folder / "untagged.csv", index=False)


def test_untagged_audio_joins_the_catalog_in_its_own_split_without_moving_the_tagged_tracks(tmp_path):
    """A company's audio without tags (``untagged.csv``) is validated as tags.csv is, gets split
    ``untagged`` and no tags row; the tagged tracks' split and tags are what they are without it."""
    from trackrank.data.catalog import CatalogFiles, load_split_tags

    folder = tmp_path / "cat"
    rows = [good_row(folder, f"ok{i}", f"artist{i % 4}", rock=i / 10) for i in range(8)]
    write_catalog(folder, rows)
    alone = ingest(folder, **ingest_outputs(tmp_path / "alone"))
    write_untagged(
        folder,
        [
            good_row(folder, "u1", "artist1"),
            good_row(folder, "u2", "someone new"),
            {"track_id": "u3", "path": "audio/never_written.wav", "artist": "artist2"},
            good_row(folder, "ok3", "artist3"),  # an id tags.csv already has
            good_row(folder, "u4", "artist0", seconds=5.0),
        ],
    )
    before = snapshot(folder)
    catalog = ingest(folder, **ingest_outputs(tmp_path / "with"))
    assert snapshot(folder) == before

    tracks = pd.read_parquet(tmp_path / "with" / "tracks.parquet")
    assert tracks.track_id.tolist() == [*alone.tracks.track_id, "u1", "u2"]
    assert tracks.split.tolist() == [*alone.tracks.split, "untagged", "untagged"]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "with" / "tags.parquet"), alone.tags)
    assert catalog.tracks.path.iloc[-1] == str((folder / "audio" / "u2.wav").resolve())
    rejected = dict(zip(catalog.rejected.track_id, catalog.rejected.reason))
    assert rejected == {
        "u3": "untagged.csv line 4: audio file not found: audio/never_written.wav",
        "ok3": "untagged.csv line 5: duplicate track_id (first at tags.csv line 5)",
        "u4": rejected["u4"],
    }
    assert rejected["u4"].startswith("untagged.csv line 6: too short: 5.00 s")
    for split in ("train", "val", "test"):  # each split's tags, read by id: the same rows as without it
        ids, matrix, _ = load_split_tags(CatalogFiles.in_folder(tmp_path / "with"), split)
        expected_ids, expected, _ = load_split_tags(CatalogFiles.in_folder(tmp_path / "alone"), split)
        assert ids == expected_ids and (matrix == expected).all()


def test_withheld_train_tags_leave_val_and_test_whole(tmp_path):
    """``split.untagged_train_share``: that share of the train tracks (seeded) enters as untagged, last
    and without tags rows; the artist split, val and test and the other train tracks' tags are those of
    the run without it, and the same seed withholds the same tracks."""
    from trackrank.data.catalog import CatalogFiles, load_split_tags

    folder = tmp_path / "cat"
    write_catalog(folder, [good_row(folder, f"t{i:02d}", f"artist{i % 6}", rock=i / 20) for i in range(20)])
    whole = ingest(folder, **ingest_outputs(tmp_path / "whole"))
    train = whole.tracks.loc[whole.tracks.split == "train", "track_id"].tolist()
    catalog = ingest(folder, **ingest_outputs(tmp_path / "half"), untagged_train_share=0.5)
    tracks = pd.read_parquet(tmp_path / "half" / "tracks.parquet")
    withheld = tracks.loc[tracks.split == "untagged", "track_id"].tolist()
    assert len(withheld) == round(len(train) / 2) and set(withheld) < set(train)
    assert tracks.track_id.tolist()[-len(withheld) :] == withheld  # the untagged tracks last
    kept = tracks[tracks.split != "untagged"]
    assert kept.set_index("track_id").split.to_dict() == {
        t: s for t, s in zip(whole.tracks.track_id, whole.tracks.split) if t not in withheld
    }
    tags = pd.read_parquet(tmp_path / "half" / "tags.parquet")
    pd.testing.assert_frame_equal(tags, whole.tags[~whole.tags.track_id.isin(withheld)].reset_index(drop=True))
    for split in ("val", "test"):
        ids, matrix, _ = load_split_tags(CatalogFiles.in_folder(tmp_path / "half"), split)
        expected_ids, expected, _ = load_split_tags(CatalogFiles.in_folder(tmp_path / "whole"), split)
        assert ids == expected_ids and (matrix == expected).all()
    again = ingest(folder, **ingest_outputs(tmp_path / "again"), untagged_train_share=0.5)
    pd.testing.assert_frame_equal(again.tracks, catalog.tracks)
    with pytest.raises(CatalogError, match=rf"withholds the tags of all {len(train)} train tracks"):
        ingest(folder, **ingest_outputs(tmp_path / "none"), untagged_train_share=0.99)


def test_a_tag_column_in_the_untagged_table_is_refused_rather_than_dropped(tmp_path):
    folder = tmp_path / "cat"
    write_catalog(folder, [good_row(folder, f"ok{i}", f"artist{i}") for i in range(3)])
    pd.DataFrame([{**good_row(folder, "u1", "artist1"), "jazz": 1.0, "title": "x"}]).to_csv(
        folder / "untagged.csv", index=False
    )
    with pytest.raises(CatalogError, match=r"untagged.csv has tag column\(s\) jazz: it lists audio without tags"):
        validate_catalog(folder)
    pd.DataFrame([{"track_id": "u1", "artist": "a"}]).to_csv(folder / "untagged.csv", index=False)
    with pytest.raises(CatalogError, match=r"untagged.csv lacks the required column\(s\) path"):
        validate_catalog(folder)
