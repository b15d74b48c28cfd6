"""The ``scores`` catalog: real, human-composed music, rendered from public-domain scores.

Why: the demo's sound is a direct function of its tags, so it learns in tens of steps what
music needs hundreds for; a budget or a stopping rule judged on it says nothing about music.
This catalog is music: pieces of the music21 corpus (it ships inside the music21 wheel:
Bach chorales, Palestrina masses, Monteverdi madrigals, trecento ballate, classical and
romantic quartets and songs, Joplin, Irish, Scottish, American, German and Chinese folk
tunes), arranged and rendered with sampled instruments (FluidSynth and a General-MIDI
soundfont, :mod:`trackrank.data.scores.render`).

Each track is an excerpt of one piece with an arrangement drawn from (seed, track): the
instruments of its parts, a tempo around the piece's own, a transposition, a dynamic level
and where the excerpt starts. ``artist`` is the composer (anonymous folk tunes: their
collection), so the artist-disjoint split holds composers out. The tags are read from what
is rendered, in the paper's four categories:

* **Period** (binary, from the composer): medieval ... modern, folk;
* **Instrumentation** (binary, from the arrangement): the instrument families that play, and
  the ensemble (one voice, two or three, four, five or more);
* **Mood** (graded): major / minor from a Krumhansl-Kessler key-profile correlation of the
  excerpt's pitch classes, energetic / calm from tempo, note density and dynamics, bright /
  dark from mode and register;
* **Movement**: meter (binary: duple, triple, compound), slow / fast (graded, beats per
  minute), sparse / dense (graded, onsets per second), low / high register (graded, mean
  pitch), soft / loud (graded, MIDI velocity).

Binary categories make ties in S everywhere, as professional tags do.

The plan (which piece each track plays, its artist, its shard) is drawn from the seed alone,
without parsing a score, so the workflow knows every audio file before rendering; the tags
need the score and are written by the render jobs.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from trackrank.data.built_in_catalogs import taxonomy_meta, taxonomy_tags

log = logging.getLogger(__name__)

#: corpus folder -> (period, [(artist, file-name prefixes or () for all)]): who wrote what, and when.
#: Anonymous folk tunes get their collection as artist.
COLLECTIONS: dict[str, tuple[str, list[tuple[str, tuple[str, ...]]]]] = {
    "trecento": ("medieval", [("trecento", ())]),
    "ciconia": ("medieval", [("ciconia", ())]),
    "luca": ("medieval", [("luca", ())]),
    "josquin": ("renaissance", [("josquin", ())]),
    "palestrina": ("renaissance", [("palestrina", ())]),
    "lusitano": ("renaissance", [("lusitano", ())]),
    "monteverdi": ("renaissance", [("monteverdi", ())]),
    "bach": ("baroque", [("bach", ())]),
    "handel": ("baroque", [("handel", ())]),
    "corelli": ("baroque", [("corelli", ())]),
    "cpebach": ("classical", [("cpebach", ())]),
    "haydn": ("classical", [("haydn", ())]),
    "mozart": ("classical", [("mozart", ())]),
    "beethoven": ("classical", [("beethoven", ())]),
    "schubert": ("romantic", [("schubert", ())]),
    "schumann_robert": ("romantic", [("schumann_robert", ())]),
    "schumann_clara": ("romantic", [("schumann_clara", ())]),
    "chopin": ("romantic", [("chopin", ())]),
    "verdi": ("romantic", [("verdi", ())]),
    "weber": ("romantic", [("weber", ())]),
    "beach": ("romantic", [("beach", ())]),
    "liliuokalani": ("romantic", [("liliuokalani", ())]),
    "joplin": ("modern", [("joplin", ())]),
    "johnson_j_r": ("modern", [("johnson_j_r", ())]),
    "schoenberg": ("modern", [("schoenberg", ())]),
    "webern": ("modern", [("webern", ())]),
    "essenFolksong": (
        "folk",
        [
            ("essen_china", ("han",)),
            (
                "essen_europe",
                ("altdeu", "ballad", "boehme", "dva", "erk", "fink", "kinder", "lot", "lux", "variant", "zuccal"),
            ),
        ],
    ),
    "oneills1850": ("folk", [("oneills_1850", ())]),
    "ryansMammoth": ("folk", [("ryans_mammoth", ())]),
    "airdsAirs": ("folk", [("airds_airs", ())]),
    "miscFolk": ("folk", [("misc_folk", ())]),
    "nottingham-dataset": ("folk", [("nottingham", ())]),
}
SCORE_SUFFIXES = (".mxl", ".xml", ".musicxml", ".krn", ".abc")
PERIODS = ["medieval", "renaissance", "baroque", "classical", "romantic", "modern", "folk"]

#: Instrument families (the Instrumentation tags) and their General-MIDI programs, low to high.
FAMILIES: dict[str, list[int]] = {
    "piano": [0],
    "organ": [19],
    "harpsichord": [6],
    "strings": [42, 41, 40],  # cello, viola, violin
    "woodwinds": [70, 71, 68, 73, 74],  # bassoon, clarinet, oboe, flute, recorder
    "brass": [58, 57, 60, 56],  # tuba, trombone, horn, trumpet
    "voices": [52, 53],  # choir aahs, voice oohs
    "plucked": [24, 46],  # nylon guitar, harp
}
#: How likely each family is in a period's arrangements (the rest share what is left).
PERIOD_FAMILIES: dict[str, dict[str, float]] = {
    "medieval": {"voices": 3, "woodwinds": 2, "plucked": 2, "strings": 1, "organ": 1},
    "renaissance": {"voices": 4, "woodwinds": 2, "brass": 1, "plucked": 1, "strings": 1, "organ": 1},
    "baroque": {"organ": 3, "harpsichord": 2, "strings": 2, "woodwinds": 1, "voices": 2, "brass": 1},
    "classical": {"strings": 4, "piano": 3, "woodwinds": 1, "harpsichord": 1, "brass": 1},
    "romantic": {"piano": 4, "strings": 2, "voices": 1, "woodwinds": 1, "brass": 1},
    "modern": {"piano": 4, "strings": 2, "woodwinds": 1, "brass": 1, "plucked": 1},
    "folk": {"strings": 3, "woodwinds": 3, "plucked": 2, "piano": 1, "voices": 1},
}
#: Quarter-note tempo of a period when the score gives none (the arrangement varies it).
PERIOD_TEMPO = {"medieval": 84, "renaissance": 76, "baroque": 88, "classical": 112, "romantic": 96, "modern": 100}
FOLK_TEMPO = 126
ENSEMBLES = ["one_voice", "two_three_voices", "four_voices", "five_plus_voices"]
MOOD = ["major", "minor", "energetic", "calm", "bright", "dark"]
MOVEMENT = [
    "duple_meter",
    "triple_meter",
    "compound_meter",
    "slow",
    "fast",
    "sparse",
    "dense",
    "low_register",
    "high_register",
    "soft",
    "loud",
]
TAXONOMY: dict[str, list[str]] = {
    "Period": PERIODS,
    "Instrumentation": [*FAMILIES, *ENSEMBLES],
    "Mood": MOOD,
    "Movement": MOVEMENT,
}
CATEGORY_WEIGHTS = {"Period": 1.0, "Instrumentation": 0.8, "Mood": 0.6, "Movement": 0.6}


@dataclass(frozen=True)
class ScoresSettings:
    """The size of the ``scores`` catalog and how it is rendered."""

    n_tracks: int = 400
    duration_s: float = 30.0
    n_shards: int = 4
    sample_rate: int = 22050
    soundfont: str = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
    seed: int = 0
    untagged_share: float = 0.0  # of the tracks, listed in untagged.csv without their tags

    @classmethod
    def from_config(cls, config: dict) -> ScoresSettings:
        """The catalog's settings from a validated workflow config (``scores``, ``seed``)."""
        scores = config["scores"]
        return cls(
            n_tracks=scores["n_tracks"],
            duration_s=scores["duration_s"],
            n_shards=scores["n_shards"],
            sample_rate=scores["sample_rate"],
            soundfont=scores["soundfont"],
            seed=config["seed"],
            untagged_share=scores["untagged_share"],
        )


