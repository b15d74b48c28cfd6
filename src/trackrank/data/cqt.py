"""The constant-Q transform with its filter bank built once per process, equal to ``librosa.cqt`` bit for bit.

Why: ``librosa.cqt`` rebuilds its filters on every call (per octave: wavelets, their FFTs, a sparse
basis), about a third of the time it spends on a 60 s track, and a catalog transforms the same bank for
every track, twice for a track longer than one chunk. :class:`ConstantQ` builds the bank once, from
librosa's own pieces, and runs librosa's recursive sub-sampling (Schoerkhuber and Klapuri 2010) with it:
the same arithmetic in the same order, so the features do not move by one bit
(``tests/data/test_cqt.py`` compares the two on every length class).

Fixed, as ``trackrank.data.features`` calls it: CQT (no variable-Q), tuning 0, filter scale 1, L1 norm,
sparsity 0.01, Hann window, length scaling, zero padding, soxr_hq resampling.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import librosa
import numpy as np
import scipy.sparse

#: librosa.cqt's defaults, which trackrank keeps.
FILTER_SCALE = 1.0
NORM = 1
SPARSITY = 0.01
WINDOW = "hann"
RES_TYPE = "soxr_hq"


@dataclass(frozen=True)
class Octave:
    """One octave's filters in the frequency domain, at the sample rate that octave is computed at."""

    basis: scipy.sparse.csr_matrix  # (filters, n_fft // 2 + 1), complex
    n_fft: int


