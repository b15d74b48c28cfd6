"""Reading audio files: any of wav, flac, ogg, mp3, at any rate and channel count.

Files are decoded block by block (libsndfile through soundfile, resampled by a soxr stream), so a
long track never needs its whole signal at once; the samples equal ``librosa.load``'s bit for bit.
Formats libsndfile cannot open fall back on audioread, block by block as well.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import librosa
import numpy as np
import soundfile
import soxr

from trackrank.errors import AudioError

#: The paper's sample rate: every track is resampled to it, in mono.
SAMPLE_RATE = 44100
#: Seconds of audio per decoded block, counted at the lower of the file's and the working rate: a block
#: holds at most ``BLOCK_S * SAMPLE_RATE`` frames (per channel) in and out, whatever rate the header claims.
BLOCK_S = 30.0
#: A decode that stops this much short of the header's duration is a truncated file.
TRUNCATION_TOLERANCE_S = 0.5
#: Samples beyond this magnitude are no audio (float files hold [-1, 1]): their CQT power would
#: overflow float32 and every embedding of the track would be NaN.
MAX_SAMPLE = 1e15


#: The first bytes of the containers a query may come in (WAV/RF64/W64, FLAC, Ogg, MP3 with or
#: without ID3, ADTS AAC, MP4/M4A, AIFF, AU, CAF, Matroska/WebM), at their offsets.
AUDIO_MAGIC = (
    (0, b"RIFF"), (0, b"RF64"), (0, b"riff"), (0, b"fLaC"), (0, b"OggS"), (0, b"ID3"), (4, b"ftyp"),
    (0, b"FORM"), (0, b".snd"), (0, b"caff"), (0, b"\x1a\x45\xdf\xa3"),
)  # fmt: skip


def starts_like_audio(head: bytes) -> bool:
    """Whether a file's first 16 bytes ``head`` are those of an audio container or an MPEG audio frame (MP3,
    AAC): a cheap check that keeps a text or image file from the decoders, which print pages of noise
    before failing."""
    if any(head[offset : offset + len(magic)] == magic for offset, magic in AUDIO_MAGIC):
        return True
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0  # MPEG frame sync (11 bits)


def probe_duration(path: str | Path) -> float:
    """Duration in seconds from the file's header (no decoding where the format allows).

    libsndfile's header first, as ``librosa.get_duration`` reads it, without importing librosa's core
    (seconds of start-up for a job that only validates a catalog); librosa (audioread) for the rest.
    """
    try:
        return float(soundfile.info(str(path)).duration)
    except Exception:  # not a format libsndfile reads: librosa's fallback decoders say
        pass
    try:
        return float(librosa.get_duration(path=str(path)))
    except Exception as error:  # soundfile and audioread raise many unrelated types
        raise AudioError(f"cannot read audio header of '{path}': {error}") from error


def audio_blocks(
    path: str | Path,
    *,
    sr: int = SAMPLE_RATE,
    block_s: float = BLOCK_S,
    max_duration_s: float | None = None,
    sample_rates: tuple[int, int] | None = None,
    max_channels: int | None = None,
) -> Iterator[np.ndarray]:
    """Decode ``path`` block by block, mixed to mono and resampled to ``sr``.

    Parameters
    ----------
    max_duration_s : refuse a file longer than this many seconds, from its header before decoding and
        again while decoding (a header can lie), so a small file that claims hours costs nothing;
        None: no limit (the catalog's own tracks).
    sample_rates, max_channels : the sample rates (lowest, highest; Hz) and the most channels accepted,
        from the header (:func:`check_header`); None: any.

    Yields
    ------
    y : np.ndarray, shape (n_samples,), float32; the blocks joined are the whole track.

    Raises :class:`AudioError` naming the file when it is empty, does not decode, decodes to
    non-finite samples, is longer than ``max_duration_s``, or stops short of the duration its header
    announces (a truncated file).
    """
    if Path(path).is_file() and Path(path).stat().st_size == 0:
        raise AudioError(f"cannot decode '{path}': empty file (0 bytes)")
    limits = {"max_duration_s": max_duration_s, "sample_rates": sample_rates, "max_channels": max_channels}
    try:
        stream = soundfile.SoundFile(str(path))
    except Exception:
        yield from _audioread_blocks(path, sr=sr, block_s=block_s, **limits)
        return
    with stream:
        check_header(path, stream.samplerate, stream.channels, stream.frames, **limits)
        yield from _read_blocks(path, stream, sr=sr, block_s=block_s, max_duration_s=max_duration_s)


def _read_blocks(
    path: str | Path, stream: soundfile.SoundFile, *, sr: int, block_s: float, max_duration_s: float | None
) -> Iterator[np.ndarray]:
    """:func:`audio_blocks` of an open file whose header passed: blocks of at most ``block_s`` seconds of the
    lower of its rate and ``sr``, so a block's memory does not grow with the rate a header claims."""
    resampler = None if stream.samplerate == sr else soxr.ResampleStream(stream.samplerate, sr, 1, "float32", "HQ")
    block_frames = max(1, int(block_s * min(stream.samplerate, sr)))
    decoded = produced = 0
    while True:
        try:
            block = stream.read(block_frames, dtype="float32", always_2d=True)
        except Exception as error:
            raise AudioError(f"cannot decode '{path}': libsndfile: {error} (a truncated or damaged file?)") from error
        decoded += len(block)
        last = len(block) < block_frames
        mono = block[:, 0] if stream.channels == 1 else block.mean(axis=1)  # the same samples, no pass over them
        y = resampler.resample_chunk(mono, last=last) if resampler else mono
        produced += len(y)
        yield _checked(path, y, max_duration_s, sr, produced)
        if last:
            break
    if decoded < stream.frames - TRUNCATION_TOLERANCE_S * stream.samplerate:
        raise AudioError(
            f"'{path}' is truncated: its header announces {stream.frames / stream.samplerate:.2f} s, "
            f"only {decoded / stream.samplerate:.2f} s decode"
        )


def check_header(
    path: str | Path,
    samplerate: int,
    channels: int,
    frames: int | None = None,
    *,
    max_duration_s: float | None = None,
    sample_rates: tuple[int, int] | None = None,
    max_channels: int | None = None,
) -> None:
    """The :class:`AudioError` naming the value and the limit when a header announces more than
    ``max_duration_s`` seconds (``frames`` at ``samplerate``), a sample rate outside ``sample_rates`` or more
    than ``max_channels`` channels (None: any), before a sample is decoded. Why the rate and channels: a
    block's memory grows with both, and 1,700 samples at 1 Hz (3.4 KB) resample to 75 M samples."""
    if max_duration_s is not None and frames is not None and frames > max_duration_s * samplerate:
        raise AudioError(
            f"'{path}' lasts {frames / samplerate:.0f} s by its header ({frames} samples at {samplerate} Hz), "
            f"longer than the {max_duration_s:.0f} s allowed"
        )
    if sample_rates is not None and not sample_rates[0] <= samplerate <= sample_rates[1]:
        raise AudioError(
            f"'{path}': sample rate {samplerate} Hz by its header, outside the {sample_rates[0]}-{sample_rates[1]} Hz "
            "accepted (resample it first)"
        )
    if max_channels is not None and channels > max_channels:
        raise AudioError(
            f"'{path}': {channels} channels by its header, more than the {max_channels} accepted (mix it down first)"
        )


def load_audio(path: str | Path, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Decode ``path``, mix to mono and resample to ``sr`` (the joined :func:`audio_blocks`).

    Returns
    -------
    y : np.ndarray, shape (n_samples,), float32
    """
    y = np.concatenate(list(audio_blocks(path, sr=sr)))
    if y.size == 0:
        raise AudioError(f"'{path}' holds no audio samples")
    return y


def _checked(
    path: str | Path, y: np.ndarray, max_duration_s: float | None = None, sr: int = SAMPLE_RATE, produced: int = 0
) -> np.ndarray:
    """``y`` when its samples are finite and the ``produced`` samples so far (``len(y)`` when 0) stay
    within ``max_duration_s``; else the :class:`AudioError` that says which."""
    if not np.all(np.isfinite(y)):
        raise AudioError(f"'{path}' decodes to non-finite samples")
    peak = float(np.abs(y).max()) if y.size else 0.0
    if peak > MAX_SAMPLE:
        raise AudioError(f"'{path}': its samples reach {peak:.3g}, far outside [-1, 1] (a float file scaled wrong?)")
    if max_duration_s is not None and max(produced, len(y)) > (max_duration_s + 1.0) * sr:
        raise AudioError(f"'{path}' decodes to more than the {max_duration_s:.0f} s allowed (its header says less)")
    return y


def _audioread_blocks(
    path: str | Path,
    *,
    sr: int,
    block_s: float,
    max_duration_s: float | None,
    sample_rates: tuple[int, int] | None,
    max_channels: int | None,
) -> Iterator[np.ndarray]:
    """The fallback for files libsndfile cannot open: audioread (ffmpeg or GStreamer where installed), its
    16-bit buffers gathered into blocks as :func:`_read_blocks` makes them, mixed and resampled as they
    come, so a long file never sits whole in memory; the samples are ``librosa.load``'s. Its header has
    no reliable length: the duration limit is counted on the samples decoded."""
    import audioread

    try:
        source = audioread.audio_open(str(path))
    except Exception as error:  # audioread's backends raise many unrelated types
        raise AudioError(f"cannot decode '{path}': {_failure(path, error)}") from error
    with source:
        rate, channels = int(source.samplerate), int(source.channels)
        check_header(path, rate, channels, sample_rates=sample_rates, max_channels=max_channels)
        resampler = None if rate == sr else soxr.ResampleStream(rate, sr, 1, "float32", "HQ")
        produced = 0
        for samples, last in _regrouped(_decoded(path, source), max(1, int(block_s * min(rate, sr))) * channels):
            mono = samples.reshape(-1, channels).mean(axis=1) if channels > 1 else samples
            y = resampler.resample_chunk(mono, last=last) if resampler else mono
            produced += len(y)
            yield _checked(path, y, max_duration_s, sr, produced)


def _decoded(path: str | Path, source) -> Iterator[np.ndarray]:
    """An audioread file's buffers as float32 samples (interleaved channels), or the :class:`AudioError`."""
    try:
        for buffer in source:
            yield librosa.util.buf_to_float(buffer, dtype=np.float32)
    except Exception as error:
        raise AudioError(f"cannot decode '{path}': {error} (a truncated or damaged file?)") from error


def _regrouped(buffers: Iterator[np.ndarray], size: int) -> Iterator[tuple[np.ndarray, bool]]:
    """``buffers`` regrouped into arrays of ``size`` values (the last one shorter, maybe empty), each with
    whether it is the last."""
    pending, held = [], 0
    for buffer in buffers:
        pending.append(buffer)
        held += len(buffer)
        while held >= size:
            joined = np.concatenate(pending)
            pending, held = [joined[size:]], len(joined) - size
            yield joined[:size], False
    yield (np.concatenate(pending) if pending else np.empty(0, dtype=np.float32)), True


def _failure(path: str | Path, error: Exception) -> str:
    """Why decoding failed; audioread's "no backend" error has no message, so ask libsndfile what it saw."""
    if str(error).strip():
        return str(error)
    try:
        soundfile.info(str(path))
    except Exception as libsndfile_error:
        return f"no decoder recognises its format (libsndfile: {libsndfile_error}; audioread: {type(error).__name__})"
    return type(error).__name__
