"""The demo synthesiser: deterministic, and the tags drive the sound."""

from __future__ import annotations

import numpy as np
import pytest

from trackrank.data.demo.synth import render_track
from trackrank.data.features import cqt_db

ROCK = {
    "rock": 1.0,
    "distorted_guitar": 0.9,
    "acoustic_drums": 0.9,
    "heavy_bass": 0.8,
    "energetic": 0.9,
    "fast": 0.8,
    "dense": 0.7,
}
AMBIENT = {"ambient": 1.0, "synth_pad": 0.9, "choir": 0.7, "calm": 0.9, "slow": 0.9, "sparse": 0.8}
JAZZ = {"jazz": 1.0, "piano": 0.9, "brass": 0.8, "syncopated": 0.8, "happy": 0.7}


def profile(tags: dict, seed: int) -> np.ndarray:
    """Time-averaged CQT of an 8-second rendering: a cheap 'how it sounds' summary."""
    return cqt_db(render_track(tags, duration_s=8.0, seed=seed)).mean(axis=0)


def octave_profile(tags: dict, seed: int) -> np.ndarray:
    """Mean and spread of the level in each octave: timbre and dynamics, blind to the (random) key."""
    cqt = cqt_db(render_track(tags, duration_s=8.0, seed=seed))
    octaves = cqt.reshape(len(cqt), 8, 12).mean(axis=2)
    return np.concatenate([octaves.mean(axis=0), octaves.std(axis=0)])


def test_same_seed_same_samples_other_seed_other_samples():
    a = render_track(JAZZ, duration_s=4.0, seed=3)
    assert np.array_equal(a, render_track(JAZZ, duration_s=4.0, seed=3))
    assert not np.array_equal(a, render_track(JAZZ, duration_s=4.0, seed=4))
    assert a.dtype == np.float32 and a.shape == (4 * 44100,) and np.abs(a).max() <= 1.0


def test_tracks_sharing_tags_sound_closer_than_tracks_that_do_not():
    styles = [ROCK, AMBIENT, JAZZ]
    profiles = {(s, seed): octave_profile(tags, seed) for s, tags in enumerate(styles) for seed in range(3)}

    def mean_distance(s, t):
        pairs = [(i, j) for i in range(3) for j in range(3) if s != t or i < j]
        return np.mean([np.linalg.norm(profiles[s, i] - profiles[t, j]) for i, j in pairs])

    for s in range(3):
        for t in range(3):
            if s != t:
                assert max(mean_distance(s, s), mean_distance(t, t)) < mean_distance(s, t)


def test_bright_sounds_higher_than_dark():
    def centroid(tags, seed):
        p = 10 ** (profile(tags, seed) / 10)
        return (p * np.arange(len(p))).sum() / p.sum()

    base = {"pop": 1.0, "piano": 1.0, "synth_lead": 0.8}
    bright = [centroid({**base, "bright": 1.0}, s) for s in range(3)]
    dark = [centroid({**base, "dark": 1.0}, s) for s in range(3)]
    assert min(bright) > max(dark)


def test_energetic_is_louder_than_calm():
    rms = lambda tags, s: np.sqrt(np.mean(render_track(tags, duration_s=6.0, seed=s) ** 2))  # noqa: E731
    base = {"folk": 1.0, "acoustic_guitar": 1.0}
    assert min(rms({**base, "energetic": 1.0}, s) for s in range(3)) > max(
        rms({**base, "calm": 1.0}, s) for s in range(3)
    )


@pytest.mark.parametrize("tags", [{}, {"unknown_tag": 1.0}])
def test_a_track_without_known_tags_still_renders(tags):
    audio = render_track(tags, duration_s=2.0, seed=0)
    assert np.sqrt(np.mean(audio**2)) > 1e-3