def tag_names() -> list[str]:
    """All tags, in column order."""
    return taxonomy_tags(TAXONOMY)


def taxonomy_table() -> pd.DataFrame:
    """The taxonomy as a ``tags_meta.csv`` table: ``tag``, ``category``, ``weight``."""
    return taxonomy_meta(TAXONOMY, CATEGORY_WEIGHTS)


def corpus_root() -> Path:
    """The folder of the music21 corpus inside the installed music21 wheel (found without importing music21)."""
    import importlib.util

    spec = importlib.util.find_spec("music21")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("catalog: scores needs music21 (pip install music21): its corpus is the catalog")
    return Path(next(iter(spec.submodule_search_locations))) / "corpus"


@functools.cache
def pieces() -> pd.DataFrame:
    """Every usable score of the corpus: ``piece`` (path relative to the corpus), ``artist``, ``period``.

    One file per piece: where a piece comes in several formats (``.mus`` and ``.xml``) the first
    of :data:`SCORE_SUFFIXES` wins. Sorted, so the plan depends on the corpus, not on the file system.
    """
    root = corpus_root()
    rows = []
    for folder, (period, artists) in COLLECTIONS.items():
        files: dict[str, Path] = {}
        for path in sorted((root / folder).rglob("*")):
            if path.suffix in SCORE_SUFFIXES and not path.name.startswith("test"):
                stem = str(path.with_suffix(""))
                current = files.get(stem)
                if current is None or SCORE_SUFFIXES.index(path.suffix) < SCORE_SUFFIXES.index(current.suffix):
                    files[stem] = path
        for path in sorted(files.values()):
            for artist, prefixes in artists:
                if not prefixes or path.name.startswith(prefixes):
                    rows.append((str(path.relative_to(root)), artist, period))
                    break
    return pd.DataFrame(rows, columns=["piece", "artist", "period"])


