"""The built-in demo catalog: a tagged catalog synthesised with numpy.

The paper's catalog is private, so trackrank ships a stand-in that has the same
shape: a professional-style taxonomy (Genre, Recording, Mood, Movement), artists
who each have a style, tracks whose tag likelihoods vary around their artist's
style, and audio rendered *from* the tags (see :mod:`trackrank.data.demo.synth`).

The demo is written to disk in exactly the user catalog format (``tags.csv``,
``tags_meta.csv``, audio files), so every later stage treats it like a user's
catalog. The same seed gives byte-identical files.
"""

from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from trackrank.atomic import atomic_output
from trackrank.data.built_in_catalogs import taxonomy_meta, taxonomy_tags, write_built_in_tables
from trackrank.data.demo import synth
from trackrank.data.withheld_tags import withhold_tags

log = logging.getLogger(__name__)

#: Tag taxonomy: category -> tags. 36 tags in the spirit of the paper's 5 categories.
TAXONOMY: dict[str, list[str]] = {
    "Genre": ["rock", "electro", "jazz", "classical", "folk", "hiphop", "ambient", "latin", "pop"],
    "Recording": [
        "piano",
        "strings",
        "distorted_guitar",
        "acoustic_guitar",
        "synth_pad",
        "synth_lead",
        "brass",
        "flute",
        "heavy_bass",
        "acoustic_drums",
        "electronic_drums",
        "choir",
    ],
    "Mood": ["happy", "sad", "dark", "bright", "calm", "energetic", "epic", "tense"],
    "Movement": ["fast", "slow", "repetitive", "accelerating", "syncopated", "sparse", "dense"],
}

#: Category weights written to tags_meta.csv (Genre and Recording matter most, as in
#: a music-supervision catalog).
CATEGORY_WEIGHTS = {"Genre": 1.0, "Recording": 0.8, "Mood": 0.6, "Movement": 0.5}

#: Which instruments, moods and movements each genre favours (relative weights).
GENRE_STYLE: dict[str, dict[str, list[str]]] = {
    "rock": {
        "Recording": ["distorted_guitar", "acoustic_drums", "heavy_bass", "piano"],
        "Mood": ["energetic", "dark", "epic", "tense"],
        "Movement": ["fast", "dense", "repetitive"],
    },
    "electro": {
        "Recording": ["synth_pad", "synth_lead", "electronic_drums", "heavy_bass"],
        "Mood": ["energetic", "bright", "tense", "happy"],
        "Movement": ["repetitive", "fast", "dense"],
    },
    "jazz": {
        "Recording": ["piano", "brass", "acoustic_drums", "heavy_bass"],
        "Mood": ["calm", "happy", "sad", "bright"],
        "Movement": ["syncopated", "sparse", "slow"],
    },
    "classical": {
        "Recording": ["strings", "piano", "flute", "brass", "choir"],
        "Mood": ["calm", "epic", "sad", "bright"],
        "Movement": ["slow", "accelerating", "sparse"],
    },
    "folk": {
        "Recording": ["acoustic_guitar", "flute", "strings", "choir"],
        "Mood": ["happy", "calm", "sad", "bright"],
        "Movement": ["slow", "sparse", "repetitive"],
    },
    "hiphop": {
        "Recording": ["electronic_drums", "heavy_bass", "piano", "synth_pad"],
        "Mood": ["dark", "tense", "energetic", "sad"],
        "Movement": ["repetitive", "syncopated", "slow"],
    },
    "ambient": {
        "Recording": ["synth_pad", "choir", "strings", "piano"],
        "Mood": ["calm", "dark", "sad", "epic"],
        "Movement": ["slow", "sparse", "repetitive"],
    },
    "latin": {
        "Recording": ["acoustic_guitar", "brass", "acoustic_drums", "piano"],
        "Mood": ["happy", "energetic", "bright", "tense"],
        "Movement": ["syncopated", "fast", "dense"],
    },
    "pop": {
        "Recording": ["piano", "synth_lead", "electronic_drums", "acoustic_guitar", "strings"],
        "Mood": ["happy", "bright", "energetic", "sad"],
        "Movement": ["repetitive", "fast", "dense"],
    },
}

#: Pairs of tags that contradict each other; an artist never holds both.
EXCLUSIVE = [
    ("happy", "sad"),
    ("dark", "bright"),
    ("calm", "energetic"),
    ("fast", "slow"),
    ("sparse", "dense"),
    ("acoustic_drums", "electronic_drums"),
]


@dataclass(frozen=True)
class DemoSettings:
    """How big the demo catalog is. The defaults keep the whole demo fast on 2 cores."""

    n_artists: int = 72
    tracks_per_artist: float = 6.0
    duration_s: float = 20.0
    sample_rate: int = 44100
    seed: int = 0
    untagged_share: float = 0.0  # of the tracks, listed in untagged.csv without their tags

    @classmethod
    def from_config(cls, config: dict) -> DemoSettings:
        """The demo's size from a validated workflow config (``demo``, ``seed``)."""
        demo = config["demo"]
        return cls(
            n_artists=demo["n_artists"],
            tracks_per_artist=demo["tracks_per_artist"],
            duration_s=demo["duration_s"],
            seed=config["seed"],
            untagged_share=demo["untagged_share"],
        )


def tag_names() -> list[str]:
    """All tags of the taxonomy, in column order."""
    return taxonomy_tags(TAXONOMY)


def taxonomy_table() -> pd.DataFrame:
    """The taxonomy as a ``tags_meta.csv`` table: ``tag``, ``category``, ``weight``."""
    return taxonomy_meta(TAXONOMY, CATEGORY_WEIGHTS)


