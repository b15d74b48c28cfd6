"""CQT-domain augmentation: each transform does what it says on a patch, drawn from the batch's stream."""

from __future__ import annotations

import numpy as np
import pytest

from trackrank.learn.augment import Augmentation, augment, mix_in, pitch_shift, time_stretch


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


def test_mixing_adds_another_patch_of_the_batch_in_power_between_mix_db_and_twice_below():
    assert mix_in(np.array([0.0]), np.array([0.0]), 10.0)[0] == pytest.approx(10 * np.log10(1.1))
    patches = np.stack([tone_patch(20), tone_patch(70)])  # each the other's only partner
    mixed = augment(patches, np.random.default_rng(0), Augmentation(mix_db=10.0))
    assert mixed.shape == patches.shape and mixed.dtype == np.float32
    for i, (own, other) in enumerate(((20, 70), (70, 20))):
        np.testing.assert_allclose(mixed[i, own], patches[i, own], atol=1e-3)  # its own tone, 70 dB above the rest
        attenuation = -mixed[i, other, -1]  # the partner's tone is at 0 dB in its last frame
        assert 10.0 <= attenuation <= 20.0
        np.testing.assert_allclose(mixed[i], mix_in(patches[i], patches[1 - i], attenuation), atol=1e-3)
    gained = augment(patches, np.random.default_rng(0), Augmentation(gain_db=6.0))
    both = augment(patches, np.random.default_rng(0), Augmentation(gain_db=6.0, mix_db=10.0))
    assert not np.allclose(gained, patches, atol=0.1)
    np.testing.assert_allclose(both[0, 20], gained[0, 20], atol=1e-3)  # the same gain: drawn as without the mix
    np.testing.assert_allclose(both[1, 70], gained[1, 70], atol=1e-3)
