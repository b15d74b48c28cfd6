"""Reading audio: what a file's header may announce, and how much one decoded block holds."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from builders import one_hz_wav
from conftest import sine
from trackrank.data import audio
from trackrank.data.audio import SAMPLE_RATE, audio_blocks
from trackrank.errors import AudioError


def test_a_sample_rate_outside_the_range_is_refused_from_the_header_naming_it(tmp_path, monkeypatch):
    one_hz_wav(tmp_path / "b.wav")
    made = []
    monkeypatch.setattr(audio.soxr, "ResampleStream", lambda *a, **k: made.append(a))
    with pytest.raises(AudioError) as refused:
        next(audio_blocks(tmp_path / "b.wav", max_duration_s=1800.0, sample_rates=(8000, 192000)))
    assert str(refused.value) == (
        f"'{tmp_path / 'b.wav'}': sample rate 1 Hz by its header, outside the 8000-192000 Hz accepted "
        "(resample it first)"
    )
    assert made == [], "no resampler was built"
    sf.write(tmp_path / "high.flac", sine(seconds=0.2, sr=384000), 384000)
    with pytest.raises(AudioError, match="sample rate 384000 Hz by its header, outside the 8000-192000 Hz"):
        next(audio_blocks(tmp_path / "high.flac", sample_rates=(8000, 192000)))


def test_more_channels_than_the_cap_are_refused_from_the_header(tmp_path):
    sf.write(tmp_path / "many.wav", sine(seconds=0.5, channels=9), 44100)
    with pytest.raises(AudioError, match=r"many.wav': 9 channels by its header, more than the 8 accepted"):
        next(audio_blocks(tmp_path / "many.wav", max_channels=8))
    assert len(np.concatenate(list(audio_blocks(tmp_path / "many.wav")))) == 22050, "the catalog's tracks: no cap"


class Unreadable(audio.soundfile.SoundFile):
    """libsndfile refusing a file, as it does M4A and AAC: audioread decodes it instead."""

    def __init__(self, *args, **kwargs):
        raise audio.soundfile.SoundFileRuntimeError("libsndfile: unknown format")


def test_the_fallback_decoder_is_held_to_the_same_limits(tmp_path, monkeypatch):
    """A format libsndfile cannot open goes to audioread: its header is checked before a buffer is decoded."""

    class Header:
        samplerate, channels = 1, 1

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def __iter__(self):
            pytest.fail("decoded before its header was checked")

    import audioread

    sf.write(tmp_path / "x.wav", sine(seconds=1.0), 44100)
    monkeypatch.setattr(audio.soundfile, "SoundFile", Unreadable)
    monkeypatch.setattr(audioread, "audio_open", lambda path: Header())
    with pytest.raises(AudioError, match="sample rate 1 Hz by its header"):
        next(audio_blocks(tmp_path / "x.wav", sample_rates=(8000, 192000)))


@pytest.mark.parametrize("sr, channels", [(22050, 1), (48000, 6)])
def test_the_fallback_decoder_streams_librosa_loads_samples(tmp_path, monkeypatch, sr, channels):
    """Block by block (six channels: a buffer may end inside a frame), the samples librosa.load gives
    for the whole file, which it would hold in memory at the file's own rate."""
    import librosa

    sf.write(tmp_path / "x.wav", sine(330.0, seconds=3.0, sr=sr, channels=channels), sr, subtype="PCM_16")
    monkeypatch.setattr(audio.soundfile, "SoundFile", Unreadable)  # librosa's soundfile: it goes to audioread too
    with pytest.warns(FutureWarning):  # librosa's notice that it fell back on audioread
        expected, _ = librosa.load(tmp_path / "x.wav", sr=44100, mono=True, res_type="soxr_hq")
    blocks = list(audio_blocks(tmp_path / "x.wav", block_s=0.5))
    assert len(blocks) > 5 and max(len(b) for b in blocks) < 0.6 * 44100  # a block, and the resampler's delay
    np.testing.assert_array_equal(np.concatenate(blocks), expected)


def test_a_block_holds_block_s_of_the_working_rate_whatever_rate_the_file_has(tmp_path, monkeypatch):
    """At 192 kHz, 30 s of the file's own rate are 5.8 M frames per channel (184 MB for 8 channels): a block
    is counted in samples of the working rate instead."""
    sf.write(tmp_path / "hi.flac", sine(seconds=3.0, sr=192000, channels=2), 192000)
    asked = []
    real_read = audio.soundfile.SoundFile.read
    monkeypatch.setattr(
        audio.soundfile.SoundFile,
        "read",
        lambda self, frames, **k: asked.append(frames) or real_read(self, frames, **k),
    )
    blocks = list(audio_blocks(tmp_path / "hi.flac", block_s=1.0))
    assert max(asked) == int(1.0 * SAMPLE_RATE) and len(asked) == 14  # 576,000 frames in blocks of 44,100
    assert max(len(b) for b in blocks) <= SAMPLE_RATE
