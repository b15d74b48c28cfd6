"""CQT features (paper §3.4) written as Parquet shards, one Snakemake job per shard.

Each track becomes a log-power CQT: 96 bins, 12 bins per octave, fmin 32.70 Hz,
hop 1024 at 44.1 kHz, in dB. A shard is a Parquet file (zstd) with one row per
track: ``track_id`` (string), ``n_frames`` (int32) and ``cqt`` as
``list<fixed_size_list<float16, 96>>``, frame-major, bins low to high frequency.
Tracks are assigned to shards by a hash of their id, so adding a track to the
catalog changes the content of one shard only.
"""

from __future__ import annotations

import functools
import logging
import zlib
from collections.abc import Iterable
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from trackrank.atomic import atomic_output
from trackrank.data.audio import SAMPLE_RATE, audio_blocks
from trackrank.data.cqt import constant_q
from trackrank.data.per_track import REJECTED_COLUMNS, each_track
from trackrank.errors import AudioError
from trackrank.logs import CONSOLE

log = logging.getLogger(__name__)

N_BINS = 96
BINS_PER_OCTAVE = 12
FMIN = 32.70
HOP_LENGTH = 1024
PATCH_FRAMES = 512
#: dB floor: power below 1e-10 (-100 dB) is clipped, so silence has a finite value.
AMIN = 1e-10
#: Tracks per Parquet row group: a reader loads one track without reading its shard whole.
ROW_GROUP_TRACKS = 16


def cqt_db(
    y: np.ndarray,
    *,
    sr: int = SAMPLE_RATE,
    hop_length: int = HOP_LENGTH,
    fmin: float = FMIN,
    n_bins: int = N_BINS,
    bins_per_octave: int = BINS_PER_OCTAVE,
) -> np.ndarray:
    """Log-power constant-Q transform of a mono signal (``librosa.cqt``, filters built once: :mod:`trackrank.data.cqt`).

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,), mono audio at ``sr`` Hz.

    Returns
    -------
    cqt : np.ndarray, shape (n_frames, n_bins), float32, dB re 1.0 power: floor -100 dB,
        a full-scale sine peaks near +26 dB (librosa scales each filter by its length).
        Frame-major; bin 0 is ``fmin``. ``n_frames = 1 + n_samples // hop_length``.
    """
    magnitude = np.abs(constant_q(sr, hop_length, fmin, n_bins, bins_per_octave)(y))
    return librosa.power_to_db(magnitude**2, ref=1.0, amin=AMIN, top_db=None).T.astype(np.float32)


#: Frames per CQT chunk of a long track (~47.5 s), and the frames of audio each side that
#: the chunk's filters see beyond it, so that chunked frames equal one-shot frames.
CHUNK_FRAMES = 2048
CONTEXT_FRAMES = 64