def catalog_plan(settings: ScoresSettings) -> pd.DataFrame:
    """Which piece each track plays: ``track_id``, ``path``, ``artist``, ``period``, ``piece``, ``shard``.

    Artists get tracks in proportion to 1 + log(their number of pieces) (Palestrina's 1,300 masses
    do not drown Corelli's one sonata), at least 2 each; an artist plays distinct pieces while it
    has them, then other excerpts of them. Drawn from the seed alone: no score is parsed.
    """
    rng = np.random.default_rng([settings.seed, 31])
    pool = pieces()
    artists = pool.groupby("artist", sort=True)
    weights = np.array([1.0 + math.log(len(group)) for _, group in artists])
    counts = np.maximum(2, np.floor(weights / weights.sum() * settings.n_tracks)).astype(int)
    order = rng.permutation(len(counts))
    i = 0
    while counts.sum() < settings.n_tracks:  # hand out what flooring left, in a seeded order
        counts[order[i % len(order)]] += 1
        i += 1
    rows = []
    for (artist, group), count in zip(artists, counts):
        chosen = rng.permutation(len(group))
        for j in range(count):
            row = group.iloc[chosen[j % len(group)]]
            rows.append((artist, row.period, row.piece))
    rows = [rows[i] for i in rng.permutation(len(rows))][: settings.n_tracks]
    table = pd.DataFrame(rows, columns=["artist", "period", "piece"])
    table.insert(0, "track_id", [f"score{i:05d}" for i in range(len(table))])
    table.insert(1, "path", [f"audio/{t}.flac" for t in table.track_id])
    table["shard"] = shards_by_piece(table["piece"], settings.n_shards)
    return table