def _pick(rng: np.random.Generator, options: list[str], k: int, taken: set[str]) -> list[str]:
    """Pick up to ``k`` of ``options`` (earlier ones likelier) that contradict nothing taken."""
    blocked = {b for a, b in EXCLUSIVE if a in taken} | {a for a, b in EXCLUSIVE if b in taken}
    allowed = [o for o in options if o not in taken and o not in blocked]
    chosen: list[str] = []
    while allowed and len(chosen) < k:
        weights = 1.0 / (1.0 + np.arange(len(allowed)))
        tag = allowed[rng.choice(len(allowed), p=weights / weights.sum())]
        chosen.append(tag)
        blocked = {b for a, b in EXCLUSIVE if a == tag} | {a for a, b in EXCLUSIVE if b == tag}
        allowed = [o for o in allowed if o != tag and o not in blocked]
    return chosen


def artist_style(rng: np.random.Generator) -> dict[str, float]:
    """An artist's style: the tags it tends to use and how strongly (likelihood)."""
    genres = TAXONOMY["Genre"]
    primary = genres[rng.integers(len(genres))]
    style = {primary: rng.uniform(0.8, 1.0)}
    if rng.random() < 0.4:
        secondary = genres[rng.integers(len(genres))]
        if secondary != primary:
            style[secondary] = rng.uniform(0.3, 0.6)
    favoured = GENRE_STYLE[primary]
    for category, k in (
        ("Recording", rng.integers(2, 5)),
        ("Mood", rng.integers(1, 4)),
        ("Movement", rng.integers(1, 3)),
    ):
        # Mostly the genre's favourites, sometimes anything from the category.
        options = list(favoured[category]) + [t for t in TAXONOMY[category] if t not in favoured[category]]
        if rng.random() < 0.3:
            options = list(rng.permutation(TAXONOMY[category]))
        for tag in _pick(rng, options, int(k), set(style)):
            style[tag] = rng.uniform(0.5, 1.0)
    return style


def track_tags(rng: np.random.Generator, style: dict[str, float]) -> dict[str, float]:
    """One track of an artist: the artist's tags, jittered, a few dropped, maybe one added."""
    tags = {}
    for tag, likelihood in style.items():
        if rng.random() < 0.88:
            tags[tag] = float(np.clip(likelihood + rng.normal(0.0, 0.12), 0.05, 1.0))
    if rng.random() < 0.5:
        category = list(TAXONOMY)[rng.integers(len(TAXONOMY))]
        for tag in _pick(rng, list(rng.permutation(TAXONOMY[category])), 1, set(tags)):
            tags[tag] = float(rng.uniform(0.2, 0.7))
    if not any(t in tags for t in TAXONOMY["Genre"]):  # every track keeps a genre
        tags.update({t: style[t] for t in style if t in TAXONOMY["Genre"]})
    return {tag: round(value, 2) for tag, value in tags.items()}


def catalog_tags(settings: DemoSettings) -> pd.DataFrame:
    """The demo's ``tags.csv`` table: ``track_id``, ``path``, ``artist``, one column per tag."""
    rng = np.random.default_rng([settings.seed, 1])
    names = tag_names()
    rows = []
    for a in range(settings.n_artists):
        style = artist_style(rng)
        n_tracks = max(2, int(rng.poisson(settings.tracks_per_artist)))
        for _ in range(n_tracks):
            track_id = f"demo{len(rows):05d}"
            tags = track_tags(rng, style)
            rows.append(
                {
                    "track_id": track_id,
                    "path": f"audio/{track_id}.flac",
                    "artist": f"artist{a:03d}",
                    **{n: tags.get(n, 0.0) for n in names},
                }
            )
    return pd.DataFrame(rows, columns=["track_id", "path", "artist", *names])


def _render_to_file(job: tuple[Path, dict[str, float], int, DemoSettings]) -> None:
    path, tags, track_seed, settings = job
    audio = synth.render_track(
        tags, duration_s=settings.duration_s, sr=settings.sample_rate, seed=[settings.seed, 2, track_seed]
    )
    with atomic_output(path) as tmp:
        sf.write(tmp, audio, settings.sample_rate, format="FLAC", subtype="PCM_16")


def write_demo_catalog(
    settings: DemoSettings, *, tags: str | Path, meta: str | Path, untagged: str | Path | None = None, workers: int = 1
) -> pd.DataFrame:
    """Synthesise the demo catalog: its ``tags`` table (CSV), its taxonomy ``meta`` (CSV), its
    ``untagged`` table (CSV: the ``untagged_share`` of the tracks whose tags it withholds, none by
    default; None: not written), and the audio files of every track, under ``audio/`` beside them
    (paths relative to its folder, as in a user's catalog).

    Each track's audio depends only on its tags and (seed, track number), so the
    result is identical for any number of ``workers``.
    """
    folder = Path(tags).parent
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    table = catalog_tags(settings)
    names = tag_names()
    jobs = [
        (folder / row.path, {n: getattr(row, n) for n in names if getattr(row, n) > 0}, i, settings)
        for i, row in enumerate(table.itertuples(index=False))
    ]
    log.info(
        "synthesising %d demo tracks of %.1f s by %d artists with %d worker(s)",
        len(jobs),
        settings.duration_s,
        settings.n_artists,
        workers,
    )
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(_render_to_file, jobs, chunksize=4))
    else:
        for job in jobs:
            _render_to_file(job)
    tagged, withheld = withhold_tags(table, settings.untagged_share, settings.seed)
    write_built_in_tables([(tags, tagged), (meta, taxonomy_table()), (untagged, withheld)])
    log.info("demo catalog written to %s", folder)
    return table
