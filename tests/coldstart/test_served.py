"""What the service serves: the embedding chosen on the val split (the test split only reports it), and the
auto-tagger's trunk as an index like any TL system's."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from builders import checkpoint, index_small_catalog
from trackrank import cli
from trackrank.coldstart import grow
from trackrank.coldstart.recommend import Recommender
from trackrank.coldstart.served import choose_served, write_default
from trackrank.data.features import even_patches, track_cqt
from trackrank.errors import ConfigError
from trackrank.learn.models import build_model
from trackrank.learn.settings import TrainSettings


def metrics_file(folder: Path, name: str, ndcg: float, half: float = 1.0) -> Path:
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"system": name, "ndcg@20": {"mean": ndcg, "ci95": half}, "map@20": {"mean": 0.0}}))
    return path


@pytest.fixture
def split_metrics(tmp_path) -> tuple[dict, dict]:
    """Val and test metrics whose orders disagree: val ranks tl_online first, test at_trunk."""
    (tmp_path / "val").mkdir()
    (tmp_path / "test").mkdir()
    val = {
        s: metrics_file(tmp_path / "val", s, v)
        for s, v in (("tl_distance", 30.0), ("tl_online", 41.0), ("at_trunk", 40.0))
    }
    test = {
        s: metrics_file(tmp_path / "test", s, v)
        for s, v in (("tl_distance", 33.0), ("tl_online", 35.0), ("at_trunk", 52.0))
    }
    return val, test


def test_best_is_chosen_by_the_val_metric_when_the_test_split_disagrees(split_metrics, tmp_path):
    val, test = split_metrics
    assert choose_served(val, metric="ndcg@20") == "tl_online"
    chosen = write_default(val, test, tmp_path / "default.json", tmp_path / "served.md", metric="ndcg@20")
    record = json.loads((tmp_path / "default.json").read_text())
    assert chosen == record["system"] == "tl_online"
    assert record["val"]["mean"] == 41.0 and record["test"]["mean"] == 35.0
    served = (tmp_path / "served.md").read_text()
    assert "**tl_online**" in served and "| tl_online | 41.0 ± 1.0 | 35.0 ± 1.0 |" in served


def test_the_choice_reads_no_test_metric(split_metrics, tmp_path):
    """Only the served system's test figure is read, after the choice: the others' test files may be absent."""
    val, test = split_metrics
    for name in ("tl_distance", "at_trunk"):
        test[name].unlink()
    assert write_default(val, test, tmp_path / "default.json", metric="ndcg@20") == "tl_online"


def test_a_named_system_serves_whatever_its_metrics(split_metrics, tmp_path):
    val, test = split_metrics
    assert write_default(val, test, tmp_path / "default.json", system="tl_distance", metric="ndcg@20") == "tl_distance"
    assert json.loads((tmp_path / "default.json").read_text())["chosen_by"] == "index.system"
    with pytest.raises(ConfigError, match="index.system 'tl_neighbors': not an indexed system"):
        choose_served(val, system="tl_neighbors")


@pytest.fixture(scope="module")
def trunk_index(small_index, tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """The small index's catalog indexed by an auto-tagger's trunk: (index folder, the tagger's model.pt,
    the catalog's audio files)."""
    folder, paths = small_index
    root = folder.parent
    work = tmp_path_factory.mktemp("trunk_index")
    models = work / "tagger"  # not models/at_baseline: the index finds its tagger by its own model
    models.mkdir(parents=True)
    settings = TrainSettings(system="at_baseline", width=1 / 32, dim=8)
    tagger = build_model("fcn5_tagger", n_tags=3, width=settings.width, seed=0)
    torch.save(checkpoint(tagger, tags=["rock", "jazz", "calm"], **dataclasses.asdict(settings)), models / "model.pt")
    out = index_small_catalog(root, models / "model.pt", work / "index" / "at_trunk")
    return out, models / "model.pt", paths


def test_the_taggers_trunk_is_indexed_as_at_trunk(trunk_index):
    folder, model, paths = trunk_index
    recommender = Recommender(folder, device="cpu", tagger=None)
    assert recommender.index.identity["system"] == "at_trunk"
    tagger = build_model("fcn5_tagger", n_tags=3, width=1 / 32)
    tagger.load_state_dict(torch.load(model, weights_only=True)["model"])
    tagger.eval()
    with torch.no_grad():
        trunk = tagger.embedding(
            torch.from_numpy(even_patches(track_cqt(paths[1]).astype(np.float16), 5).astype(np.float32))
        )
    expected = trunk.mean(0).numpy()
    np.testing.assert_allclose(recommender.index.vector("t1"), expected / np.linalg.norm(expected), atol=1e-4)


def test_an_at_trunk_index_recommends_and_explains_with_its_own_taggers_estimate(trunk_index):
    folder, _, paths = trunk_index
    recommender = Recommender(folder, device="cpu")
    found = recommender.recommend(paths[2], k=3)
    assert found.neighbours[0].track_id == "t2" and found.neighbours[0].distance < 1e-2
    assert found.tags_from == "estimated by at_baseline"
    assert str(recommender.tagger.path) == recommender.index.identity["model_path"]


def test_an_at_trunk_index_grows_and_shrinks(trunk_index, tmp_path):
    folder, _, paths = trunk_index
    copy = tmp_path / "at_trunk"
    shutil.copytree(folder, copy)
    fresh = shutil.copy(paths[0], tmp_path / "fresh.wav")  # t0's audio under a new id
    added, failed = grow.add_tracks(copy, [str(fresh)], ids_csv=None, device="cpu")
    assert failed == [] and added == ["fresh"]
    recommender = Recommender(copy, device="cpu", tagger=None)
    assert recommender.index.identity["n_tracks"] == 4
    assert {n.track_id for n in recommender.recommend(fresh, k=2).neighbours} == {"t0", "fresh"}
    assert cli.main(["index", "remove", "fresh", "--index", str(copy)]) == 0
    assert Recommender(copy, device="cpu", tagger=None).index.identity["n_tracks"] == 3


def test_the_cli_names_a_taggers_index_at_trunk(trunk_index, small_index, tmp_path, monkeypatch):
    _, model, _ = trunk_index
    root = small_index[0].parent
    monkeypatch.chdir(tmp_path)
    args = [
        "index",
        "--model",
        str(model),
        "--cache-dir",
        str(root / "cache"),
        "--tracks",
        str(root / "tracks.parquet"),
    ]
    assert cli.main([*args, "--n-patches", "2", "--device", "cpu"]) == 0
    assert (
        json.loads((tmp_path / "results" / "index" / "at_trunk" / "identity.json").read_text())["system"] == "at_trunk"
    )