class ConstantQ:
    """``librosa.cqt(y, sr=sr, hop_length=hop_length, fmin=fmin, n_bins=n_bins, bins_per_octave=...)``
    for any mono signal ``y``, its filter bank built once (per complex dtype) and reused.

    Parameters
    ----------
    sr : sample rate of the signals, Hz.
    hop_length : samples between frames, divisible by 2 once per octave below the top one.
    fmin : the lowest bin's centre frequency, Hz.
    n_bins, bins_per_octave : bins in all, and per octave (the top octave may be partial).
    """

    def __init__(self, sr: float, hop_length: int, fmin: float, n_bins: int, bins_per_octave: int) -> None:
        self.sr, self.hop_length, self.n_bins = float(sr), int(hop_length), int(n_bins)
        self.n_filters = min(bins_per_octave, n_bins)
        self.n_octaves = int(np.ceil(n_bins / bins_per_octave))
        self.freqs = librosa.interval_frequencies(
            n_bins, fmin=fmin * 2.0 ** (0.0 / bins_per_octave), intervals="equal", bins_per_octave=bins_per_octave,
            sort=True,
        )  # fmt: skip
        self.alpha = librosa.filters._relative_bandwidth(freqs=self.freqs)  # librosa's own, so the bank is its
        lengths, cutoff = librosa.filters.wavelet_lengths(
            freqs=self.freqs, sr=self.sr, window=WINDOW, filter_scale=FILTER_SCALE, gamma=0, alpha=self.alpha
        )
        if cutoff > self.sr / 2:
            raise ValueError(f"a CQT up to {self.freqs[-1]:.0f} Hz needs a sample rate above {2 * cutoff:.0f} Hz")
        # librosa first halves the rate while the top filters and the hop allow it (none at trackrank's settings).
        by_band = max(0, int(np.ceil(np.log2(self.sr / 2 / cutoff)) - 1) - 1)
        by_hop = max(0, _two_factors(self.hop_length) - self.n_octaves + 1)
        self.early_factor = 2 ** min(by_band, by_hop)
        self.top_sr = self.sr / self.early_factor
        if self.early_factor > 1:  # librosa scales by the lengths at the rate it transforms at
            lengths, _ = librosa.filters.wavelet_lengths(
                freqs=self.freqs, sr=self.top_sr, window=WINDOW, filter_scale=FILTER_SCALE, gamma=0, alpha=self.alpha
            )
        self.scales = np.sqrt(lengths)[:, np.newaxis]
        self._banks: dict[np.dtype, list[Octave]] = {}

    def bank(self, dtype: np.dtype) -> list[Octave]:
        """The octaves' filters, highest octave first, for a complex ``dtype`` (built on first use)."""
        dtype = np.dtype(dtype)
        if dtype not in self._banks:
            self._banks[dtype] = [self._octave(i, dtype) for i in range(self.n_octaves)]
        return self._banks[dtype]

    def _octave(self, i: int, dtype: np.dtype) -> Octave:
        """Octave ``i`` (0: the top one) built as librosa builds it on each call."""
        bins = slice(-self.n_filters, None) if i == 0 else slice(-self.n_filters * (i + 1), -self.n_filters * i)
        # The rate halves with the hop, as long as the hop is even (as librosa does it).
        octave_sr = self.top_sr / 2 ** min(i, _two_factors(self.hop_length // self.early_factor))
        basis, lengths = librosa.filters.wavelet(
            freqs=self.freqs[bins], sr=octave_sr, filter_scale=FILTER_SCALE, norm=NORM, pad_fft=True,
            window=WINDOW, gamma=0, alpha=self.alpha[bins],
        )  # fmt: skip
        n_fft = basis.shape[1]
        basis *= lengths[:, np.newaxis] / float(n_fft)
        spectrum = librosa.get_fftlib().fft(basis, n=n_fft, axis=1)[:, : n_fft // 2 + 1]
        sparse = librosa.util.sparsify_rows(spectrum, quantile=SPARSITY, dtype=dtype)
        sparse[:] *= np.sqrt(self.top_sr / octave_sr)  # the same in-place rescaling as librosa's
        return Octave(basis=sparse, n_fft=n_fft)

    def __call__(self, y: np.ndarray) -> np.ndarray:
        """The complex CQT of ``y``.

        Parameters
        ----------
        y : np.ndarray, shape (n_samples,), real, at ``sr`` Hz.

        Returns
        -------
        np.ndarray, shape (n_bins, 1 + n_samples // hop_length), complex (complex64 for float32 input),
            Fortran-ordered as librosa returns it.
        """
        y = np.asarray(y)
        dtype = librosa.util.dtype_r2c(y.dtype)
        hop = self.hop_length
        if self.early_factor > 1:
            y = librosa.resample(y, orig_sr=self.early_factor, target_sr=1, res_type=RES_TYPE, scale=True)
            hop //= self.early_factor
        responses = []
        for octave in self.bank(dtype):
            spectrum = librosa.stft(y, n_fft=octave.n_fft, hop_length=hop, window="ones", pad_mode="constant",
                                    dtype=dtype)  # fmt: skip
            responses.append(octave.basis.dot(spectrum))
            if hop % 2 == 0:
                hop //= 2
                y = librosa.resample(y, orig_sr=2, target_sr=1, res_type=RES_TYPE, scale=True)
        out = self._stack(responses, dtype)
        out /= self.scales
        return out

    def _stack(self, responses: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
        """The octaves' responses as one (n_bins, frames) matrix, lowest bin first, cut to the shortest."""
        frames = min(response.shape[-1] for response in responses)
        out = np.empty((self.n_bins, frames), dtype=dtype, order="F")
        end = self.n_bins
        for response in responses:
            n = response.shape[0]
            if end < n:
                out[:end] = response[-end:, :frames]
            else:
                out[end - n : end] = response[:, :frames]
            end -= n
        return out


def _two_factors(n: int) -> int:
    """How many times ``n`` (> 0) divides by 2."""
    count = 0
    while n > 0 and n % 2 == 0:
        n, count = n // 2, count + 1
    return count


@functools.lru_cache(maxsize=8)
def constant_q(sr: float, hop_length: int, fmin: float, n_bins: int, bins_per_octave: int) -> ConstantQ:
    """The process's one :class:`ConstantQ` for these settings (worker processes build their own once)."""
    return ConstantQ(sr, hop_length, fmin, n_bins, bins_per_octave)
