"""Render the ``scores`` catalog: parse a score, arrange an excerpt, play it with FluidSynth.

A shard job (one Snakemake job per ``scores.n_shards``) renders its tracks of
:func:`trackrank.data.scores.plan.catalog_plan`: music21 parses the piece, the arrangement drawn from
(seed, track) chooses the excerpt, tempo, transposition, dynamics and an instrument per part,
mido writes it as a Standard MIDI File, and the FluidSynth command renders that file with a
General-MIDI soundfont to audio, stored as mono FLAC. A piece that does not parse, or has no
notes, is replaced by another piece of the same artist (logged): one bad score never stops
the catalog.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from trackrank.atomic import atomic_output
from trackrank.data.built_in_catalogs import write_built_in_tables
from trackrank.data.scores.plan import (
    FAMILIES,
    FOLK_TEMPO,
    PERIOD_FAMILIES,
    PERIOD_TEMPO,
    Excerpt,
    ScoresSettings,
    corpus_root,
    excerpt_tags,
    pieces,
    tag_names,
    taxonomy_table,
)
from trackrank.data.withheld_tags import withhold_tags
from trackrank.errors import ScoreError

log = logging.getLogger(__name__)

MAX_PARTS = 8  # more parts than that (a full orchestra) are reduced to the first eight
MIDI_TICKS_PER_SECOND = 960  # 480 ticks per beat at the file's fixed 120 beats per minute


@functools.lru_cache(maxsize=16)
def parse_piece(piece: str, number: int | None = None):
    """The music21 score of ``piece`` (a path relative to the corpus; ``number``: the tune's X: number in
    an ABC collection, parsed alone); cached per job. No pickles: a shard reads most pieces once."""
    import music21

    try:
        return music21.converter.parse(str(corpus_root() / piece), number=number, forceSource=True, storePickle=False)
    except Exception as error:  # music21 raises many kinds; any of them means this piece cannot be played
        raise ScoreError(f"{piece}: music21 cannot parse it: {error}") from None


def tune_numbers(piece: str) -> list[int]:
    """The X: numbers of the tunes of an ABC file (one or many): read off the text, nothing parsed."""
    text = (corpus_root() / piece).read_text(encoding="utf-8", errors="replace")
    return [int(n) for n in re.findall(r"^X:\s*(\d+)", text, flags=re.MULTILINE)]


def load_score(piece: str, rng: np.random.Generator):
    """The score a track plays: the piece, or one tune of an ABC collection drawn from ``rng``."""
    number = None
    if piece.endswith(".abc"):
        numbers = tune_numbers(piece)
        if not numbers:
            raise ScoreError(f"{piece}: no tune (X: line) in it")
        number = numbers[int(rng.integers(len(numbers)))]
    parsed = parse_piece(piece, number)
    scores = getattr(parsed, "scores", None)  # an opus: take its first score
    return scores[0] if scores is not None and len(scores) else parsed


def score_notes(score) -> tuple[np.ndarray, str, float, float | None, float]:
    """What the arrangement needs from a score.

    Returns
    -------
    notes : (n, 4) float array of (onset, duration) in quarter notes, MIDI pitch, part
    meter : ``duple``, ``triple`` or ``compound``, from the first time signature (4/4 if none)
    beat : the meter's beat in quarter notes (1.5 in 6/8)
    quarter_bpm : the first metronome mark's tempo in quarter notes per minute, or None
    length : the score's length in quarter notes
    """
    from music21 import meter, tempo

    parts = [p for p in score.parts][:MAX_PARTS] or [score]
    rows: list[list[float]] = []
    for index, part in enumerate(parts):
        held: dict[float, list[float]] = {}  # pitch -> the row a tie continues (music21's stripTies, faster)
        for element in part.flatten().notes:
            duration = float(element.quarterLength) or 0.25  # grace notes get a sixteenth
            for note in getattr(element, "notes", None) or [element]:  # a chord's notes carry their own ties
                if not hasattr(note, "pitch"):
                    continue  # unpitched percussion
                pitch, tie = float(note.pitch.midi), note.tie.type if note.tie is not None else None
                if tie in ("continue", "stop") and pitch in held:
                    held[pitch][1] = float(element.offset) + duration - held[pitch][0]
                else:
                    rows.append([float(element.offset), duration, pitch, float(index)])
                    held[pitch] = rows[-1]
                if tie not in ("start", "continue"):
                    held.pop(pitch, None)
    if not rows:
        raise ScoreError("no pitched notes")
    notes = np.array(rows)
    notes = notes[np.lexsort((notes[:, 2], notes[:, 0]))]
    signature = next(iter(score.recurse().getElementsByClass(meter.TimeSignature)), None)
    numerator, denominator = (signature.numerator, signature.denominator) if signature else (4, 4)
    if denominator == 8 and numerator in (6, 9, 12):
        kind, beat = "compound", 3 * 4 / denominator  # a dotted quarter in 6/8
    else:
        kind, beat = ("triple" if numerator % 3 == 0 else "duple"), 4 / denominator
    mark = next(iter(score.recurse().getElementsByClass(tempo.MetronomeMark)), None)
    quarter_bpm = None
    if mark is not None and mark.number:
        try:
            quarter_bpm = float(mark.getQuarterBPM())
        except Exception:  # a mark music21 cannot convert: the period's tempo instead
            quarter_bpm = None
    length = float(max(notes[:, 0] + notes[:, 1]))
    return notes, kind, beat, quarter_bpm, length


def arrange(piece: str, period: str, *, duration_s: float, rng: np.random.Generator) -> tuple[Excerpt, dict]:
    """An excerpt of ``piece`` arranged from ``rng``: (the excerpt, a record of the arrangement)."""
    score = load_score(piece, rng)
    notes, meter_kind, beat, quarter_bpm, length = score_notes(score)
    base = quarter_bpm or (FOLK_TEMPO if period == "folk" else PERIOD_TEMPO[period])
    quarter_bpm = float(np.clip(base * math.exp(rng.uniform(math.log(0.75), math.log(1.3))), 40, 240))
    need = duration_s * quarter_bpm / 60.0
    if length < need:  # a short tune is played again, as folk tunes are
        repeats = int(math.ceil(need / length))
        notes = np.concatenate([notes + [k * length, 0, 0, 0] for k in range(repeats)])
        start = 0.0
    else:
        start = math.floor(rng.uniform(0.0, length - need) / beat) * beat
    kept = notes[(notes[:, 0] >= start) & (notes[:, 0] < start + need)].copy()
    if not len(kept):
        raise ScoreError("the excerpt has no notes")
    parts = np.unique(kept[:, 3]).astype(int)
    transpose = int(rng.integers(-4, 5))
    level = float(rng.uniform(45.0, 110.0))
    families, programs = _instruments(kept, parts, period, rng)
    seconds = 60.0 / quarter_bpm
    on_beat = np.isclose(np.mod(kept[:, 0] - start, beat), 0.0)
    velocity = np.clip(level + 8.0 * on_beat + rng.normal(0.0, 5.0, len(kept)), 20, 127)
    part_index = {p: i for i, p in enumerate(parts)}
    rendered = np.column_stack(
        [
            (kept[:, 0] - start) * seconds,
            np.minimum(kept[:, 1] * seconds, duration_s - (kept[:, 0] - start) * seconds),
            np.clip(kept[:, 2] + transpose, 21, 108),
            np.round(velocity),
            [part_index[int(p)] for p in kept[:, 3]],
        ]
    )
    excerpt = Excerpt(rendered, programs, families, meter_kind, quarter_bpm / beat, duration_s)
    record = {
        "start_quarter": start,
        "quarter_bpm": round(quarter_bpm, 2),
        "transpose": transpose,
        "velocity": round(level, 1),
        "programs": " ".join(map(str, programs)),
    }
    return excerpt, record


def _instruments(notes: np.ndarray, parts: np.ndarray, period: str, rng: np.random.Generator):
    """A family and a General-MIDI program for each part: one family for the whole ensemble 40 % of the
    time, else a family per part, by the period's likelihoods; within a family, lower parts get lower
    instruments (cello under violin)."""
    likelihood = PERIOD_FAMILIES[period]
    names = list(FAMILIES)
    weights = np.array([likelihood.get(n, 0.15) for n in names])
    weights /= weights.sum()
    if rng.random() < 0.4:
        families = [names[rng.choice(len(names), p=weights)]] * len(parts)
    else:
        families = [names[rng.choice(len(names), p=weights)] for _ in parts]
    programs = []
    for part, family in zip(parts, families):
        choices = FAMILIES[family]
        pitch = float(np.mean(notes[notes[:, 3] == part, 2]))
        position = np.clip((pitch - 45.0) / 30.0, 0.0, 1.0) * (len(choices) - 1)  # bass ~48, soprano ~72
        programs.append(choices[int(round(position))])
    return families, programs


def write_midi(excerpt: Excerpt, path: str | Path) -> None:
    """The excerpt as a Standard MIDI File (type 1, one track per part, 120 beats per minute)."""
    import mido

    midi = mido.MidiFile(type=1, ticks_per_beat=MIDI_TICKS_PER_SECOND // 2)
    for part, program in enumerate(excerpt.programs):
        channel = part if part < 9 else part + 1  # channel 10 is percussion in General MIDI
        events = [(0, 0, mido.Message("program_change", channel=channel, program=program))]
        for onset, duration, pitch, velocity, _ in excerpt.notes[excerpt.notes[:, 4] == part]:
            on = int(round(onset * MIDI_TICKS_PER_SECOND))
            off = max(on + 1, int(round((onset + duration) * MIDI_TICKS_PER_SECOND)))
            events.append((on, 2, mido.Message("note_on", channel=channel, note=int(pitch), velocity=int(velocity))))
            events.append((off, 1, mido.Message("note_off", channel=channel, note=int(pitch), velocity=0)))
        track = mido.MidiTrack()
        now = 0
        for tick, _, message in sorted(events, key=lambda e: (e[0], e[1])):  # offs before ons at one tick
            track.append(message.copy(time=tick - now))
            now = tick
        midi.tracks.append(track)
    midi.save(str(path))


@functools.cache
def fluidsynth_command() -> str:
    """The FluidSynth program (looked up once per job), or an error that says how to install it."""
    program = shutil.which("fluidsynth")
    if program is None:
        raise FileNotFoundError(
            "catalog: scores renders with FluidSynth, which is not installed: on Debian or Ubuntu "
            "`apt-get install fluidsynth fluid-soundfont-gm` (elsewhere: FluidSynth and any General-MIDI "
            "soundfont, named by scores.soundfont)"
        )
    return program


def render_audio(excerpt: Excerpt, soundfont: str | Path, *, sample_rate: int) -> np.ndarray:
    """Mono float32 audio of exactly the excerpt's duration, rendered by FluidSynth."""
    with tempfile.TemporaryDirectory(prefix="trackrank-score-") as tmp:
        midi, wav = Path(tmp) / "excerpt.mid", Path(tmp) / "excerpt.wav"
        write_midi(excerpt, midi)
        command = [fluidsynth_command(), "-ni", "-q", "-g", "0.5", "-r", str(sample_rate), "-F", str(wav)]
        subprocess.run([*command, str(soundfont), str(midi)], check=True, capture_output=True, timeout=600)
        audio, rate = sf.read(wav, dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    n = int(round(excerpt.duration_s * rate))
    audio = np.pad(audio[:n], (0, max(0, n - len(audio))))
    fade = min(len(audio), int(0.5 * rate))
    audio[len(audio) - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    return audio / peak * 0.98 if peak > 0.98 else audio


def render_shard(
    plan: pd.DataFrame, settings: ScoresSettings, *, folder: str | Path, tags: str | Path, arrangements: str | Path
) -> pd.DataFrame:
    """Render the tracks of ``plan`` (rows of :func:`catalog_plan`) as audio under ``folder`` (their
    ``path``), and write their tags (the catalog's ``tags.csv`` columns) to ``tags`` and what was played
    (piece, excerpt, tempo, instruments) to ``arrangements``, both CSV."""
    soundfont = Path(settings.soundfont)
    if not soundfont.is_file():
        raise FileNotFoundError(
            f"scores.soundfont: {soundfont} is not a file: install a General-MIDI soundfont "
            "(Debian: apt-get install fluid-soundfont-gm) or name yours"
        )
    fluidsynth_command()
    pool = pieces()
    tag_rows, arrangement_rows = [], []
    # a piece's tracks one after another, so the cached parse serves them all (merge_shards restores track order)
    for row in plan.sort_values(["piece", "track_id"]).itertuples(index=False):
        rng = np.random.default_rng([settings.seed, 32, int(row.track_id.removeprefix("score"))])
        candidates = [row.piece, *rng.permutation(pool.loc[pool.artist == row.artist, "piece"].to_numpy())[:5]]
        for piece in candidates:
            try:
                excerpt, record = arrange(piece, row.period, duration_s=settings.duration_s, rng=rng)
                break
            except ScoreError as error:
                log.warning("track %s: %s; it plays another piece of %s", row.track_id, error, row.artist)
        else:
            raise ScoreError(f"track {row.track_id}: none of {row.artist}'s pieces tried could be played")
        audio = render_audio(excerpt, soundfont, sample_rate=settings.sample_rate)
        output = Path(folder) / row.path
        output.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(output) as tmp:
            sf.write(tmp, audio, settings.sample_rate, format="FLAC", subtype="PCM_16")
        tag_rows.append(
            {"track_id": row.track_id, "path": row.path, "artist": row.artist, **excerpt_tags(excerpt, row.period)}
        )
        arrangement_rows.append({"track_id": row.track_id, "piece": piece, **record})
        log.info("%s: %s, %s", row.track_id, piece, record)
    table = pd.DataFrame(tag_rows, columns=["track_id", "path", "artist", *tag_names()])
    for output, frame in ((tags, table), (arrangements, pd.DataFrame(arrangement_rows))):
        with atomic_output(output) as tmp:
            frame.to_csv(tmp, index=False)
    return table


def merge_shards(
    shard_tags: list[str | Path],
    shard_arrangements: list[str | Path],
    *,
    tags: str | Path,
    meta: str | Path,
    arrangements: str | Path,
    untagged: str | Path | None = None,
    untagged_share: float = 0.0,
    seed: int = 0,
) -> pd.DataFrame:
    """The catalog's ``tags`` (tags.csv) and ``meta`` (tags_meta.csv) and what each track plays
    (``arrangements``), from the render shards' tables, in track order; ``untagged`` (untagged.csv)
    lists the ``untagged_share`` of the tracks whose tags are withheld (none by default; None: not written)."""
    table = pd.concat([pd.read_csv(path) for path in shard_tags]).sort_values("track_id")
    played = pd.concat([pd.read_csv(path) for path in shard_arrangements]).sort_values("track_id")
    tagged, withheld = withhold_tags(table, untagged_share, seed)
    write_built_in_tables([(tags, tagged), (meta, taxonomy_table()), (arrangements, played), (untagged, withheld)])
    log.info("scores catalog: %d tracks by %d artists in %s", len(table), table["artist"].nunique(), Path(tags).parent)
    return table
