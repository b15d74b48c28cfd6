"""The index embeds a catalog file exactly as a query of that file is embedded, on tracks long enough
for the patch placement to matter (several patches each), without running the workflow."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from trackrank.coldstart.explain import strong_tags
from trackrank.coldstart.index import build_index, embed_catalog_part, read_index_parts
from trackrank.coldstart.recommend import Recommender, query_cqt
from trackrank.data.feature_cache import CacheFiles, build_cache
from trackrank.data.features import PARQUET_OPTIONS, PATCH_FRAMES, even_patches
from trackrank.errors import IndexMismatch


def test_even_patches_start_at_the_start_end_at_the_end_and_spread_evenly_between():
    n_frames = 10 * PATCH_FRAMES
    cqt = np.repeat(np.arange(n_frames, dtype=np.float32)[:, None], 96, axis=1)  # each frame holds its index
    patches = even_patches(cqt, 4)
    first_frames = patches[:, 0, 0].tolist()
    assert first_frames == [0, 1536, 3072, 4608]  # (n_frames - PATCH_FRAMES) / 3 apart
    assert patches[-1, 0, -1] == n_frames - 1
    assert all(np.array_equal(p[0], np.arange(s, s + PATCH_FRAMES)) for p, s in zip(patches, first_frames))


def test_a_catalog_file_queried_embeds_to_its_own_indexed_vector(small_index):
    folder, paths = small_index
    recommender = Recommender(folder, device="cpu")
    assert recommender.n_patches == 5  # the index's own patch count, not the CLI's default
    indexed = pd.read_parquet(folder / "tracks.parquet").set_index("track_id")
    for i, path in enumerate(paths):
        queried = recommender.embed(query_cqt(path))[0]
        np.testing.assert_allclose(queried, indexed.loc[f"t{i}", "embedding"], atol=1e-5)
        assert recommender.recommend(path, k=1).neighbours[0].track_id == f"t{i}"


def test_strong_tags_are_those_at_the_threshold_most_likely_first():
    likelihoods = pd.DataFrame({"rock": [0.9, 0.5], "jazz": [0.95, 0.49], "calm": [np.nan, 0.5]})
    assert strong_tags(likelihoods, 0.5) == [["jazz", "rock"], ["rock", "calm"]]


def test_a_catalog_track_lists_neighbours_with_their_catalog_tags_and_the_ones_it_shares(small_index):
    recommender = Recommender(small_index[0], device="cpu", tagger=None)
    found = recommender.similar("t2", k=2)
    assert found.query_tags == {"calm": None, "jazz": None, "rock": None} and found.tags_from == "catalog"
    by_id = {n.track_id: n for n in found.neighbours}
    assert by_id["t0"].tags == ["rock", "calm"] and by_id["t0"].shared_tags == ["rock", "calm"]
    assert by_id["t1"].tags == ["jazz"] and by_id["t1"].shared_tags == ["jazz"]
    file_query = recommender.recommend(small_index[1][1], k=1)
    assert file_query.tags_from is None and file_query.neighbours[0].shared_tags == []


def test_an_index_merged_from_parts_equals_one_embedded_whole(small_index, tmp_path):
    folder, _ = small_index
    root = folder.parent
    shard = pq.read_table(root / "shard-000.parquet")
    parts = []
    for k, rows in enumerate([[0, 2], [1], []]):  # t0 and t2 in one feature shard, t1 in another, one empty
        pq.write_table(shard.take(pa.array(rows, pa.int64())), tmp_path / f"shard-{k}.parquet", **PARQUET_OPTIONS)
        parts.append(CacheFiles(tmp_path / f"cache-{k}.index.parquet", tmp_path / f"cache-{k}.f16.npy"))
        build_cache([tmp_path / f"shard-{k}.parquet"], parts[-1])
    common = dict(model=root / "model.pt", tracks=root / "tracks.parquet", n_patches=5)
    embedded = [
        embed_catalog_part(cache=part, output=tmp_path / f"part-{k}.parquet", device="cpu", **common)
        for k, part in enumerate(parts)
    ]
    assert [table.track_id.tolist() for table in embedded] == [["t0", "t2"], ["t1"], []]
    built = {}
    for name, source in {"parts": {"parts": [tmp_path / f"part-{k}.parquet" for k in range(3)]},
                         "cache": {"cache": parts, "device": "cpu"}}.items():  # fmt: skip
        out = tmp_path / name
        build_index(out_tracks=out / "t.parquet", out_vectors=out / "v.faiss", out_identity=out / "i.json",
                    catalog_dir=root, **common, **source)  # fmt: skip
        built[name] = pd.read_parquet(out / "t.parquet")
    whole = pd.read_parquet(folder / "tracks.parquet")  # the fixture's: the three tracks embedded in one batch
    for table in built.values():
        assert table.track_id.tolist() == whole.track_id.tolist() == ["t0", "t1", "t2"]  # catalog order
        np.testing.assert_array_equal(np.stack(table.embedding), np.stack(built["parts"].embedding))
        # batched differently: equal bits on the machines seen so far, float rounding at most by contract
        np.testing.assert_allclose(np.stack(table.embedding), np.stack(whole.embedding), rtol=0, atol=1e-6)
    with pytest.raises(IndexMismatch, match="'t0' is in more than one index part"):
        read_index_parts([tmp_path / "part-0.parquet", tmp_path / "part-0.parquet"])
    with pytest.raises(ValueError, match="one of the two"):
        build_index(out_tracks=tmp_path / "x", out_vectors=tmp_path / "y", out_identity=tmp_path / "z",
                    catalog_dir=root, **common)  # fmt: skip
