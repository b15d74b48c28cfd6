"""The mfcc_stats reference: 40 numbers per track, deterministic, standardised on the train split."""

from __future__ import annotations

import logging

import librosa
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import sine
from trackrank.data.audio import load_audio
from trackrank.evaluate.references.mfcc_stats import (
    read_stats,
    reference_embeddings,
    standardise,
    write_reference_embeddings,
    write_stats,
)
from trackrank.learn.embedding_table import read_embeddings, save_embeddings


def audio_tracks(folder, freqs, seconds=2.0):
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, freq in enumerate(freqs):
        path = folder / f"t{i}.wav"
        sf.write(path, sine(freq, seconds=seconds) + 0.05 * sine(3 * freq, seconds=seconds), 44100)
        rows.append({"track_id": f"t{i}", "path": str(path)})
    return pd.DataFrame(rows)


def test_mfcc_stats_are_the_mean_then_the_std_of_20_coefficients(tmp_path):
    tracks = audio_tracks(tmp_path / "audio", [220.0])
    write_stats(tracks, tmp_path / "stats.parquet")
    stats = read_stats(tmp_path / "stats.parquet")
    assert stats.shape == (1, 40)
    mfcc = librosa.feature.mfcc(y=load_audio(tracks["path"][0]), sr=44100, n_mfcc=20)
    np.testing.assert_allclose(stats.loc["t0", :19], mfcc.mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(stats.loc["t0", 20:], mfcc.std(axis=1), rtol=1e-5)


def test_the_same_audio_gives_the_identical_vector(tmp_path):
    tracks = audio_tracks(tmp_path / "audio", [220.0, 330.0])
    twice = pd.DataFrame({"track_id": ["a", "b"], "path": [tracks["path"][0]] * 2})
    write_stats(twice, tmp_path / "one.parquet")
    write_stats(tracks, tmp_path / "two.parquet", workers=2)
    one, two = read_stats(tmp_path / "one.parquet"), read_stats(tmp_path / "two.parquet")
    assert np.array_equal(one.loc["a"], one.loc["b"])
    assert np.array_equal(one.loc["a"], two.loc["t0"])
    assert not np.array_equal(two.loc["t0"], two.loc["t1"])


def test_a_track_that_does_not_decode_is_skipped_with_a_log_line(tmp_path, caplog):
    tracks = audio_tracks(tmp_path / "audio", [220.0, 330.0])
    (tmp_path / "audio" / "bad.wav").write_bytes(b"RIFF not audio at all")
    tracks.loc[2] = {"track_id": "bad", "path": str(tmp_path / "audio" / "bad.wav")}
    with caplog.at_level(logging.WARNING):
        rejected = write_stats(tracks, tmp_path / "stats.parquet")
    assert rejected["track_id"].tolist() == ["bad"]
    assert "skipped track 'bad'" in caplog.text and "bad.wav" in caplog.text
    assert read_stats(tmp_path / "stats.parquet").index.tolist() == ["t0", "t1"]


def test_standardisation_uses_the_train_tracks_statistics_only():
    stats = pd.DataFrame({0: [0.0, 2.0, 100.0, 3.0], 1: [5.0, 5.0, -7.0, 9.0]}, index=["tr0", "tr1", "val", "te"])
    embedded = reference_embeddings(stats, train_ids=["tr0", "tr1"], test_ids=["te", "val"])
    # train mean (1, 5), std (1, 0 -> 1): the val and test values play no part in them
    np.testing.assert_allclose(embedded, [[2.0, 4.0], [99.0, -12.0]])
    stats.loc["te"] = [1000.0, 1000.0]
    np.testing.assert_allclose(reference_embeddings(stats, train_ids=["tr0", "tr1"], test_ids=["val"]), [[99.0, -12.0]])


def test_standardise_refuses_an_empty_train_split():
    with pytest.raises(ValueError, match="train split"):
        standardise(np.ones((2, 3)), np.zeros((0, 3)))


def test_reference_embeddings_list_the_test_tracks_with_features_in_catalog_order(tmp_path, caplog):
    (tmp_path / "catalog").mkdir()
    (tmp_path / "cache").mkdir()
    splits = {"te2": "test", "tr0": "train", "te0": "test", "tr1": "train", "te1": "test", "nocqt": "test"}
    pd.DataFrame({"track_id": list(splits), "split": list(splits.values())}).to_parquet(
        tmp_path / "catalog" / "tracks.parquet"
    )
    cached = ["tr0", "tr1", "te0", "te1", "te2"]  # nocqt has no CQT features: not evaluated
    pd.DataFrame({"track_id": cached, "offset": 0, "n_frames": 512}).to_parquet(tmp_path / "cache" / "index.parquet")
    stats = np.arange(5 * 40, dtype=np.float32).reshape(5, 40)
    save_embeddings(
        ["tr0", "tr1", "te2", "te0", "nocqt"], stats, output=tmp_path / "stats.parquet", column="mfcc_stats"
    )
    with caplog.at_level(logging.WARNING):
        write_reference_embeddings(
            tmp_path / "stats.parquet",
            tracks=tmp_path / "catalog" / "tracks.parquet",
            cache_index=tmp_path / "cache" / "index.parquet",
            output=tmp_path / "mfcc_stats.parquet",
        )
    ids, matrix, column = read_embeddings(tmp_path / "mfcc_stats.parquet")
    assert ids == ["te2", "te0", "te1"] and column == "embedding" and matrix.shape == (3, 40)
    assert matrix.dtype == np.float32
    # train rows 0..39 and 40..79: mean 20 + j, std 20, so te2 (row 2) is 80 + j -> 3, te0 (row 3) -> 5
    np.testing.assert_allclose(matrix[:2], [[3.0] * 40, [5.0] * 40])
    assert (matrix[2] == 0).all() and "te1" in caplog.text
