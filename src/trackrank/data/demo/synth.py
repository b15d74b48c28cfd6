"""Render a music track from its tag likelihoods (the demo catalog's sound).

The tags drive the sound, so that an audio model can learn what the oracle S
sees in the tags:

* Genre picks tempo, drum pattern, chord progression, scale and swing;
* Recording tags pick the instruments (harmonic spectrum, envelope, role), each
  voice as loud as its tag's likelihood;
* Mood sets mode (major/minor), register (dark/bright), dynamics (calm/energetic),
  crescendo (epic) and tremolo with dissonance (tense);
* Movement sets tempo (fast/slow), acceleration, note density (sparse/dense),
  motif repetition and syncopation.

Per-track randomness (key, detune, melody, gain, background noise) keeps the tags
from being readable off a single frame. Everything is seeded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Timbre:
    """An instrument: partial amplitudes, envelope (seconds) and its role in the band."""

    harmonics: tuple[float, ...]
    attack: float
    decay: float  # exponential decay time constant; large = sustained
    role: str  # chords | pad | power | arpeggio | melody | bass
    octave: int = 0
    saturate: float = 0.0
    breath: float = 0.0
    vibrato: float = 0.0  # depth in semitones at 5 Hz
    gain: float = 1.0


INSTRUMENTS: dict[str, Timbre] = {
    "piano": Timbre((1.0, 0.5, 0.3, 0.18, 0.1, 0.06, 0.03), 0.005, 0.7, "chords"),
    "strings": Timbre(tuple(1.0 / k for k in range(1, 11)), 0.18, 8.0, "pad", vibrato=0.12, gain=0.6),
    "distorted_guitar": Timbre(
        tuple(1.0 / k for k in range(1, 7)), 0.01, 1.5, "power", octave=-12, saturate=6.0, gain=0.5
    ),
    "acoustic_guitar": Timbre((1.0, 0.7, 0.35, 0.2, 0.12, 0.06), 0.003, 0.35, "arpeggio"),
    "synth_pad": Timbre((1.0, 0.45, 0.3, 0.2), 0.4, 10.0, "pad", octave=-12, gain=0.6),
    "synth_lead": Timbre((1.0, 0.0, 0.33, 0.0, 0.2, 0.0, 0.14, 0.0, 0.11), 0.01, 3.0, "melody", gain=0.6),
    "brass": Timbre((0.5, 0.8, 1.0, 0.8, 0.6, 0.4, 0.25, 0.15), 0.06, 2.0, "melody", octave=-12, gain=0.55),
    "flute": Timbre((1.0, 0.15, 0.05), 0.05, 4.0, "melody", octave=12, breath=0.08, vibrato=0.08),
    "heavy_bass": Timbre((1.0, 0.6, 0.2), 0.005, 0.6, "bass", octave=-24, saturate=1.5, gain=1.2),
    "choir": Timbre((0.6, 1.0, 0.7, 0.25, 0.4, 0.3, 0.1), 0.25, 8.0, "pad", vibrato=0.2, gain=0.5),
}

GENRE_TEMPO = {
    "rock": 124,
    "electro": 128,
    "jazz": 112,
    "classical": 84,
    "folk": 100,
    "hiphop": 88,
    "ambient": 66,
    "latin": 108,
    "pop": 116,
}

#: Chord progressions as scale degrees (0 = tonic), one chord per bar.
GENRE_PROGRESSION = {
    "rock": [0, 3, 4, 3],
    "electro": [0, 5, 2, 6],
    "jazz": [1, 4, 0, 5],
    "classical": [0, 3, 4, 0],
    "folk": [0, 3, 0, 4],
    "hiphop": [0, 0, 5, 6],
    "ambient": [0, 3],
    "latin": [0, 3, 4, 0],
    "pop": [0, 4, 5, 3],
}

#: 16-step drum patterns (kick, snare, hat), straight and syncopated.
GENRE_DRUMS = {
    "rock": ("x...x...x...x...", "....x.......x...", "x.x.x.x.x.x.x.x."),
    "electro": ("x...x...x...x...", "....x.......x...", "..x...x...x...x."),
    "jazz": ("x.........x.....", "......x.......x.", "x..xx..xx..xx..x"),
    "classical": ("x.......x.......", "................", "x...x...x...x..."),
    "folk": ("x.......x.......", "....x.......x...", "x...x...x...x..."),
    "hiphop": ("x......x..x.....", "....x.......x...", "x.x.x.x.x.x.x.x."),
    "ambient": ("x...............", "................", "x.......x......."),
    "latin": ("x..x..x...x..x..", "...x..x....x..x.", "xxxxxxxxxxxxxxxx"),
    "pop": ("x.....x.x.......", "....x.......x...", "x.x.x.x.x.x.x.x."),
}
SYNCOPATED = ("x..x..x...x.....", "...x......x..x..", "..x..x..x..x..x.")

MAJOR = [0, 2, 4, 5, 7, 9, 11]
MINOR = [0, 2, 3, 5, 7, 8, 10]
DORIAN = [0, 2, 3, 5, 7, 9, 10]


def midi_to_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


class _Renderer:
    """Adds notes and drum hits into one buffer, caching identical notes."""

    def __init__(self, n_samples: int, sr: int, rng: np.random.Generator):
        self.buffer = np.zeros(n_samples)
        self.sr = sr
        self.rng = rng
        self._cache: dict[tuple, np.ndarray] = {}

    def _note_wave(self, timbre: Timbre, midi: float, n: int) -> np.ndarray:
        key = (id(timbre), round(midi, 3), n)
        if key not in self._cache:
            t = np.arange(n) / self.sr
            freq = midi_to_hz(midi)
            phase = 2 * np.pi * freq * t
            if timbre.vibrato:
                phase = phase + timbre.vibrato * freq * (2 ** (1 / 12) - 1) / 5.0 * np.sin(2 * np.pi * 5.0 * t)
            wave = np.zeros(n)
            for k, amplitude in enumerate(timbre.harmonics, start=1):
                if amplitude and k * freq < self.sr / 2.2:
                    wave += amplitude * np.sin(k * phase)
            if timbre.breath:
                wave += timbre.breath * self.rng.standard_normal(n) * sum(timbre.harmonics)
            if timbre.saturate:
                wave = np.tanh(timbre.saturate * wave) / np.tanh(timbre.saturate)
            release = np.minimum(1.0, (n - np.arange(n)) / (0.02 * self.sr))
            envelope = np.minimum(1.0, t / timbre.attack) * np.exp(-t / timbre.decay) * release
            self._cache[key] = wave * envelope / max(1.0, sum(timbre.harmonics) * 0.5)
        return self._cache[key]

    def note(self, timbre: Timbre, midi: float, start: float, duration: float, gain: float) -> None:
        i = int(start * self.sr)
        n = min(int(duration * self.sr), len(self.buffer) - i)
        if n > 16:
            self.buffer[i : i + n] += gain * timbre.gain * self._note_wave(timbre, midi, n)

    def drum(self, kind: str, electronic: bool, start: float, gain: float) -> None:
        key = ("drum", kind, electronic)
        if key not in self._cache:
            self._cache[key] = self._drum_wave(kind, electronic)
        wave = self._cache[key]
        i = int(start * self.sr)
        n = min(len(wave), len(self.buffer) - i)
        if n > 0:
            self.buffer[i : i + n] += gain * wave[:n]

    def _drum_wave(self, kind: str, electronic: bool) -> np.ndarray:
        sr = self.sr
        if kind == "kick":
            length = 0.5 if electronic else 0.25
            t = np.arange(int(length * sr)) / sr
            f = 45 + (110 if electronic else 70) * np.exp(-t / 0.04)
            return np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / (0.25 if electronic else 0.08))
        if kind == "snare":
            t = np.arange(int(0.2 * sr)) / sr
            noise = self.rng.standard_normal(len(t))
            if electronic:  # clap: three short noise bursts
                bursts = sum(np.exp(-np.maximum(t - d, 0) / 0.01) * (t >= d) for d in (0.0, 0.012, 0.024))
                return 0.5 * noise * bursts
            return 0.5 * (noise * np.exp(-t / 0.05) + 0.8 * np.sin(2 * np.pi * 190 * t) * np.exp(-t / 0.03))
        t = np.arange(int(0.08 * sr)) / sr  # hat: high-passed noise
        noise = np.diff(self.rng.standard_normal(len(t) + 1))
        return 0.15 * noise * np.exp(-t / (0.012 if electronic else 0.03))


def _weighted(tags: dict[str, float], table: dict[str, float]) -> float:
    """Likelihood-weighted mean of a per-genre table (pop when no genre is tagged)."""
    weights = {g: tags.get(g, 0.0) for g in table}
    total = sum(weights.values())
    if total == 0:
        return table["pop"]
    return sum(weights[g] * table[g] for g in table) / total


def _step_times(tempo: float, accelerate: float, duration_s: float) -> np.ndarray:
    """Onsets of 16th-note steps; the tempo rises by ``accelerate`` over the track."""
    times, t = [], 0.0
    while t < duration_s:
        times.append(t)
        t += 60.0 / (tempo * (1.0 + accelerate * t / duration_s)) / 4.0
    return np.asarray(times)


def render_track(
    tags: dict[str, float], *, duration_s: float = 20.0, sr: int = 44100, seed: int | list[int] = 0
) -> np.ndarray:
    """Render a track from its tag likelihoods.

    Parameters
    ----------
    tags : dict of tag -> likelihood in [0, 1]; absent tags count as 0.
    duration_s : length of the track in seconds.
    sr : sample rate in Hz.
    seed : seed (or seed sequence) of the track's random variation.

    Returns
    -------
    audio : np.ndarray, shape (round(duration_s * sr),), float32 in [-1, 1]
    """
    rng = np.random.default_rng(seed)  # one stream, drawn in a fixed order: arrangement, voices, drums, mix
    g = lambda tag: float(tags.get(tag, 0.0))  # noqa: E731 - local shorthand
    n_samples = int(round(duration_s * sr))
    out = _Renderer(n_samples, sr, rng)
    song = _arrange(tags, g, rng, duration_s)
    instruments = {name: g(name) for name in INSTRUMENTS if g(name) > 0}
    if not instruments:
        instruments = {"piano": 0.3}
    for name, likelihood in instruments.items():
        _play_voice(out, INSTRUMENTS[name], 0.2 + 0.8 * likelihood, song, g, rng)
    drums = {"acoustic_drums": False, "electronic_drums": True}
    for name, electronic in drums.items():
        if g(name) == 0:
            continue
        _play_drums(out, electronic, 0.3 + 0.7 * g(name), song, rng)
    return _mixed(out.buffer, g, rng, sr)


@dataclass(frozen=True)
class _Arrangement:
    """What a track's tags (and its random key and motif) decide before a note is played."""

    genre: str
    onsets: np.ndarray  # each 16th-note step's onset (s), swung
    step_len: np.ndarray  # each step's length (s)
    scale: list[int]
    root: float  # MIDI pitch of the tonic, slightly detuned
    register: float  # semitones up (bright) or down (dark), but for the bass
    progression: list[int]
    bars_per_chord: int
    seventh: bool
    density: float  # in [0.05, 1]: how many notes and hats are played
    syncopated: bool
    motif: np.ndarray  # 16 steps of a repeated melody

    def pitch(self, degree: int, octave_shift: float = 0.0) -> float:
        octave, index = divmod(degree, 7)
        return self.root + 12 * octave + self.scale[index] + octave_shift

    def chord(self, step: int) -> list[int]:
        degree = self.progression[(step // (16 * self.bars_per_chord)) % len(self.progression)]
        return [degree, degree + 2, degree + 4] + ([degree + 6] if self.seventh else [])


def _arrange(
    tags: dict[str, float], g: Callable[[str], float], rng: np.random.Generator, duration_s: float
) -> _Arrangement:
    """The track's arrangement: genre, tempo, swing, scale and key, density; draws the tempo's variation,
    the key, then the motif."""
    genre = max(GENRE_TEMPO, key=lambda name: (g(name), name == "pop"))
    tempo = _weighted(tags, GENRE_TEMPO) * (1 + 0.3 * g("fast") - 0.3 * g("slow")) * rng.uniform(0.95, 1.05)
    steps = _step_times(tempo, 0.4 * g("accelerating"), duration_s)
    swing = 0.3 * g("jazz") * (steps[1] - steps[0]) if len(steps) > 1 else 0.0
    minor_score = g("sad") + 0.6 * g("dark") + 0.5 * g("tense") - g("happy") - 0.6 * g("bright")
    scale = MINOR if minor_score > 0 else MAJOR
    if genre == "jazz" and minor_score > 0:
        scale = DORIAN
    root = 48 + rng.integers(12) + rng.uniform(-0.3, 0.3)  # random key, slightly detuned
    density = float(
        np.clip(0.5 + 0.45 * g("dense") - 0.45 * g("sparse") + 0.2 * g("energetic") - 0.2 * g("calm"), 0.05, 1.0)
    )
    motif = rng.integers(-3, 5, size=16)
    return _Arrangement(
        genre=genre,
        onsets=steps + np.where(np.arange(len(steps)) % 4 == 2, swing, 0.0),
        step_len=np.diff(np.append(steps, duration_s)),
        scale=scale,
        root=root,
        register=10 * (g("bright") - g("dark")),
        progression=GENRE_PROGRESSION[genre],
        bars_per_chord=2 if g("slow") > 0.5 or genre == "ambient" else 1,
        seventh=genre == "jazz",
        density=density,
        syncopated=g("syncopated") > 0.4,
        motif=motif,
    )


def _play_voice(
    out: _Renderer,
    timbre: Timbre,
    gain: float,
    song: _Arrangement,
    g: Callable[[str], float],
    rng: np.random.Generator,
) -> None:
    """One instrument's part over the whole track, as its role plays the chords (a melody draws its notes)."""
    shift = timbre.octave + (song.register if timbre.role != "bass" else 0.0)
    pitch, density = song.pitch, song.density
    walk = 0
    for s, (onset, length) in enumerate(zip(song.onsets, song.step_len)):
        in_bar, tones = s % 16, song.chord(s)
        if timbre.role == "pad" and s % (16 * song.bars_per_chord) == 0:
            for d in tones:
                out.note(timbre, pitch(d, 12 + shift), onset, 16 * song.bars_per_chord * length, gain * 0.5)
        elif timbre.role == "chords" and in_bar % (4 if density > 0.4 else 8) == 0:
            for d in tones:
                out.note(timbre, pitch(d, 12 + shift), onset, 4 * length, gain * 0.45)
            if g("tense") > 0.4:  # a minor ninth over the root: dissonance
                out.note(timbre, pitch(tones[0], 25 + shift), onset, 4 * length, gain * 0.3 * g("tense"))
        elif timbre.role == "power" and (SYNCOPATED[0] if song.syncopated else "x.x.x.x.x.x.x.x.")[in_bar] == "x":
            out.note(timbre, pitch(tones[0], 12 + shift), onset, 2 * length, gain * 0.5)
            out.note(timbre, pitch(tones[0] + 4, 12 + shift), onset, 2 * length, gain * 0.35)
        elif timbre.role == "arpeggio" and in_bar % 2 == 0:
            out.note(timbre, pitch(tones[(in_bar // 2) % len(tones)], 12 + shift), onset, 3 * length, gain * 0.5)
        elif timbre.role == "bass" and in_bar % (2 if density > 0.7 else 4) == 0:
            out.note(timbre, pitch(tones[0], 12 + shift), onset, 2 * length, gain * 0.7)
        elif timbre.role == "melody":
            every = 1 if density > 0.75 else 2 if density > 0.4 else 4
            if in_bar % every or rng.random() > 0.35 + 0.6 * density:
                continue
            if g("repetitive") > 0.4:
                walk = int(song.motif[in_bar])
            else:
                walk = int(np.clip(walk + rng.integers(-2, 3), -4, 9))
            out.note(timbre, pitch(tones[0] + walk, 12 + shift), onset, every * length * 1.1, gain * 0.5)


def _play_drums(
    out: _Renderer, electronic: bool, loudness: float, song: _Arrangement, rng: np.random.Generator
) -> None:
    """A drum kit's kick, snare and hat over the whole track (the hats thinned at random as density asks)."""
    patterns = SYNCOPATED if song.syncopated else GENRE_DRUMS[song.genre]
    for s, onset in enumerate(song.onsets):
        for kind, pattern, level in zip(("kick", "snare", "hat"), patterns, (0.9, 0.6, 0.5)):
            if pattern[s % 16] == "x" and (kind != "hat" or rng.random() < 0.4 + 0.6 * song.density):
                out.drum(kind, electronic, onset, level * loudness)


def _mixed(audio: np.ndarray, g: Callable[[str], float], rng: np.random.Generator, sr: int) -> np.ndarray:
    """The played parts with the mood's dynamics, crescendo (epic) and tremolo (tense), a faint random
    noise floor, soft-clipped to [-1, 1]."""
    n_samples = len(audio)
    t = np.arange(n_samples) / sr
    dynamics = (0.35 + 0.35 * g("energetic") - 0.15 * g("calm")) * rng.uniform(0.7, 1.0)
    envelope = 1.0 + g("epic") * (np.linspace(-0.6, 0.4, n_samples))
    envelope *= 1.0 - 0.45 * g("tense") * (0.5 + 0.5 * np.sin(2 * np.pi * 7.0 * t))
    audio = audio * dynamics * envelope
    noise = np.convolve(rng.standard_normal(n_samples), np.ones(8) / 8, mode="same")
    audio = audio + noise * 10 ** (rng.uniform(-50, -35) / 20)
    return (0.95 * np.tanh(audio)).astype(np.float32)
