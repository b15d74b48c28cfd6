"""The ``mfcc_stats`` reference: mean and std over time of 20 MFCCs, ranked by Euclidean distance.

Why a reference: the learnt systems are only worth their training if they rank better than a
classic timbre summary that needs none. Each track becomes 40 numbers, the mean and the
standard deviation over time of ``librosa.feature.mfcc`` (20 coefficients, librosa's
defaults: 2048-sample frames, hop 512, 128 mel bands) of the audio decoded exactly as the
CQT stage decodes it (:func:`trackrank.data.audio.load_audio`: 44.1 kHz mono). The 40 dimensions
have very different scales (coefficient 0 is loudness in dB, hundreds; the others tens), so
they are standardised with the mean and std of the **train** split only, as a learnt system
would only have seen train tracks; the test tracks then rank by Euclidean distance, as the TL
systems do.

Two steps, two files: ``features/mfcc_stats.parquet`` (``track_id``, ``mfcc_stats`` as
``fixed_size_list<float32, 40>``, raw, every catalog track that decodes) and the test-split
embeddings ``embeddings/mfcc_stats.parquet`` in the format of
:func:`trackrank.learn.embedding_table.read_embeddings`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from trackrank.data.audio import SAMPLE_RATE, load_audio
from trackrank.data.per_track import REJECTED_COLUMNS, each_track
from trackrank.evaluate.evaluation import split_tracks_with_features
from trackrank.learn.embedding_table import save_embeddings

log = logging.getLogger(__name__)

N_MFCC = 20
COLUMN = "mfcc_stats"


def mfcc_stats(y: np.ndarray, *, sr: int = SAMPLE_RATE, n_mfcc: int = N_MFCC) -> np.ndarray:
    """Mean then std over time of ``n_mfcc`` MFCCs of a mono signal.

    Returns
    -------
    np.ndarray, shape (2 * n_mfcc,), float32: coefficients 0..n_mfcc-1 averaged over frames,
        then their standard deviations over frames.
    """
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=n_mfcc)  # (n_mfcc, n_frames)
    return np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1)]).astype(np.float32)


def track_stats(path: str) -> np.ndarray:
    """MFCC statistics of one audio file (:class:`AudioError` when it does not decode)."""
    return mfcc_stats(load_audio(path))


def write_stats(tracks: pd.DataFrame, output: str | Path, *, workers: int = 1) -> pd.DataFrame:
    """MFCC statistics of ``tracks`` (``track_id``, ``path``) into ``output``, catalog order.

    A track whose audio does not decode is skipped with a log line naming it and its file:
    one bad file must not cost the whole reference (its CQT shard skips it too).

    Returns
    -------
    rejected : pd.DataFrame with ``track_id``, ``path``, ``reason``.
    """
    paths = dict(zip(tracks["track_id"], tracks["path"]))
    ids, vectors, rejected = [], [], []
    for track_id, stats in each_track(track_stats, paths, rejected=rejected, workers=workers, chunksize=4):
        ids.append(track_id)
        vectors.append(stats)
    matrix = np.stack(vectors) if vectors else np.zeros((0, 2 * N_MFCC), np.float32)
    save_embeddings(ids, matrix, output=output, column=COLUMN)
    log.info("%s: MFCC statistics of %d tracks, %d skipped", output, len(ids), len(rejected))
    return pd.DataFrame(rejected, columns=REJECTED_COLUMNS)


def read_stats(path: str | Path) -> pd.DataFrame:
    """The statistics table as a DataFrame indexed by ``track_id``, one column per dimension."""
    table = pq.read_table(path)
    if COLUMN not in table.column_names:
        raise ValueError(f"{path} has no '{COLUMN}' column (columns: {', '.join(table.column_names)})")
    values = table.column(COLUMN).combine_chunks()
    matrix = values.flatten().to_numpy().reshape(len(values), values.type.list_size)
    return pd.DataFrame(matrix, index=pd.Index(table.column("track_id").to_pylist(), name="track_id"))


def standardise(matrix: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``matrix`` centred and scaled by the per-dimension mean and std of ``reference``.

    A dimension constant over ``reference`` is only centred (its std counts as 1), so it
    neither divides by zero nor dominates the distances.
    """
    reference = np.asarray(reference, dtype=np.float64)
    if len(reference) == 0:
        raise ValueError("cannot standardise: the reference (train split) holds no track")
    mean, std = reference.mean(axis=0), reference.std(axis=0)
    return (np.asarray(matrix, dtype=np.float64) - mean) / np.where(std > 0, std, 1.0)


def reference_embeddings(stats: pd.DataFrame, *, train_ids: list[str], test_ids: list[str]) -> np.ndarray:
    """(len(test_ids), d): the test tracks' statistics standardised with the train tracks' own.

    A test track without statistics (its audio did not decode here) gets the train mean, 0 in
    every dimension, and a log line: it stays in the evaluation, as uninformative as it is.
    """
    train = [t for t in train_ids if t in stats.index]
    embedded = standardise(stats.reindex(test_ids).to_numpy(), stats.loc[train].to_numpy())
    missing = [t for t, row in zip(test_ids, embedded) if np.isnan(row).any()]
    if missing:
        log.warning(
            "%d test track(s) have no MFCC statistics and get the train mean: %s", len(missing), ", ".join(missing[:10])
        )
    return np.nan_to_num(embedded, nan=0.0)


def write_reference_embeddings(
    stats_path: str | Path,
    *,
    tracks: str | Path,
    cache_index: str | Path | Sequence[str | Path],
    output: str | Path,
    split: str = "test",
) -> pd.DataFrame:
    """``embeddings/mfcc_stats.parquet``: the tracks of ``split`` (the test split; ``val`` for choices) that
    have CQT features, in evaluation order.

    The train statistics come from the train tracks that have CQT features too, the tracks the
    learnt systems train on.
    """
    train_ids = split_tracks_with_features(tracks, cache_index, split="train")
    ids = split_tracks_with_features(tracks, cache_index, split=split)
    matrix = reference_embeddings(read_stats(stats_path), train_ids=train_ids, test_ids=ids)
    table = save_embeddings(ids, matrix, output=output, column="embedding")
    log.info("mfcc_stats: %d %s tracks standardised with %d train tracks", len(ids), split, len(train_ids))
    return table.to_pandas()
