"""An index that grows: add new audio, query it, stream it, remove it; a crash leaves the old index."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pandas as pd
import pytest
import torch
from fastapi.testclient import TestClient

from trackrank import cli
from trackrank.coldstart import grow
from trackrank.coldstart.recommend import Recommender
from trackrank.coldstart.service import create_app
from trackrank.errors import IndexMismatch, QueryError


def test_added_tracks_are_found_returned_and_streamed_like_the_others(index_copy, new_files, tmp_path):
    ids = tmp_path / "ids.csv"
    pd.DataFrame(
        {"file": [str(f) for f in new_files], "track_id": ["n1", "n2"], "artist": ["new", ""], "jazz": [0.9, 0.1]}
    ).to_csv(ids, index=False)
    assert cli.main(["index", "add", *map(str, new_files), "--index", str(index_copy), "--ids", str(ids)]) == 0
    recommender = Recommender(index_copy, device="cpu", tagger=None)
    assert recommender.index.identity["n_tracks"] == 5
    for path, track_id in zip(new_files, ["n1", "n2"]):
        assert recommender.recommend(path, k=1).neighbours[0].track_id == track_id
    found = recommender.similar("n1", k=4)
    assert "n1" not in [n.track_id for n in found.neighbours] and found.query_tags == {"jazz": None}
    client = TestClient(create_app(recommender, allowed_hosts=["testserver"]))
    assert client.get("/audio/n1").content == new_files[0].read_bytes()
    table = pd.read_parquet(index_copy / "tracks.parquet").set_index("track_id")
    assert table.loc["n2", "artist"] == "unknown" and table.loc["n1", "split"] == "added"


def test_removed_tracks_are_never_returned_again(index_copy, small_index):
    assert cli.main(["index", "remove", "t1", "--index", str(index_copy)]) == 0
    recommender = Recommender(index_copy, device="cpu", tagger=None)
    assert [n.track_id for n in recommender.recommend(small_index[1][1], k=3).neighbours] != []
    assert "t1" not in {n.track_id for n in recommender.recommend(small_index[1][1], k=3).neighbours}
    with pytest.raises(QueryError, match="not in index .*: t9"):
        grow.remove_tracks(index_copy, ["t9"])


def test_an_id_already_indexed_is_refused(index_copy, new_files, tmp_path):
    ids = tmp_path / "ids.csv"
    pd.DataFrame({"file": [str(new_files[0])], "track_id": ["t0"]}).to_csv(ids, index=False)
    with pytest.raises(QueryError, match="already in index .*: t0"):
        grow.add_tracks(index_copy, [str(new_files[0])], ids_csv=ids, device="cpu")


def test_a_crash_while_saving_leaves_the_old_index_whole(index_copy, new_files, monkeypatch):
    before = {name: (index_copy / name).read_bytes() for name in ("tracks.parquet", "vectors.faiss", "identity.json")}

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(grow.faiss, "write_index", crash)
    with pytest.raises(OSError, match="disk full"):
        grow.add_tracks(index_copy, [str(new_files[0])], device="cpu")
    assert {name: (index_copy / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in index_copy.parent.iterdir()) == [".index.lock", "incoming", "index"]


def test_a_file_embedded_with_another_model_is_refused(index_copy, new_files, tmp_path):

    other = tmp_path / "other.pt"
    checkpoint = torch.load(
        Path(index_copy.parent.parent) / "model.pt" if False else _model(index_copy), weights_only=True
    )
    checkpoint["settings"]["seed"] = 99
    torch.save(checkpoint, other)
    with pytest.raises(IndexMismatch, match="is not the model index"):
        grow.add_tracks(index_copy, [str(new_files[0])], model=other, device="cpu")


def _model(folder: Path) -> Path:

    return Path(json.loads((folder / "identity.json").read_text())["model_path"])


def test_a_change_keeps_the_index_folders_and_files_permissions(index_copy, new_files):
    """A server running as another user reads the index: the swapped-in folder keeps the old modes, not
    the owner-only 0700 of a fresh temporary folder."""
    index_copy.chmod(0o750)
    for name in ("tracks.parquet", "vectors.faiss", "identity.json"):
        (index_copy / name).chmod(0o640)
    grow.add_tracks(index_copy, [str(new_files[0])], device="cpu")
    assert stat.S_IMODE(index_copy.stat().st_mode) == 0o750
    grow.remove_tracks(index_copy, ["fresh"])
    assert stat.S_IMODE(index_copy.stat().st_mode) == 0o750
    for name in ("tracks.parquet", "vectors.faiss", "identity.json"):
        assert stat.S_IMODE((index_copy / name).stat().st_mode) == 0o640, name


def test_removing_an_id_given_twice_removes_and_counts_one_track(index_copy, capsys):
    assert cli.main(["index", "remove", "t1", "t1", "--index", str(index_copy)]) == 0
    assert capsys.readouterr().out == f"removed 1 track from {index_copy}\n"
    assert sorted(pd.read_parquet(index_copy / "tracks.parquet").track_id) == ["t0", "t2"]
    assert grow.remove_tracks(index_copy, ["t0", "t0"]) == 1


def test_ids_csv_rows_match_files_however_the_path_is_spelled(index_copy, new_files, tmp_path, monkeypatch):
    """``./fresh.wav`` in the CSV and ``fresh.wav`` on the command line (or the other way round, or an
    absolute path) name the same file."""
    monkeypatch.chdir(new_files[0].parent)
    ids = tmp_path / "ids.csv"
    pd.DataFrame({"file": ["./fresh.wav", str(new_files[1])], "track_id": ["n1", "n2"]}).to_csv(ids, index=False)
    added, failed = grow.add_tracks(index_copy, ["fresh.wav", "../incoming/./other.wav"], ids_csv=ids, device="cpu")
    assert (added, failed) == (["n1", "n2"], [])
    table = pd.read_parquet(index_copy / "tracks.parquet").set_index("track_id")
    assert table.loc["n1", "path"] == str(new_files[0]) and table.loc["n2", "path"] == str(new_files[1])


def test_two_csv_rows_for_one_file_are_refused_naming_them(index_copy, new_files, tmp_path, monkeypatch):
    monkeypatch.chdir(new_files[0].parent)
    ids = tmp_path / "ids.csv"
    pd.DataFrame({"file": ["fresh.wav", "./fresh.wav"], "track_id": ["n1", "n2"]}).to_csv(ids, index=False)
    with pytest.raises(QueryError, match=r"ids.csv: more than one row names the same file: fresh.wav, ./fresh.wav"):
        grow.add_tracks(index_copy, ["fresh.wav"], ids_csv=ids, device="cpu")


@pytest.mark.parametrize(
    "track_id, reason",
    [
        ("", "empty track_id"),
        ("  ", "empty track_id"),
        ("../../etc/passwd", "track_id '../../etc/passwd' is a path, not a name"),
        ("..", "track_id '..' is a path, not a name"),
        ("a\\b", "is a path, not a name"),
        ("tab\tin", "holds control characters"),
    ],
)
def test_an_id_the_catalog_would_refuse_is_refused_before_anything_is_embedded(
    index_copy, new_files, tmp_path, track_id, reason
):
    """Such an id could never be asked for by /tracks/{id}/similar or /audio/{id}."""
    ids = tmp_path / "ids.csv"
    pd.DataFrame({"file": [str(new_files[0])], "track_id": [track_id]}).to_csv(ids, index=False)
    before = (index_copy / "tracks.parquet").read_bytes()
    with pytest.raises(QueryError) as refused:
        grow.add_tracks(index_copy, [str(new_files[0])], ids_csv=ids, device="cpu")
    assert str(refused.value).startswith(f"{ids}: {new_files[0]}: ") and reason in str(refused.value)
    assert (index_copy / "tracks.parquet").read_bytes() == before