def cqt_db_stream(
    blocks: Iterable[np.ndarray],
    *,
    sr: int = SAMPLE_RATE,
    hop_length: int = HOP_LENGTH,
    chunk_frames: int = CHUNK_FRAMES,
    context_frames: int = CONTEXT_FRAMES,
) -> np.ndarray:
    """:func:`cqt_db` of a signal given block by block, computed ``chunk_frames`` frames at a time.

    Why: a 20-minute track's signal and CQT at once cost far more memory than its dB matrix; here
    only one chunk (plus ``context_frames`` frames of audio each side) is transformed at a time.
    A track that fits in one chunk is transformed in one piece, exactly as :func:`cqt_db` does.

    Parameters
    ----------
    blocks : iterable of np.ndarray, shape (n_samples,), mono audio at ``sr`` Hz, any block sizes.

    Returns
    -------
    cqt : np.ndarray, shape (1 + n_samples // hop_length, 96), float32, dB, as :func:`cqt_db`.
    """
    chunk, context = chunk_frames * hop_length, context_frames * hop_length
    buffer, start, next_frame, frames = np.zeros(0, np.float32), 0, 0, []  # buffer[0] is sample `start`
    for block in blocks:
        buffer = np.concatenate([buffer, block])
        while len(buffer) >= next_frame * hop_length - start + chunk + context:
            first = next_frame - start // hop_length
            segment = buffer[: first * hop_length + chunk + context]
            frames.append(cqt_db(segment, sr=sr, hop_length=hop_length)[first : first + chunk_frames])
            next_frame += chunk_frames
            new_start = max(0, next_frame * hop_length - context)
            buffer, start = buffer[new_start - start :], new_start
    if start + len(buffer) == 0:
        return np.zeros((0, N_BINS), np.float32)
    frames.append(cqt_db(buffer, sr=sr, hop_length=hop_length)[next_frame - start // hop_length :])
    return np.concatenate(frames)


def track_cqt(
    path: str | Path,
    *,
    max_duration_s: float | None = None,
    sample_rates: tuple[int, int] | None = None,
    max_channels: int | None = None,
) -> np.ndarray:
    """The CQT of one audio file, decoded and transformed chunk by chunk (bounded memory).

    Raises :class:`AudioError` for a file that does not decode, holds no samples, is longer than
    ``max_duration_s`` (None: any length), whose header announces a sample rate outside ``sample_rates``
    or more than ``max_channels`` channels (None: any; :func:`~trackrank.data.audio.audio_blocks`), has
    samples so large that their power overflows (a float file scaled far outside [-1, 1]), or is digital
    silence (every bin at the -100 dB floor: such a track has no sound to learn from or rank by).
    """
    blocks = audio_blocks(path, max_duration_s=max_duration_s, sample_rates=sample_rates, max_channels=max_channels)
    cqt = cqt_db_stream(blocks)
    if len(cqt) == 0:
        raise AudioError(f"'{path}' holds no audio samples")
    if not np.isfinite(cqt).all():
        raise AudioError(
            f"'{path}': its samples are so far outside [-1, 1] that their power overflows (a float file scaled wrong?)"
        )
    if cqt.max() <= 10 * np.log10(AMIN):
        raise AudioError(f"'{path}' is digital silence: every CQT bin is at the -100 dB floor")
    return cqt


def min_duration_s(*, n_frames: int = PATCH_FRAMES, sr: int = SAMPLE_RATE, hop_length: int = HOP_LENGTH) -> float:
    """Shortest audio (seconds) whose CQT has ``n_frames`` frames: one patch is ~11.87 s."""
    return (n_frames - 1) * hop_length / sr


def shard_of(track_id: str, n_shards: int) -> int:
    """The shard a track belongs to: a stable hash, independent of the other tracks."""
    return zlib.crc32(track_id.encode("utf-8")) % n_shards


def pad_to_patch(cqt: np.ndarray, n_frames: int = PATCH_FRAMES) -> np.ndarray:
    """Repeat a short track's frames until it fills one patch (looping keeps its sound)."""
    if len(cqt) >= n_frames:
        return cqt
    return np.pad(cqt, ((0, n_frames - len(cqt)), (0, 0)), mode="wrap")


def even_patches(cqt: np.ndarray, n_patches: int, *, n_frames: int = PATCH_FRAMES) -> np.ndarray:
    """``n_patches`` patches spread evenly from a track's start to its end, as the model takes them.

    Why not random: a query and the catalog track it was cut from must give the same embedding, and the
    same file must always give the same answer. A track shorter than one patch is looped (:func:`pad_to_patch`).

    Parameters
    ----------
    cqt : np.ndarray, shape (n_frames_total, 96), frame-major, as :func:`cqt_db` returns it.

    Returns
    -------
    np.ndarray, shape (n_patches, 96, n_frames), float32
    """
    cqt = pad_to_patch(cqt, n_frames)
    starts = np.linspace(0, len(cqt) - n_frames, n_patches).round().astype(np.int64)
    return np.stack([cqt[start : start + n_frames].T for start in starts]).astype(np.float32)


def patchable_cqt(path: str, short_tracks: str = "reject") -> np.ndarray:
    """CQT of one track as stored (float16), padded to one patch when ``short_tracks`` is ``pad``;
    :class:`AudioError` when it cannot be decoded, or is shorter than a patch and not to be padded."""
    cqt = track_cqt(path)
    if len(cqt) < PATCH_FRAMES:
        if short_tracks == "reject":
            raise AudioError(
                f"shorter than one patch: {len(cqt)} < {PATCH_FRAMES} frames "
                f"({min_duration_s():.2f} s); set features.short_tracks=pad to keep it"
            )
        cqt = pad_to_patch(cqt)
    return cqt.astype(np.float16)


def cqt_column(matrices: list[np.ndarray], dtype: type = np.float16) -> pa.ListArray:
    """Arrow ``list<fixed_size_list<float, 96>>`` from (n_frames, 96) matrices."""
    n_bins = matrices[0].shape[1] if matrices else N_BINS
    flat = np.concatenate([m.astype(dtype).ravel() for m in matrices]) if matrices else np.zeros(0, dtype)
    frames = pa.FixedSizeListArray.from_arrays(pa.array(flat), n_bins)
    offsets = np.concatenate([[0], np.cumsum([len(m) for m in matrices])]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), frames)


#: zstd; no dictionary for the dB values (it only costs time), byte-stream-split so zstd
#: sees their exponents and mantissas apart: ~20 % smaller, 2x faster to write.
PARQUET_OPTIONS = dict(
    compression="zstd", use_dictionary=["track_id"], use_byte_stream_split=["cqt.list.element.list.element"]
)
SHARD_SCHEMA = pa.schema(
    [("track_id", pa.string()), ("n_frames", pa.int32()), ("cqt", pa.list_(pa.list_(pa.float16(), N_BINS)))]
)


def shard_table(track_ids: list[str], matrices: list[np.ndarray]) -> pa.Table:
    """One shard's rows as an Arrow table with :data:`SHARD_SCHEMA`."""
    return pa.table(
        {
            "track_id": pa.array(track_ids, pa.string()),
            "n_frames": pa.array([len(m) for m in matrices], pa.int32()),
            "cqt": cqt_column(matrices),
        },
        schema=SHARD_SCHEMA,
    )


def extract_shard(
    tracks: pd.DataFrame, output: str | Path, *, short_tracks: str = "reject", workers: int = 1
) -> pd.DataFrame:
    """Compute the CQT of ``tracks`` (``track_id``, ``path``) into one Parquet shard.

    Tracks are written as they finish, ``ROW_GROUP_TRACKS`` per row group, so memory
    stays bounded whatever the shard size. A track that cannot be decoded (or is too
    short) is skipped and logged; the others go on.

    Returns
    -------
    rejected : pd.DataFrame with ``track_id``, ``path``, ``reason``.
    """
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    paths = dict(zip(tracks["track_id"], tracks["path"]))
    cqt_of = functools.partial(patchable_cqt, short_tracks=short_tracks)
    rejected, ids, matrices = [], [], []
    with atomic_output(output) as tmp, pq.ParquetWriter(tmp, SHARD_SCHEMA, **PARQUET_OPTIONS) as writer:
        for track_id, cqt in each_track(cqt_of, paths, rejected=rejected, workers=workers):
            ids.append(track_id)
            matrices.append(cqt)
            if len(ids) == ROW_GROUP_TRACKS:
                writer.write_table(shard_table(ids, matrices))
                ids, matrices = [], []
        if ids:
            writer.write_table(shard_table(ids, matrices))
    log.info("%s: %d tracks written, %d skipped", output, len(paths) - len(rejected), len(rejected))
    return pd.DataFrame(rejected, columns=REJECTED_COLUMNS)


def shard_tracks(tracks: pd.DataFrame, shard: int, *, n_shards: int) -> pd.DataFrame:
    """The rows of ``tracks`` that belong to ``shard`` (in [0, ``n_shards``)), in catalog order."""
    return tracks[[shard_of(t, n_shards) == shard for t in tracks["track_id"]]]


def run_shard(
    tracks_path: str | Path,
    *,
    shard: int,
    n_shards: int,
    output: str | Path,
    rejected_path: str | Path | None = None,
    short_tracks: str = "reject",
    workers: int = 1,
) -> pd.DataFrame:
    """One shard job: select its tracks from the tracks table, extract their CQTs, write the shard.

    Parameters
    ----------
    tracks_path : the validated catalog's ``tracks.parquet``.
    shard, n_shards : this shard's number in [0, n_shards) and their count; a track's shard is a hash of
        its id, so adding tracks moves no other track.
    output : the shard's Parquet file (``track_id``, ``n_frames``, ``cqt`` float16 frames x 96 bins).
    rejected_path : the CSV of the shard's skipped tracks with their reasons (None: not written).
    short_tracks : ``reject`` or ``pad`` a track shorter than one patch (11.87 s).
    workers : decoding processes, >= 1.
    """
    tracks = shard_tracks(pd.read_parquet(tracks_path), shard, n_shards=n_shards)
    log.info("shard %d/%d: %d tracks, %d worker(s)", shard, n_shards, len(tracks), workers)
    rejected = extract_shard(tracks, output, short_tracks=short_tracks, workers=workers)
    if rejected_path is not None:
        write_rejected(rejected, rejected_path)
    return rejected


def write_rejected(rejected: pd.DataFrame, output: str | Path) -> None:
    """A shard's skipped tracks (``track_id``, ``path``, ``reason``) as CSV, written atomically."""
    with atomic_output(output) as tmp:
        rejected.to_csv(tmp, index=False)
    if len(rejected):
        log.warning(
            "%d track(s) skipped by this shard, listed with their reasons in %s", len(rejected), output, extra=CONSOLE
        )
