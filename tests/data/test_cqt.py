"""The constant-Q transform with a filter bank built once: librosa.cqt's values, bit for bit."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from trackrank.data.cqt import ConstantQ, constant_q
from trackrank.data.features import BINS_PER_OCTAVE, FMIN, HOP_LENGTH, N_BINS

#: trackrank's settings, then settings where librosa halves the rate early (hop 256 at 22.05 kHz, a low top
#: bin) or cannot halve it for every octave (hop 96 = 32 x 3).
SETTINGS = [
    (44100, HOP_LENGTH, FMIN, N_BINS, BINS_PER_OCTAVE),
    (22050, 256, 55.0, 72, 24),
    (44100, 96, 110.0, 36, 12),
    (44100, HOP_LENGTH, FMIN, 90, 12),
]


@pytest.mark.parametrize("settings", SETTINGS, ids=["trackrank", "early-halving", "odd-hop", "partial-octave"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_equals_librosa_cqt_bit_for_bit_at_every_length(settings, dtype):
    sr, hop, fmin, n_bins, bins_per_octave = settings
    transform = ConstantQ(sr, hop, fmin, n_bins, bins_per_octave)
    rng = np.random.default_rng(7)
    for n_samples in (4096, 44100, 44100 * 13 + 17):  # shorter than the lowest filter, one second, a demo track
        y = (0.1 * rng.standard_normal(n_samples)).astype(dtype)
        expected = librosa.cqt(y, sr=sr, hop_length=hop, fmin=fmin, n_bins=n_bins, bins_per_octave=bins_per_octave)
        for _ in range(2):  # the second call reuses the bank: it must not have been changed by the first
            actual = transform(y)
            assert actual.dtype == expected.dtype and actual.shape == expected.shape
            np.testing.assert_array_equal(actual, expected)


def test_one_bank_per_process_and_settings():
    assert constant_q(44100, HOP_LENGTH, FMIN, N_BINS, BINS_PER_OCTAVE) is constant_q(
        44100, HOP_LENGTH, FMIN, N_BINS, BINS_PER_OCTAVE
    )
    transform = constant_q(44100, HOP_LENGTH, FMIN, N_BINS, BINS_PER_OCTAVE)
    transform(np.zeros(44100, np.float32))
    bank = transform.bank(np.complex64)
    transform(np.ones(44100, np.float32))
    assert transform.bank(np.complex64) is bank and len(bank) == 8


def test_a_rate_too_low_for_the_top_bin_is_refused():
    with pytest.raises(ValueError, match="sample rate"):
        ConstantQ(8000, 512, FMIN, N_BINS, BINS_PER_OCTAVE)
