"""CQT-domain augmentation of training patches.

Why: a catalog of a few hundred tagged tracks shows the network each track's timbre in
one key, at one level, through one recording chain; the network can learn those accidents
instead of what the tags describe. Each training patch (dB, 96 bins x 512 frames) gets,
drawn from the batch's own random stream (so batches stay the same for any number of
DataLoader workers):

* a **pitch shift** of up to ``pitch`` semitones: the CQT has 12 bins per octave, so a
  shift of s semitones moves the spectrum by s bins; the bins moved in from outside the
  range get the patch's floor (its quietest value);
* a **gain** of up to ``gain_db`` dB either way: added to every bin (a gain is an addition in dB);
* an **EQ tilt** of up to ``tilt_db`` dB per octave either way around the middle bin: a brighter or
  duller recording chain;
* a **time stretch** by a factor up to 1 + ``stretch`` (tempo x 1/factor): the first
  512 / factor frames are interpolated to 512.

Validation and test patches are never augmented.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BINS_PER_OCTAVE = 12


@dataclass(frozen=True)
class Augmentation:
    """How far each transform may go; all zero (the default) is no augmentation."""

    pitch: int = 0  # semitones (= CQT bins), each way
    gain_db: float = 0.0
    tilt_db: float = 0.0  # per octave, each way
    stretch: float = 0.0  # the patch is slowed down by a factor in [1, 1 + stretch]

    @property
    def active(self) -> bool:
        return bool(self.pitch or self.gain_db or self.tilt_db or self.stretch)


def pitch_shift(patch: np.ndarray, semitones: int) -> np.ndarray:
    """``patch`` (bins, frames) moved up by ``semitones`` bins (down when negative), the emptied bins at
    its floor."""
    if semitones == 0:
        return patch
    shifted = np.full_like(patch, patch.min())
    if semitones > 0:
        shifted[semitones:] = patch[:-semitones]
    else:
        shifted[:semitones] = patch[-semitones:]
    return shifted


def time_stretch(patch: np.ndarray, factor: float) -> np.ndarray:
    """``patch`` (bins, frames) slowed down by ``factor`` >= 1: its first frames / factor frames spread over
    all frames by linear interpolation."""
    if factor == 1.0:
        return patch
    n_frames = patch.shape[1]
    positions = np.arange(n_frames) / factor
    left = np.floor(positions).astype(int)
    right = np.minimum(left + 1, n_frames - 1)
    weight = (positions - left).astype(patch.dtype)
    return patch[:, left] * (1 - weight) + patch[:, right] * weight


def augment(patches: np.ndarray, rng: np.random.Generator, augmentation: Augmentation) -> np.ndarray:
    """Each of ``patches`` (n, bins, frames), dB, transformed by its own draw of ``augmentation``."""
    if not augmentation.active:
        return patches
    n, n_bins, _ = patches.shape
    semitones = rng.integers(-augmentation.pitch, augmentation.pitch + 1, size=n)
    gains = rng.uniform(-augmentation.gain_db, augmentation.gain_db, size=n)
    tilts = rng.uniform(-augmentation.tilt_db, augmentation.tilt_db, size=n)
    factors = rng.uniform(1.0, 1.0 + augmentation.stretch, size=n)
    octaves = (np.arange(n_bins) - (n_bins - 1) / 2) / BINS_PER_OCTAVE
    out = np.empty_like(patches)
    for i in range(n):
        patch = time_stretch(pitch_shift(patches[i], int(semitones[i])), float(factors[i]))
        out[i] = patch + (gains[i] + tilts[i] * octaves)[:, None].astype(patches.dtype)
    return out
