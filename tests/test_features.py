"""CQT features and their Parquet shards."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from conftest import sine
from trackrank.audio import load_audio
from trackrank.feature_store import FeatureStore, random_patch
from trackrank.features import (
    N_BINS,
    PARQUET_OPTIONS,
    PATCH_FRAMES,
    cqt_db,
    extract_shard,
    pad_to_patch,
    shard_of,
    shard_table,
    shard_tracks,
)

A4_BIN = 45  # 440 Hz is 45 semitones above fmin = 32.70 Hz (C1)


def test_cqt_has_one_row_per_hop_and_96_bins():
    y = sine(seconds=13.0)
    cqt = cqt_db(y)
    assert cqt.shape == (1 + len(y) // 1024, N_BINS)
    assert cqt.dtype == np.float32


def test_a_sine_lands_in_its_bin():
    cqt = cqt_db(sine(440.0, seconds=5.0))
    assert np.bincount(cqt[20:-20].argmax(axis=1)).argmax() == A4_BIN
    low = cqt_db(sine(65.41, seconds=5.0))  # C2: one octave above fmin
    assert np.bincount(low[20:-20].argmax(axis=1)).argmax() == 12


def test_db_range_from_silence_floor_to_a_loud_sine():
    silence = cqt_db(np.zeros(44100 * 3))
    assert np.allclose(silence, -100.0)
    loud = cqt_db(sine(440.0, seconds=3.0, amplitude=1.0))
    assert -100.0 <= loud.min() and 20.0 < loud.max() < 30.0  # full scale peaks near +26 dB
    assert loud[:, A4_BIN].mean() - np.median(loud) > 40.0


def test_audio_is_resampled_to_44100_mono(tmp_path):
    path = tmp_path / "stereo_22k.flac"
    sf.write(path, sine(440.0, seconds=4.0, sr=22050, channels=2), 22050)
    y = load_audio(path)
    assert y.ndim == 1 and len(y) == pytest.approx(4.0 * 44100, abs=2)
    assert np.bincount(cqt_db(y)[20:-20].argmax(axis=1)).argmax() == A4_BIN


def test_shard_round_trip_keeps_every_frame(tmp_path):
    rng = np.random.default_rng(0)
    matrices = [rng.uniform(-100, 10, size=(n, N_BINS)).astype(np.float16) for n in (600, 512, 900)]
    pq.write_table(shard_table(["a", "b", "c"], matrices), tmp_path / "shard-000.parquet", **PARQUET_OPTIONS)
    schema = pq.read_schema(tmp_path / "shard-000.parquet")
    assert schema.field("cqt").type == pa.list_(pa.list_(pa.float16(), N_BINS))
    assert schema.field("track_id").type == pa.string()
    store = FeatureStore(tmp_path)
    assert store.track_ids == ["a", "b", "c"]
    for track_id, matrix in zip("abc", matrices):
        np.testing.assert_array_equal(store.cqt(track_id), matrix.astype(np.float32))
    with pytest.raises(KeyError, match="'zzz' is in no feature shard"):
        store.cqt("zzz")


def test_random_patch_is_a_96_by_512_window_of_the_track():
    cqt = np.arange(700 * N_BINS, dtype=np.float32).reshape(700, N_BINS)
    patch = random_patch(cqt, np.random.default_rng(1))
    assert patch.shape == (N_BINS, PATCH_FRAMES)
    start = int(patch[0, 0] // N_BINS)
    np.testing.assert_array_equal(patch, cqt[start : start + PATCH_FRAMES].T)


def test_a_short_track_is_looped_to_one_patch():
    cqt = np.arange(100 * N_BINS, dtype=np.float32).reshape(100, N_BINS)
    padded = pad_to_patch(cqt)
    assert padded.shape == (PATCH_FRAMES, N_BINS)
    np.testing.assert_array_equal(padded[100:200], cqt)


def test_a_shard_skips_an_undecodable_track_and_keeps_the_rest(tmp_path):
    for name in ("good1", "good2"):
        sf.write(tmp_path / f"{name}.wav", sine(seconds=12.5), 44100)
    sf.write(tmp_path / "short.wav", sine(seconds=3.0), 44100)
    (tmp_path / "bad.wav").write_bytes(b"RIFF" + b"\0" * 64)
    tracks = pd.DataFrame(
        {
            "track_id": ["good1", "bad", "short", "good2"],
            "path": [str(tmp_path / f"{n}.wav") for n in ("good1", "bad", "short", "good2")],
        }
    )
    rejected = extract_shard(tracks, tmp_path / "shards" / "shard-000.parquet", workers=2)
    assert list(rejected["track_id"]) == ["bad", "short"]
    assert "cannot decode" in rejected["reason"][0] and "bad.wav" in rejected["reason"][0]
    assert "shorter than one patch" in rejected["reason"][1]
    table = pq.read_table(tmp_path / "shards" / "shard-000.parquet")
    assert table.column("track_id").to_pylist() == ["good1", "good2"]
    assert table.column("n_frames").to_pylist() == [1 + int(12.5 * 44100) // 1024] * 2

    padded = extract_shard(tracks[tracks.track_id == "short"], tmp_path / "p.parquet", short_tracks="pad")
    assert padded.empty
    assert pq.read_table(tmp_path / "p.parquet").column("n_frames").to_pylist() == [PATCH_FRAMES]


def test_shards_partition_the_tracks_stably():
    tracks = pd.DataFrame({"track_id": [f"t{i}" for i in range(200)], "path": "x"})
    parts = [shard_tracks(tracks, s, 4) for s in range(4)]
    assert sorted(sum((list(p.track_id) for p in parts), [])) == sorted(tracks.track_id)
    assert all(len(p) > 20 for p in parts)
    assert shard_of("t17", 4) == shard_of("t17", 4)
    grown = pd.concat([tracks, pd.DataFrame({"track_id": ["new"], "path": "x"})])
    changed = [s for s in range(4) if list(shard_tracks(grown, s, 4).track_id) != list(parts[s].track_id)]
    assert changed == [shard_of("new", 4)]
