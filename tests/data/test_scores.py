"""The scores catalog: real music of the music21 corpus, arranged and rendered, with tags read from the score."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from builders import needs_fluidsynth
from trackrank.data.catalog_validation import validate_catalog
from trackrank.data.scores.plan import (
    FAMILIES,
    ScoresSettings,
    catalog_plan,
    excerpt_tags,
    mode_correlations,
    tag_names,
)
from trackrank.data.scores.render import arrange, load_score, merge_shards, render_shard, score_notes


def test_plan_is_drawn_from_the_seed_and_spreads_tracks_over_many_composers():
    plan = catalog_plan(ScoresSettings(n_tracks=400))
    assert len(plan) == 400 and plan["track_id"].is_unique
    assert plan.equals(catalog_plan(ScoresSettings(n_tracks=400)))
    assert not plan.equals(catalog_plan(ScoresSettings(n_tracks=400, seed=1)))
    counts = plan["artist"].value_counts()
    assert len(counts) >= 30 and counts.max() <= 0.1 * len(plan)  # no composer drowns the artist split
    assert set(plan["period"]) == {"medieval", "renaissance", "baroque", "classical", "romantic", "modern", "folk"}
    assert sorted(plan["shard"].unique()) == [0, 1, 2, 3]


def test_a_pieces_tracks_share_one_render_shard_and_shards_stay_balanced():
    """A shard parses each of its scores once, so a piece replayed by several tracks goes to one shard;
    the shards' sizes still differ by at most one piece's tracks."""
    plan = catalog_plan(ScoresSettings(n_tracks=400, n_shards=3))
    assert (plan.groupby("piece")["shard"].nunique() == 1).all()
    sizes = plan["shard"].value_counts()
    assert len(sizes) == 3 and sizes.max() - sizes.min() <= plan["piece"].value_counts().max()


@pytest.mark.parametrize(
    ("piece", "mode", "meter"),
    [
        ("mozart/k80/movement1.mxl", "major", "triple"),  # G major, 3/4
        ("joplin/maple_leaf_rag.mxl", "major", "duple"),  # A-flat major, 2/4
        ("bach/bwv10.7.mxl", "minor", "duple"),  # G minor, 4/4
    ],
)
def test_a_known_piece_gets_its_mode_and_meter(piece, mode, meter):
    notes, kind, _, _, _ = score_notes(load_score(piece, np.random.default_rng(0)))
    major, minor = mode_correlations(np.column_stack([notes[:, 0], notes[:, 1], notes[:, 2], notes[:, 1]]))
    assert (major > minor) == (mode == "major")
    assert kind == meter


def test_a_jig_is_in_compound_meter():
    for seed in range(20):  # some tune of the collection is a jig (6/8)
        _, kind, beat, _, _ = score_notes(load_score("oneills1850/0001-0050.abc", np.random.default_rng(seed)))
        if kind == "compound":
            assert beat == 1.5
            return
    pytest.fail("no 6/8 tune among 20 draws of O'Neill's first 50 tunes")


def test_tags_follow_the_arrangement_and_the_excerpt():
    excerpt, record = arrange("mozart/k80/movement1.mxl", "classical", duration_s=15.0, rng=np.random.default_rng(3))
    tags = excerpt_tags(excerpt, "classical")
    assert set(tags) == set(tag_names()) and all(0 <= v <= 1 for v in tags.values())
    assert tags["classical"] == 1 and tags["baroque"] == 0
    assert tags["four_voices"] == 1 and tags["triple_meter"] == 1 and tags["duple_meter"] == 0
    assert tags["major"] > 0.5
    for family, program in zip(excerpt.families, excerpt.programs):
        assert tags[family] == 1 and program in FAMILIES[family]
    assert [int(p) for p in record["programs"].split()] == excerpt.programs
    assert excerpt.notes[:, 0].min() >= 0 and excerpt.notes[:, 0].max() < 15.0
    # a slower, softer, lower arrangement of the same notes reads as slower, softer and lower
    calmer = arrange("mozart/k80/movement1.mxl", "classical", duration_s=15.0, rng=np.random.default_rng(3))[0]
    calmer.beat_bpm, calmer.notes[:, 3], calmer.notes[:, 2] = 50.0, 40.0, calmer.notes[:, 2] - 12
    lower = excerpt_tags(calmer, "classical")
    assert (
        lower["slow"] > tags["slow"] and lower["soft"] > tags["soft"] and lower["low_register"] > tags["low_register"]
    )


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@needs_fluidsynth
def test_rendered_shards_make_a_valid_user_catalog_and_the_same_bytes_twice(tmp_path):
    settings = ScoresSettings(n_tracks=60, duration_s=12.5, n_shards=2, seed=5)
    plan = catalog_plan(settings).groupby("period").head(1)  # one track per period: seven scores
    for name in ("one", "two"):
        folder = tmp_path / name
        for shard in (0, 1):
            render_shard(
                plan[plan.shard == shard],
                settings,
                folder=folder,
                tags=folder / f"{shard}.tags.csv",
                arrangements=folder / f"{shard}.arrangements.csv",
            )
        merge_shards(
            [folder / "0.tags.csv", folder / "1.tags.csv"],
            [folder / "0.arrangements.csv", folder / "1.arrangements.csv"],
            tags=folder / "tags.csv",
            meta=folder / "tags_meta.csv",
            arrangements=folder / "arrangements.csv",
        )
    assert digest(tmp_path / "one") == digest(tmp_path / "two")
    folder = tmp_path / "one"
    tags = pd.read_csv(folder / "tags.csv")
    assert tags["track_id"].tolist() == sorted(plan["track_id"])
    assert (tags[tag_names()].to_numpy() > 0).sum(axis=1).min() >= 5
    validated, _, _, rejected = validate_catalog(folder)
    assert len(validated) == len(plan) and rejected.empty
    for row in tags.itertuples():
        audio, rate = sf.read(folder / row.path)
        assert rate == settings.sample_rate and len(audio) == int(settings.duration_s * rate)
        assert 0.005 < np.sqrt(np.mean(audio**2)) and np.abs(audio).max() <= 0.99  # music, not silence or clipping
    merge_shards(  # scores.untagged_share: the same tracks, a share of them listed without their tags
        [folder / "0.tags.csv", folder / "1.tags.csv"],
        [folder / "0.arrangements.csv", folder / "1.arrangements.csv"],
        tags=folder / "company.tags.csv",
        meta=folder / "company.tags_meta.csv",
        arrangements=folder / "company.arrangements.csv",
        untagged=folder / "untagged.csv",
        untagged_share=0.5,
        seed=settings.seed,
    )
    kept, withheld = pd.read_csv(folder / "company.tags.csv"), pd.read_csv(folder / "untagged.csv")
    assert len(withheld) == round(0.5 * len(tags)) and list(withheld.columns) == ["track_id", "path", "artist"]
    assert sorted([*kept.track_id, *withheld.track_id]) == tags.track_id.tolist()


@needs_fluidsynth
def test_tracks_of_one_piece_render_the_same_bytes_from_a_shared_parse_as_each_from_its_own(tmp_path):
    """A shard parses a piece once for all its tracks (the parse is cached): arranging one track must not
    change the score the next one arranges."""
    from trackrank.data.scores.render import parse_piece

    settings = ScoresSettings(n_tracks=400, duration_s=5.0)
    plan = catalog_plan(settings)
    tracks = plan[plan.piece == "schoenberg/opus19/movement2.mxl"].head(3)
    assert len(tracks) == 3
    shared = tmp_path / "shared"
    render_shard(tracks, settings, folder=shared, tags=tmp_path / "s.csv", arrangements=tmp_path / "sa.csv")
    alone = tmp_path / "alone"
    for i in range(len(tracks)):
        parse_piece.cache_clear()
        render_shard(
            tracks.iloc[[i]], settings, folder=alone, tags=tmp_path / f"{i}.csv", arrangements=tmp_path / f"{i}a.csv"
        )
    for path in tracks["path"]:
        assert (shared / path).read_bytes() == (alone / path).read_bytes(), path


def test_a_piece_that_cannot_be_played_is_replaced_by_another_of_its_artist(tmp_path, monkeypatch, caplog):
    import trackrank.data.scores.render as render

    (tmp_path / "font.sf2").write_bytes(b"")
    settings = ScoresSettings(n_tracks=40, duration_s=12.5, n_shards=1, seed=2, soundfont=str(tmp_path / "font.sf2"))
    plan = catalog_plan(settings)
    row = plan[plan.artist == "bach"].head(1).copy()
    row["piece"] = "bach/does-not-exist.mxl"
    monkeypatch.setattr(render, "render_audio", lambda excerpt, soundfont, sample_rate: np.zeros(10, np.float32))
    monkeypatch.setattr(render, "fluidsynth_command", lambda: "fluidsynth")
    render_shard(row, settings, folder=tmp_path, tags=tmp_path / "t.csv", arrangements=tmp_path / "a.csv")
    played = pd.read_csv(tmp_path / "a.csv")
    assert played["piece"].iloc[0].startswith("bach/") and played["piece"].iloc[0] != "bach/does-not-exist.mxl"
    assert "does-not-exist" in caplog.text and row["track_id"].iloc[0] in caplog.text
