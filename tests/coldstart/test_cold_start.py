"""Cold start: the index rule, `trackrank recommend` on real audio files and the HTTP service."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from fastapi.testclient import TestClient

from conftest import sine
from trackrank.cli import parser
from trackrank.coldstart.faiss_index import new_faiss_index
from trackrank.coldstart.recommend import Recommender
from trackrank.coldstart.search import CatalogIndex
from trackrank.coldstart.service import create_app
from trackrank.data.feature_cache import cache_in_folder, cached_track_ids
from trackrank.errors import IndexMismatch

TRACKRANK = Path(sys.executable).with_name("trackrank")  # the console script of this environment
# The tiny run's tl_online index: the system that learns in 4 steps, so each catalog track finds
# itself first (the run's default is whichever TL system scored best, on 3 test tracks).
INDEX = "results/index/tl_online"


def trackrank(work: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(TRACKRANK), *args], cwd=work, capture_output=True, text=True)


def catalog_tracks(work: Path) -> pd.DataFrame:
    return pd.read_parquet(work / "results" / "catalog" / "tracks.parquet")


def test_the_index_rule_indexes_every_track_with_features_in_every_split(finished_run):
    folder = finished_run / "results" / "index" / "tl_online"
    indexed = pd.read_parquet(folder / "tracks.parquet")
    cached = cached_track_ids([part.index for part in cache_in_folder(finished_run / "results" / "cache")])
    assert sorted(indexed.track_id) == sorted(cached)
    assert set(indexed.split) == {"train", "val", "test"}
    vectors = np.stack(indexed.embedding)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    identity = json.loads((folder / "identity.json").read_text())
    assert identity["system"] == "tl_online" and identity["n_tracks"] == len(indexed)


def test_trackrank_help_lists_its_subcommands():
    run = subprocess.run([str(TRACKRANK), "--help"], capture_output=True, text=True)
    assert run.returncode == 0
    for command in ("index", "recommend", "serve"):
        assert command in run.stdout


def test_serve_binds_this_machine_only_unless_told_otherwise():
    assert parser().parse_args(["serve"]).host == "127.0.0.1"


def test_recommend_json_gives_each_catalog_track_itself_first(finished_run):
    tracks = catalog_tracks(finished_run).groupby("split").head(1)
    run = trackrank(finished_run, "recommend", *tracks.path, "--index", INDEX, "--top", "3", "--json")
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout)
    assert answer["system"] == "tl_online" and answer["errors"] == []
    assert [r["file"] for r in answer["results"]] == tracks.path.tolist()
    for result, track_id in zip(answer["results"], tracks.track_id):
        neighbours = result["neighbours"]
        assert [n["rank"] for n in neighbours] == [1, 2, 3]
        assert set(neighbours[0]) == {"rank", "track_id", "artist", "distance", "tags", "shared_tags"}
        assert neighbours[0]["track_id"] == track_id and neighbours[0]["distance"] < 1e-2
        assert [n["distance"] for n in neighbours] == sorted(n["distance"] for n in neighbours)


def test_recommend_explains_its_answer_with_the_taggers_estimate_and_the_catalogs_tags(finished_run):
    """The run trained at_baseline: a file's tags are estimated from the patches the index embeds, each
    neighbour carries its strong catalog tags, and shares those of the estimate it has."""
    from trackrank.data.features import even_patches, track_cqt
    from trackrank.learn.embedding import load_model

    song = catalog_tracks(finished_run).iloc[4]
    run = trackrank(finished_run, "recommend", song.path, "--index", INDEX, "--top", "5", "--json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)["results"][0]
    assert result["query_tags_from"] == "estimated by at_baseline"
    tagger, checkpoint = load_model(finished_run / "results" / "models" / "at_baseline" / "model.pt")
    cqt = track_cqt(song.path).astype(np.float16).astype(np.float32)
    with torch.no_grad():
        likelihoods = tagger(torch.from_numpy(even_patches(cqt, 8))).mean(0).numpy()
    expected = {tag: v for tag, v in zip(checkpoint["tags"], likelihoods) if v >= 0.5}
    assert result["query_tags"].keys() == expected.keys()
    for tag, value in result["query_tags"].items():
        assert value == pytest.approx(expected[tag], abs=1e-3)
    catalog = pd.read_parquet(finished_run / "results" / "catalog" / "tags.parquet").set_index("track_id")
    for n in result["neighbours"]:
        strong = catalog.loc[n["track_id"]]
        assert set(n["tags"]) == set(strong[strong >= 0.5].index)
        assert n["shared_tags"] == [t for t in n["tags"] if t in expected]
    table = trackrank(finished_run, "recommend", song.path, "--index", INDEX, "--top", "2")
    assert "# tags (estimated by at_baseline): " in table.stdout and "shared tags" in table.stdout


@pytest.fixture
def bad_files(tmp_path) -> dict[str, Path]:
    """Files that cannot be queries, and the word their error must contain."""
    (tmp_path / "text.wav").write_text("not audio\n")
    (tmp_path / "empty.flac").write_bytes(b"")
    sf.write(tmp_path / "silence.wav", np.zeros(44100 * 13), 44100)
    sf.write(tmp_path / "short.wav", sine(220.0, seconds=3.0), 44100)
    return {
        "not an audio file": tmp_path / "text.wav",
        "empty file": tmp_path / "empty.flac",
        "silence": tmp_path / "silence.wav",
        "shorter than one patch": tmp_path / "short.wav",
        "no such file": tmp_path / "missing.mp3",
    }


def test_recommend_reports_each_bad_file_and_still_answers_the_good_one(finished_run, bad_files):
    good = catalog_tracks(finished_run).path.iloc[0]
    run = trackrank(
        finished_run,
        "recommend",
        str(bad_files["not an audio file"]),
        good,
        *map(str, list(bad_files.values())[1:]),
        "--index",
        INDEX,
        "--top",
        "2",
    )
    assert run.returncode == 1
    headers = [line for line in run.stdout.splitlines() if line.startswith("# ") and not line.startswith("# tags")]
    assert headers == [f"# {good}"]
    lines = run.stderr.strip().splitlines()
    assert len(lines) == len(bad_files)
    for reason, path in bad_files.items():  # the paths refused before the model loads come first
        assert any(str(path) in line and reason in line for line in lines), (reason, lines)


def test_recommend_pads_a_short_file_when_asked(finished_run, bad_files):
    run = trackrank(
        finished_run, "recommend", str(bad_files["shorter than one patch"]), "--index", INDEX, "--pad", "--json"
    )
    assert run.returncode == 0, run.stderr
    assert len(json.loads(run.stdout)["results"][0]["neighbours"]) == 10


def test_recommend_refuses_a_model_the_index_was_not_built_with(finished_run, tmp_path):
    model = finished_run / "results" / "models" / "tl_online" / "model.pt"
    checkpoint = torch.load(model, weights_only=True)
    first = next(iter(checkpoint["model"]))
    checkpoint["model"][first] = checkpoint["model"][first] + 1.0
    torch.save(checkpoint, tmp_path / "other.pt")
    song = catalog_tracks(finished_run).path.iloc[0]
    run = trackrank(finished_run, "recommend", song, "--index", INDEX, "--model", str(tmp_path / "other.pt"))
    assert run.returncode == 2
    assert "is not the model index" in run.stderr and "rebuild the index" in run.stderr


def test_an_index_built_with_other_features_is_refused(finished_run, tmp_path):
    copy = tmp_path / "index"
    copy.mkdir()
    source = finished_run / "results" / "index" / "tl_online"
    for name in ("tracks.parquet", "vectors.faiss"):
        (copy / name).write_bytes((source / name).read_bytes())
    identity = json.loads((source / "identity.json").read_text())
    identity["features"]["hop_length"] = 512
    (copy / "identity.json").write_text(json.dumps(identity))
    with pytest.raises(IndexMismatch, match="hop_length"):
        CatalogIndex(copy)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_an_approximate_index_built_by_the_cli_still_finds_a_catalog_track_first(finished_run, kind, tmp_path):
    out = str(tmp_path / kind)  # outside the run's results/, which other tests compare
    built = trackrank(
        finished_run, "index", "--model", "results/models/tl_online/model.pt", "--kind", kind, "--out", out
    )
    assert built.returncode == 0, built.stderr
    identity = json.loads((Path(out) / "identity.json").read_text())
    assert identity["kind"] == kind and identity["catalog_dir"] == str((finished_run / "results/demo/audio").resolve())
    song = catalog_tracks(finished_run).iloc[3]
    run = trackrank(finished_run, "recommend", song.path, "--index", out, "--top", "1", "--json")
    assert json.loads(run.stdout)["results"][0]["neighbours"][0]["track_id"] == song.track_id


def test_the_cli_embeds_the_catalog_to_the_workflow_index_vectors(finished_run, tmp_path):
    out = tmp_path / "exact"  # the CLI reads the run's cache in its parts, as the index_part jobs did
    built = trackrank(finished_run, "index", "--model", "results/models/tl_online/model.pt", "--out", str(out))
    assert built.returncode == 0, built.stderr
    by_cli = pd.read_parquet(out / "tracks.parquet")
    by_workflow = pd.read_parquet(finished_run / "results" / "index" / "tl_online" / "tracks.parquet")
    assert by_cli.track_id.tolist() == by_workflow.track_id.tolist()
    np.testing.assert_array_equal(np.stack(by_cli.embedding), np.stack(by_workflow.embedding))


def test_a_track_without_tags_is_indexed_and_recommended_with_none(finished_run, tmp_path):
    """An untagged catalog track (``untagged.csv``: no row in tags.parquet) is in the index and answers
    queries like any other, with no tags to explain it."""
    tags = pd.read_parquet(finished_run / "results" / "catalog" / "tags.parquet")
    song = catalog_tracks(finished_run).iloc[2]
    tags[tags.track_id != song.track_id].to_parquet(tmp_path / "tags.parquet")
    out = tmp_path / "index"
    built = trackrank(
        finished_run,
        *("index", "--model", "results/models/tl_online/model.pt", "--tags", str(tmp_path / "tags.parquet")),
        *("--out", str(out)),
    )
    assert built.returncode == 0, built.stderr
    indexed = pd.read_parquet(out / "tracks.parquet").set_index("track_id")
    assert list(indexed.at[song.track_id, "tags"]) == []
    assert indexed.tags.map(len).drop(song.track_id).gt(0).mean() > 0.9
    run = trackrank(finished_run, "recommend", song.path, "--index", str(out), "--top", "2", "--json")
    assert run.returncode == 0, run.stderr
    first = json.loads(run.stdout)["results"][0]["neighbours"][0]
    assert first["track_id"] == song.track_id and first["tags"] == [] and first["shared_tags"] == []


def test_the_exact_index_returns_the_brute_force_neighbours():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(500, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    _, rows = new_faiss_index(vectors).search(vectors[:20], 5)
    expected = np.argsort(-(vectors[:20] @ vectors.T), axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(rows, expected)


@pytest.fixture(scope="module")
def client(finished_run) -> TestClient:
    app = create_app(Recommender(finished_run / INDEX), max_upload_bytes=8 * 2**20, allowed_hosts=["testserver"])
    return TestClient(app)


def upload(client: TestClient, path: Path, name: str | None = None):
    with open(path, "rb") as stream:
        return client.post("/recommend", files={"file": (name or path.name, stream)})


def test_the_service_recommends_for_an_uploaded_catalog_track(client, finished_run):
    song = catalog_tracks(finished_run).iloc[1]
    response = upload(client, Path(song.path))
    assert response.status_code == 200
    result = response.json()["results"][0]
    assert result["file"] == Path(song.path).name and len(result["neighbours"]) == 10
    assert result["neighbours"][0]["track_id"] == song.track_id


def test_the_service_answers_a_bad_upload_with_a_4xx_naming_it(client, bad_files, tmp_path):
    response = upload(client, bad_files["not an audio file"], name="song.wav")
    assert response.status_code == 422 and "song.wav" in response.json()["detail"]
    sf.write(tmp_path / "big.wav", np.zeros(44100 * 100), 44100)  # 8.4 MiB > 8 MiB
    assert upload(client, tmp_path / "big.wav").status_code == 413


def test_the_service_lists_the_neighbours_of_a_catalog_track_without_itself(client, finished_run):
    track_id = catalog_tracks(finished_run).track_id.iloc[2]
    response = client.get(f"/tracks/{track_id}/similar", params={"top": 4})
    assert response.status_code == 200
    neighbours = response.json()["results"][0]["neighbours"]
    assert len(neighbours) == 4 and track_id not in [n["track_id"] for n in neighbours]
    assert client.get("/tracks/no-such-track/similar").status_code == 404


@pytest.mark.parametrize("track_id", ["..%2F..%2F..%2Fetc%2Fpasswd", "%2E%2E%2Ftags.csv", "%2Fetc%2Fpasswd"])
def test_the_service_never_serves_a_path_named_in_a_track_id(client, track_id):
    assert client.get(f"/audio/{track_id}").status_code == 404
    assert client.get(f"/tracks/{track_id}/similar").status_code == 404


def test_the_service_streams_catalog_audio_and_refuses_audio_outside_the_catalog(client, finished_run, tmp_path):
    song = catalog_tracks(finished_run).iloc[0]
    response = client.get(f"/audio/{song.track_id}")
    assert response.status_code == 200 and response.content == Path(song.path).read_bytes()
    source, copy = finished_run / "results" / "index" / "tl_online", tmp_path / "index"
    copy.mkdir()
    for name in ("vectors.faiss", "identity.json"):
        (copy / name).write_bytes((source / name).read_bytes())
    tracks = pd.read_parquet(source / "tracks.parquet")
    outside = tmp_path / "outside.flac"
    outside.write_bytes(Path(song.path).read_bytes())
    tracks.loc[0, "path"] = str(Path(song.path).parent / ".." / ".." / ".." / outside.relative_to("/"))
    tracks.to_parquet(copy / "tracks.parquet")
    tampered = TestClient(create_app(Recommender(copy), allowed_hosts=["testserver"]))
    assert tampered.get(f"/audio/{tracks.track_id[0]}").status_code == 403
    assert tampered.get(f"/audio/{tracks.track_id[1]}").status_code == 200


def test_the_service_answers_concurrent_uploads(client, finished_run):
    songs = catalog_tracks(finished_run).head(4)
    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda path: upload(client, Path(path)), songs.path))
    assert [r.status_code for r in responses] == [200] * 4
    assert [r.json()["results"][0]["neighbours"][0]["track_id"] for r in responses] == songs.track_id.tolist()
