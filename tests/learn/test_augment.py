"""CQT-domain augmentation: each transform does what it says on a patch, drawn from the batch's stream."""

from __future__ import annotations

import numpy as np
import pytest

from trackrank.learn.augment import BINS_PER_OCTAVE, Augmentation, augment, pitch_shift, time_stretch


def tone_patch(bin_: int = 40, frames: int = 512) -> np.ndarray:
    """A patch (96 bins, frames) in dB: a floor of -80 dB and one loud bin, slowly rising in time."""
    patch = np.full((96, frames), -80.0, dtype=np.float32)
    patch[bin_] = np.linspace(-10.0, 0.0, frames)
    return patch


@pytest.mark.parametrize("semitones", [-3, 2, 5])
def test_a_pitch_shift_of_s_semitones_moves_the_spectrum_by_s_bins(semitones):
    shifted = pitch_shift(tone_patch(40), semitones)
    assert shifted.shape == (96, 512)
    assert (shifted.argmax(axis=0) == 40 + semitones).all()
    assert shifted.min() == -80.0  # the bins moved in from outside the range sit at the patch's floor


def test_a_time_stretch_slows_the_patch_down():
    stretched = time_stretch(tone_patch(), 2.0)
    assert stretched.shape == (96, 512)
    np.testing.assert_allclose(stretched[40, ::2], tone_patch()[40, :256], atol=1e-5)  # the first half, spread out
    assert time_stretch(tone_patch(), 1.0) is not None and np.array_equal(time_stretch(tone_patch(), 1.0), tone_patch())


def test_gain_and_tilt_add_decibels_across_the_bins():
    patches = np.stack([tone_patch()] * 64)
    gain_only = augment(patches, np.random.default_rng(0), Augmentation(gain_db=6.0))
    offsets = (gain_only - patches)[:, :, 0]
    assert np.allclose(offsets, offsets[:, :1]), "a gain is the same for every bin"
    assert np.abs(offsets).max() <= 6.0 and offsets.std() > 1.0
    tilted = augment(patches, np.random.default_rng(0), Augmentation(tilt_db=3.0))
    slopes = np.diff((tilted - patches)[:, :, 0], axis=1) * 12  # dB per octave
    assert np.allclose(slopes, slopes[:, :1], atol=1e-3) and np.abs(slopes).max() <= 3.0 + 1e-3


def test_augmentation_is_drawn_from_the_stream_it_is_given():
    patches = np.random.default_rng(1).normal(-40, 10, (8, 96, 512)).astype(np.float32)
    settings = Augmentation(pitch=2, gain_db=6.0, tilt_db=2.0, stretch=0.1)
    first = augment(patches, np.random.default_rng([3, 1]), settings)
    again = augment(patches, np.random.default_rng([3, 1]), settings)
    other = augment(patches, np.random.default_rng([3, 2]), settings)
    assert first.shape == patches.shape and first.dtype == np.float32
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert augment(patches, np.random.default_rng(0), Augmentation()) is patches  # off: untouched, nothing drawn


def test_augmentation_draws_pitch_gain_tilt_and_stretch_in_that_order_and_nothing_more():
    """Each patch's shift, gain, tilt and stretch, drawn in that order from the batch's stream and nothing
    after them (the mix, drawn last, was removed): a run's batches are those of every earlier version."""
    patches = np.random.default_rng(1).normal(-40, 10, (8, 96, 512)).astype(np.float32)
    rng, expected = np.random.default_rng(5), np.random.default_rng(5)
    out = augment(patches, rng, Augmentation(pitch=2, gain_db=6.0, tilt_db=2.0, stretch=0.1))
    semitones = expected.integers(-2, 3, size=8)
    gains, tilts = expected.uniform(-6.0, 6.0, size=8), expected.uniform(-2.0, 2.0, size=8)
    factors = expected.uniform(1.0, 1.1, size=8)
    assert rng.bit_generator.state == expected.bit_generator.state
    octaves = (np.arange(96) - 95 / 2) / BINS_PER_OCTAVE
    for i in range(8):
        moved = time_stretch(pitch_shift(patches[i], int(semitones[i])), float(factors[i]))
        np.testing.assert_array_equal(out[i], moved + (gains[i] + tilts[i] * octaves)[:, None].astype(np.float32))