def shards_by_piece(pieces: pd.Series, n_shards: int) -> np.ndarray:
    """The render shard of each track: all tracks of a piece in one shard, so that its job parses the
    score once (parsing is about half of rendering a track, and a fifth of the default plan's tracks
    replay a piece). Pieces go most-played first (then by name) to the shard with the fewest tracks so
    far (the lowest on a tie): shard sizes differ by at most one piece's tracks."""
    counts = pieces.value_counts()
    load = np.zeros(n_shards, dtype=int)
    shard_of = {}
    for piece in sorted(counts.index, key=lambda piece: (-counts[piece], piece)):
        shard_of[piece] = int(np.argmin(load))
        load[shard_of[piece]] += counts[piece]
    return pieces.map(shard_of).to_numpy()


# --- what a rendered excerpt is, and the tags read from it ---------------------------------------------


@dataclass
class Excerpt:
    """The notes of one arranged excerpt, ready to render, and what the tags are read from.

    ``notes``: (n, 5) float array of (onset s, duration s, MIDI pitch, velocity, part), onsets
    from 0; ``programs``: the General-MIDI program of each part; ``meter``: ``duple``,
    ``triple`` or ``compound``; ``beat_bpm``: beats per minute of the meter's beat.
    """

    notes: np.ndarray
    programs: list[int]
    families: list[str]
    meter: str
    beat_bpm: float
    duration_s: float


#: Krumhansl & Kessler (1982) key profiles, C major and C minor.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def mode_correlations(notes: np.ndarray) -> tuple[float, float]:
    """Best correlation of the duration-weighted pitch-class profile with any major key and any minor key."""
    profile = np.bincount(notes[:, 2].astype(int) % 12, weights=notes[:, 1], minlength=12)
    if not profile.any():
        return 0.0, 0.0
    major = max(np.corrcoef(profile, np.roll(MAJOR_PROFILE, k))[0, 1] for k in range(12))
    minor = max(np.corrcoef(profile, np.roll(MINOR_PROFILE, k))[0, 1] for k in range(12))
    return float(major), float(minor)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def excerpt_tags(excerpt: Excerpt, period: str) -> dict[str, float]:
    """The tags of a rendered excerpt: likelihoods in [0, 1], rounded to 2 decimals."""
    notes = excerpt.notes
    tags = dict.fromkeys(tag_names(), 0.0)
    tags[period] = 1.0
    for family in set(excerpt.families):
        tags[family] = 1.0
    voices = len(excerpt.programs)
    tags[ENSEMBLES[0 if voices == 1 else 1 if voices <= 3 else 2 if voices == 4 else 3]] = 1.0
    tags[f"{excerpt.meter}_meter"] = 1.0
    major, minor = mode_correlations(notes)
    tags["major"] = _sigmoid((major - minor) / 0.08)
    tags["minor"] = 1.0 - tags["major"]
    onsets_per_s = len(np.unique(np.round(notes[:, 0], 3))) / excerpt.duration_s
    mean_pitch = float(np.average(notes[:, 2], weights=notes[:, 1]))
    velocity = float(np.mean(notes[:, 3]))
    tags["slow"] = _sigmoid((80.0 - excerpt.beat_bpm) / 10.0)
    tags["fast"] = _sigmoid((excerpt.beat_bpm - 120.0) / 12.0)
    tags["sparse"] = _sigmoid((2.5 - onsets_per_s) / 0.7)
    tags["dense"] = _sigmoid((onsets_per_s - 5.0) / 1.0)
    tags["low_register"] = _sigmoid((56.0 - mean_pitch) / 3.0)
    tags["high_register"] = _sigmoid((mean_pitch - 68.0) / 3.0)
    tags["soft"] = _sigmoid((60.0 - velocity) / 6.0)
    tags["loud"] = _sigmoid((velocity - 90.0) / 6.0)
    energy = (excerpt.beat_bpm - 100.0) / 25.0 + (onsets_per_s - 3.5) / 1.5 + (velocity - 75.0) / 15.0
    tags["energetic"] = _sigmoid(energy - 1.0)
    tags["calm"] = _sigmoid(-energy - 1.0)
    tags["bright"] = tags["major"] * _sigmoid((mean_pitch - 64.0) / 4.0)
    tags["dark"] = tags["minor"] * _sigmoid((62.0 - mean_pitch) / 4.0)
    return {tag: round(float(value), 2) for tag, value in tags.items()}
