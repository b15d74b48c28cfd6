"""The index embeds a catalog file exactly as a query of that file is embedded, on tracks long enough
for the patch placement to matter (several patches each), without running the workflow."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import torch

from conftest import sine
from trackrank.coldstart.index import build_index
from trackrank.coldstart.recommend import Recommender, query_cqt
from trackrank.data.feature_cache import CacheFiles, build_cache
from trackrank.data.features import PARQUET_OPTIONS, PATCH_FRAMES, even_patches, shard_table, track_cqt
from trackrank.learn.models import build_model
from trackrank.learn.settings import TrainSettings


def test_even_patches_start_at_the_start_end_at_the_end_and_spread_evenly_between():
    n_frames = 10 * PATCH_FRAMES
    cqt = np.repeat(np.arange(n_frames, dtype=np.float32)[:, None], 96, axis=1)  # each frame holds its index
    patches = even_patches(cqt, 4)
    first_frames = patches[:, 0, 0].tolist()
    assert first_frames == [0, 1536, 3072, 4608]  # (n_frames - PATCH_FRAMES) / 3 apart
    assert patches[-1, 0, -1] == n_frames - 1
    assert all(np.array_equal(p[0], np.arange(s, s + PATCH_FRAMES)) for p, s in zip(patches, first_frames))


@pytest.fixture(scope="module")
def long_index(tmp_path_factory):
    """An exact index of three 40 s tracks (3+ patches each) whose sound changes along the track, built
    with a TL network at its initialisation; its checkpoint is a trained one's shape."""
    root = tmp_path_factory.mktemp("long_index")
    ids, paths, matrices = [], [], []
    for i in range(3):
        audio = np.concatenate([sine(110.0 * (i + 1) * (j + 1), seconds=10.0) for j in range(4)])
        path = root / f"t{i}.wav"
        sf.write(path, audio, 44100)
        ids.append(f"t{i}")
        paths.append(str(path))
        matrices.append(track_cqt(path).astype(np.float16))
    pq.write_table(shard_table(ids, matrices), root / "shard-000.parquet", **PARQUET_OPTIONS)
    cache = CacheFiles.in_folder(root / "cache")
    build_cache([root / "shard-000.parquet"], cache)
    pd.DataFrame({"track_id": ids, "path": paths, "artist": ["a", "b", "c"], "split": "train"}).to_parquet(
        root / "tracks.parquet"
    )
    settings = TrainSettings(system="tl_distance", width=1 / 32, dim=8)
    model = build_model("triplet", dim=8, width=settings.width, seed=0)
    checkpoint = {"model": model.state_dict(), "settings": dataclasses.asdict(settings), "tags": ["x"], "epoch": 0}
    torch.save(checkpoint, root / "model.pt")
    folder = root / "index"
    build_index(
        model=root / "model.pt",
        cache=cache,
        tracks=root / "tracks.parquet",
        catalog_dir=root,
        out_tracks=folder / "tracks.parquet",
        out_vectors=folder / "vectors.faiss",
        out_identity=folder / "identity.json",
        n_patches=5,
        device="cpu",
    )
    return folder, paths


def test_a_catalog_file_queried_embeds_to_its_own_indexed_vector(long_index):
    folder, paths = long_index
    recommender = Recommender(folder, device="cpu")
    assert recommender.n_patches == 5  # the index's own patch count, not the CLI's default
    indexed = pd.read_parquet(folder / "tracks.parquet").set_index("track_id")
    for i, path in enumerate(paths):
        queried = recommender.embed(query_cqt(path))[0]
        np.testing.assert_allclose(queried, indexed.loc[f"t{i}", "embedding"], atol=1e-5)
        assert recommender.recommend(path, k=1)[0].track_id == f"t{i}"
