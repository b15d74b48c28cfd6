"""Reading audio files: any of wav, flac, ogg, mp3, at any rate and channel count."""

from __future__ import annotations

import warnings
from pathlib import Path

import librosa
import numpy as np
import soundfile

#: The paper's sample rate: every track is resampled to it, in mono.
SAMPLE_RATE = 44100


class AudioError(Exception):
    """An audio file that cannot be read; the message names the file and why."""


def probe_duration(path: str | Path) -> float:
    """Duration in seconds from the file's header (no decoding where the format allows)."""
    try:
        return float(librosa.get_duration(path=str(path)))
    except Exception as error:  # soundfile and audioread raise many unrelated types
        raise AudioError(f"cannot read audio header of '{path}': {error}") from error


def load_audio(path: str | Path, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Decode ``path``, mix to mono and resample to ``sr``.

    Returns
    -------
    y : np.ndarray, shape (n_samples,), float32
    """
    if Path(path).is_file() and Path(path).stat().st_size == 0:
        raise AudioError(f"cannot decode '{path}': empty file (0 bytes)")
    try:
        with warnings.catch_warnings():  # librosa warns when it falls back from libsndfile to audioread
            warnings.simplefilter("ignore")
            y, _ = librosa.load(str(path), sr=sr, mono=True, res_type="soxr_hq")
    except Exception as error:
        raise AudioError(f"cannot decode '{path}': {_failure(path, error)}") from error
    if y.size == 0:
        raise AudioError(f"'{path}' holds no audio samples")
    if not np.all(np.isfinite(y)):
        raise AudioError(f"'{path}' decodes to non-finite samples")
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
