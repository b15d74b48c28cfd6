"""Reading audio files: any of wav, flac, ogg, mp3, at any rate and channel count.

Files are decoded block by block (libsndfile through soundfile, resampled by a soxr stream), so a
long track never needs its whole signal at once; the samples equal ``librosa.load``'s bit for bit.
Formats libsndfile cannot open fall back on ``librosa.load`` (audioread) whole.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import librosa
import numpy as np
import soundfile
import soxr

from trackrank.errors import AudioError

#: The paper's sample rate: every track is resampled to it, in mono.
SAMPLE_RATE = 44100
#: Seconds of audio per decoded block.
BLOCK_S = 30.0
#: A decode that stops this much short of the header's duration is a truncated file.
TRUNCATION_TOLERANCE_S = 0.5


def probe_duration(path: str | Path) -> float:
    """Duration in seconds from the file's header (no decoding where the format allows)."""
    try:
        return float(librosa.get_duration(path=str(path)))
    except Exception as error:  # soundfile and audioread raise many unrelated types
        raise AudioError(f"cannot read audio header of '{path}': {error}") from error


def audio_blocks(path: str | Path, sr: int = SAMPLE_RATE, block_s: float = BLOCK_S) -> Iterator[np.ndarray]:
    """Decode ``path`` block by block, mixed to mono and resampled to ``sr``.

    Yields
    ------
    y : np.ndarray, shape (n_samples,), float32; the blocks joined are the whole track.

    Raises :class:`AudioError` naming the file when it is empty, does not decode, decodes to
    non-finite samples, or stops short of the duration its header announces (a truncated file).
    """
    if Path(path).is_file() and Path(path).stat().st_size == 0:
        raise AudioError(f"cannot decode '{path}': empty file (0 bytes)")
    try:
        stream = soundfile.SoundFile(str(path))
    except Exception:
        yield _checked(path, _load_whole(path, sr))
        return
    with stream:
        resampler = None if stream.samplerate == sr else soxr.ResampleStream(stream.samplerate, sr, 1, "float32", "HQ")
        block_frames = max(1, int(block_s * stream.samplerate))
        decoded = 0
        while True:
            try:
                block = stream.read(block_frames, dtype="float32", always_2d=True)
            except Exception as error:
                raise AudioError(
                    f"cannot decode '{path}': libsndfile: {error} (a truncated or damaged file?)"
                ) from error
            decoded += len(block)
            last = len(block) < block_frames
            mono = block.mean(axis=1)
            yield _checked(path, resampler.resample_chunk(mono, last=last) if resampler else mono)
            if last:
                break
        if decoded < stream.frames - TRUNCATION_TOLERANCE_S * stream.samplerate:
            raise AudioError(
                f"'{path}' is truncated: its header announces {stream.frames / stream.samplerate:.2f} s, "
                f"only {decoded / stream.samplerate:.2f} s decode"
            )


def load_audio(path: str | Path, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Decode ``path``, mix to mono and resample to ``sr`` (the joined :func:`audio_blocks`).

    Returns
    -------
    y : np.ndarray, shape (n_samples,), float32
    """
    y = np.concatenate(list(audio_blocks(path, sr)))
    if y.size == 0:
        raise AudioError(f"'{path}' holds no audio samples")
    return y


def _checked(path: str | Path, y: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(y)):
        raise AudioError(f"'{path}' decodes to non-finite samples")
    return y


def _load_whole(path: str | Path, sr: int) -> np.ndarray:
    """The fallback for files libsndfile cannot open: librosa.load (audioread) decodes them whole."""
    try:
        with warnings.catch_warnings():  # librosa warns when it falls back from libsndfile to audioread
            warnings.simplefilter("ignore")
            y, _ = librosa.load(str(path), sr=sr, mono=True, res_type="soxr_hq")
    except Exception as error:
        raise AudioError(f"cannot decode '{path}': {_failure(path, error)}") from error
    return y


def _failure(path: str | Path, error: Exception) -> str:
    """Why decoding failed; audioread's "no backend" error has no message, so ask libsndfile what it saw."""
    if str(error).strip():
        return str(error)
    try:
        soundfile.info(str(path))
    except Exception as libsndfile_error:
        return f"no decoder recognises its format (libsndfile: {libsndfile_error}; audioread: {type(error).__name__})"
    return type(error).__name__
