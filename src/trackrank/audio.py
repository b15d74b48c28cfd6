"""Reading audio files: any of wav, flac, ogg, mp3, at any rate and channel count."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np

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
    try:
        y, _ = librosa.load(str(path), sr=sr, mono=True, res_type="soxr_hq")
    except Exception as error:
        raise AudioError(f"cannot decode '{path}': {error}") from error
    if y.size == 0:
        raise AudioError(f"'{path}' holds no audio samples")
    if not np.all(np.isfinite(y)):
        raise AudioError(f"'{path}' decodes to non-finite samples")
    return y
