"""The patch cache in parts, one per feature shard, read as one cache."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from trackrank.data.feature_cache import (
    CacheFiles,
    PatchCache,
    build_cache,
    cache_in_folder,
    cache_parts,
    cached_track_ids,
)
from trackrank.data.features import PARQUET_OPTIONS, shard_table


def write_shards(folder, lengths: list[list[int]]) -> list:
    """Shards of random CQT frames, shard k holding tracks of ``lengths[k]`` frames (ids s{k}t{i})."""
    rng = np.random.default_rng(3)
    shards = []
    for k, shard_lengths in enumerate(lengths):
        ids = [f"s{k}t{i}" for i in range(len(shard_lengths))]
        matrices = [rng.normal(-40, 15, (n, 96)).astype(np.float16) for n in shard_lengths]
        path = folder / f"shard-{k:03d}.parquet"
        pq.write_table(shard_table(ids, matrices), path, **PARQUET_OPTIONS)
        shards.append(path)
    return shards


@pytest.fixture
def shards(tmp_path):
    return write_shards(tmp_path, [[600, 530, 700], [512, 900], [650]])


def one_part_per_shard(shards, folder) -> list[CacheFiles]:
    folder.mkdir()
    parts = cache_parts(
        [folder / f"shard-{k:03d}.index.parquet" for k in range(len(shards))],
        [folder / f"shard-{k:03d}.f16.npy" for k in range(len(shards))],
    )
    for shard, part in zip(shards, parts):
        build_cache([shard], part)
    return parts


def test_a_cache_in_parts_reads_as_the_cache_of_all_shards_in_one(shards, tmp_path):
    whole = CacheFiles.in_folder(tmp_path / "whole")
    build_cache(shards, whole)
    one, parted = PatchCache(whole), PatchCache(one_part_per_shard(shards, tmp_path / "parts"))
    assert parted.track_ids == one.track_ids == ["s0t0", "s0t1", "s0t2", "s1t0", "s1t1", "s2t0"]
    for track in range(len(one.track_ids)):
        np.testing.assert_array_equal(parted.frames(track), one.frames(track))
    tracks = np.array([5, 0, 3, 3, 4, 1, 2])
    np.testing.assert_array_equal(
        parted.patches(tracks, np.random.default_rng(9)), one.patches(tracks, np.random.default_rng(9))
    )


def test_a_track_in_two_parts_is_refused_naming_it(tmp_path):
    shards = write_shards(tmp_path, [[520], [530]])
    shards[1].rename(tmp_path / "copy.parquet")
    pq.write_table(pq.read_table(shards[0]), shards[1])  # shard 1 now holds shard 0's track
    parts = one_part_per_shard(shards, tmp_path / "parts")
    with pytest.raises(ValueError, match="'s0t0' is in more than one cache part"):
        PatchCache(parts)


def test_a_run_folder_gives_its_parts_in_shard_order_or_its_one_file(shards, tmp_path):
    parts = one_part_per_shard(shards, tmp_path / "parts")
    assert cache_in_folder(tmp_path / "parts") == parts
    assert cached_track_ids([p.index for p in parts]) == PatchCache(parts).track_ids
    build_cache(shards, CacheFiles.in_folder(tmp_path / "older"))
    assert cache_in_folder(tmp_path / "older") == [CacheFiles.in_folder(tmp_path / "older")]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no feature cache in"):
        cache_in_folder(tmp_path / "empty")
    with pytest.raises(ValueError, match="one data file per index file"):
        cache_parts([parts[0].index], [])
