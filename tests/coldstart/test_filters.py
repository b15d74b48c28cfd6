"""Filters inside the search: k results still come back when k pass, and every one passes."""

from __future__ import annotations

import json
import shutil

import faiss
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from trackrank.coldstart.faiss_index import new_faiss_index
from trackrank.coldstart.filters import Filters
from trackrank.coldstart.recommend import Recommender
from trackrank.coldstart.service import create_app
from trackrank.errors import QueryError

# the small index: t0 (artist a; rock, calm), t1 (artist a; jazz), t2 (artist b; calm, jazz, rock)


@pytest.fixture(scope="module")
def recommender(small_index) -> Recommender:
    return Recommender(small_index[0], device="cpu", tagger=None)


def ids(found) -> list[str]:
    return [n.track_id for n in found.neighbours]


def test_where_keeps_only_tracks_with_the_tag_and_still_fills_k(recommender, small_index):
    found = recommender.recommend(small_index[1][0], k=2, filters=Filters(where=("jazz",)))
    assert sorted(ids(found)) == ["t1", "t2"]  # t0, the file itself, has no jazz: the two that do come back
    assert ids(recommender.recommend(small_index[1][0], k=3, filters=Filters(where=("Genre=rock", "Mood=calm")))) in (
        ["t0", "t2"],
        ["t2", "t0"],
    )


def test_exclude_leaves_out_tracks_with_the_tag(recommender, small_index):
    assert ids(recommender.recommend(small_index[1][2], k=3, filters=Filters(exclude=("rock",)))) == ["t1"]


def test_at_most_n_per_artist_fetches_further_to_fill_k(recommender, small_index):
    found = recommender.recommend(small_index[1][0], k=3, filters=Filters(max_per_artist=1))
    artists = [n.artist for n in found.neighbours]
    assert len(found.neighbours) == 2 and sorted(artists) == ["a", "b"] and found.neighbours[0].track_id == "t0"


def test_a_tag_the_catalog_lacks_or_in_another_category_is_refused_naming_it(recommender, small_index):
    with pytest.raises(QueryError, match="no tag 'metal' in the catalog"):
        recommender.recommend(small_index[1][0], filters=Filters(where=("metal",)))
    with pytest.raises(QueryError, match="tag 'jazz' is in category 'Genre', not 'Mood'"):
        recommender.recommend(small_index[1][0], filters=Filters(exclude=("Mood=jazz",)))


def test_similar_over_http_can_leave_out_the_tracks_own_artist(recommender):
    client = TestClient(create_app(recommender, allowed_hosts=["testserver"]))
    every = client.get("/tracks/t0/similar", params={"top": 2}).json()["results"][0]["neighbours"]
    assert sorted(n["track_id"] for n in every) == ["t1", "t2"]
    others = client.get("/tracks/t0/similar", params={"top": 2, "exclude_own_artist": "true"}).json()
    assert [n["track_id"] for n in others["results"][0]["neighbours"]] == ["t2"]
    tagged = client.get("/tracks/t0/similar", params=[("top", "2"), ("where", "jazz"), ("exclude", "rock")]).json()
    assert [n["track_id"] for n in tagged["results"][0]["neighbours"]] == ["t1"]
    assert client.get("/tracks/t0/similar", params={"where": "metal"}).status_code == 422


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_filters_hold_in_an_approximate_index_too(small_index, kind, tmp_path):
    folder = tmp_path / kind
    shutil.copytree(small_index[0], folder)
    vectors = np.stack(pd.read_parquet(folder / "tracks.parquet").embedding).astype(np.float32)
    faiss.write_index(new_faiss_index(vectors, kind=kind), str(folder / "vectors.faiss"))
    identity = json.loads((folder / "identity.json").read_text())
    (folder / "identity.json").write_text(json.dumps({**identity, "kind": kind}))
    recommender = Recommender(folder, device="cpu", tagger=None)
    assert ids(recommender.recommend(small_index[1][2], k=3, filters=Filters(exclude=("rock",)))) == ["t1"]
    assert sorted(ids(recommender.recommend(small_index[1][0], k=2, filters=Filters(where=("jazz",))))) == ["t1", "t2"]
