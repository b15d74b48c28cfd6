"""CQT features and their Parquet shards."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from conftest import sine
from trackrank.data.audio import audio_blocks, load_audio
from trackrank.data.feature_store import FeatureStore, random_patch
from trackrank.data.features import (
    N_BINS,
    PARQUET_OPTIONS,
    PATCH_FRAMES,
    cqt_db,
    cqt_db_stream,
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
    parts = [shard_tracks(tracks, s, n_shards=4) for s in range(4)]
    assert sorted(sum((list(p.track_id) for p in parts), [])) == sorted(tracks.track_id)
    assert all(len(p) > 20 for p in parts)
    assert shard_of("t17", 4) == shard_of("t17", 4)
    grown = pd.concat([tracks, pd.DataFrame({"track_id": ["new"], "path": "x"})])
    changed = [s for s in range(4) if list(shard_tracks(grown, s, n_shards=4).track_id) != list(parts[s].track_id)]
    assert changed == [shard_of("new", 4)]


def test_a_long_track_in_chunks_gives_the_one_shot_cqt():
    sr, seconds = 44100, 40.0
    t = np.arange(int(seconds * sr)) / sr
    noise = np.random.default_rng(0).standard_normal(len(t))
    y = (0.3 * np.sin(2 * np.pi * (50 + 20 * t) * t) + 0.05 * noise).astype(np.float32)
    blocks = np.split(y, [123_457, 600_000, 1_500_001])  # block edges unrelated to the chunks'
    chunked = cqt_db_stream(blocks, chunk_frames=256)  # 7 chunks of ~6 s
    one_shot = cqt_db(y)
    assert chunked.shape == one_shot.shape == (1 + len(y) // 1024, N_BINS)
    error = np.abs(chunked - one_shot)
    assert error.max() < 0.02 and np.median(error) < 1e-4  # float32 rounding, in dB
    assert np.mean(chunked.astype(np.float16) == one_shot.astype(np.float16)) > 0.995  # the stored precision


@pytest.mark.parametrize("sr, channels", [(8000, 1), (96000, 2), (22050, 6)])
def test_audio_decoded_in_blocks_equals_librosa_load(tmp_path, sr, channels):
    import librosa

    sf.write(tmp_path / "x.flac", sine(330.0, seconds=4.0, sr=sr, channels=channels), sr)
    expected, _ = librosa.load(tmp_path / "x.flac", sr=44100, mono=True, res_type="soxr_hq")
    blocks = list(audio_blocks(tmp_path / "x.flac", block_s=1.0))
    assert len(blocks) > 3
    assert np.array_equal(np.concatenate(blocks), expected)


def truncated(folder, name: str, fmt: str) -> str:
    """A real encoded file cut in half, as an interrupted copy leaves it."""
    if fmt.upper() not in sf.available_formats():
        pytest.skip(f"this libsndfile ({sf.__libsndfile_version__}) cannot write {fmt}")
    path = folder / name
    sf.write(path, sine(seconds=20.0), 44100, format=fmt.upper())
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return str(path)


#: Files a shard must skip, and what their reason says.
BAD_AUDIO = {
    "truncated flac": (lambda f: truncated(f, "cut.flac", "flac"), "cut.flac': libsndfile: Error : flac decoder lost"),
    "truncated mp3": (lambda f: truncated(f, "cut.mp3", "mp3"), "cut.mp3' is truncated: its header announces 20.00 s"),
    "digital silence": (
        lambda f: sf.write(f / "quiet.wav", np.zeros(13 * 8000), 8000) or str(f / "quiet.wav"),
        "quiet.wav' is digital silence",
    ),
}


@pytest.mark.parametrize("case", BAD_AUDIO)
def test_a_shard_skips_a_damaged_or_silent_file_naming_it_and_keeps_the_others(tmp_path, case):
    make, reason = BAD_AUDIO[case]
    bad = make(tmp_path)
    sf.write(tmp_path / "good.wav", sine(seconds=12.5), 44100)
    tracks = pd.DataFrame({"track_id": ["bad", "good"], "path": [bad, str(tmp_path / "good.wav")]})
    rejected = extract_shard(tracks, tmp_path / "shard-000.parquet")
    assert list(rejected["track_id"]) == ["bad"] and reason in rejected["reason"][0]
    assert FeatureStore([tmp_path / "shard-000.parquet"]).track_ids == ["good"]


def test_any_rate_channel_count_and_file_name_becomes_features(tmp_path):
    files = {
        "8k": ("8 kHz.wav", 8000, 1),
        "96k": ("96 kHz.flac", 96000, 2),
        "six": ("5.1 surround.flac", 48000, 6),
        "unicode": ("Björk – Jóga (live) 日本.ogg", 44100, 1),
    }
    for name, sr, channels in files.values():
        sf.write(tmp_path / name, sine(440.0, seconds=12.5, sr=sr, channels=channels), sr)
    tracks = pd.DataFrame({"track_id": list(files), "path": [str(tmp_path / f[0]) for f in files.values()]})
    assert extract_shard(tracks, tmp_path / "shard-000.parquet").empty
    store = FeatureStore([tmp_path / "shard-000.parquet"])
    for track_id in files:
        cqt = store.cqt(track_id)
        assert len(cqt) == 1 + int(12.5 * 44100) // 1024 and np.isfinite(cqt).all()
        assert cqt.mean(axis=0).argmax() == A4_BIN  # the 440 Hz sine, whatever the rate and channels
