"""The demo catalog: a paper-like taxonomy, artists with styles, files in the user format."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pandas as pd
import pytest

from trackrank.data.catalog_validation import validate_catalog
from trackrank.data.demo.catalog import DemoSettings, catalog_tags, tag_names, taxonomy_table, write_demo_catalog


def test_taxonomy_has_the_papers_categories_and_at_least_30_tags():
    taxonomy = taxonomy_table()
    assert {"Genre", "Recording", "Mood", "Movement"} <= set(taxonomy["category"])
    assert len(taxonomy) >= 30 and taxonomy["tag"].is_unique


def test_tags_per_track_and_likelihoods_look_like_a_professional_catalog():
    tags = catalog_tags(DemoSettings(n_artists=40))
    values = tags[tag_names()].to_numpy()
    assert 5 <= (values > 0).sum(axis=1).mean() <= 12
    assert values.min() >= 0 and values.max() <= 1
    assert ((values > 0) & (values < 1)).sum() > 0.5 * (values > 0).sum()  # not only 0/1


def test_tracks_of_an_artist_share_its_style():
    tags = catalog_tags(DemoSettings(n_artists=30))
    values = tags[tag_names()].to_numpy() > 0
    jaccard = (values[:, None] & values[None]).sum(-1) / np.maximum((values[:, None] | values[None]).sum(-1), 1)
    same = tags["artist"].to_numpy()[:, None] == tags["artist"].to_numpy()[None]
    off_diagonal = ~np.eye(len(tags), dtype=bool)
    assert jaccard[same & off_diagonal].mean() > 2 * jaccard[~same].mean()


def test_same_seed_same_table_and_other_seed_other_table():
    assert catalog_tags(DemoSettings(seed=1)).equals(catalog_tags(DemoSettings(seed=1)))
    assert not catalog_tags(DemoSettings(seed=1)).equals(catalog_tags(DemoSettings(seed=2)))


def digest(folder) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_written_catalog_is_identical_for_a_seed_whatever_the_workers(tmp_path):
    settings = DemoSettings(n_artists=3, tracks_per_artist=2, duration_s=12.0, seed=4)
    for name, workers in (("one", 1), ("two", 2)):
        folder = tmp_path / name
        write_demo_catalog(settings, tags=folder / "tags.csv", meta=folder / "tags_meta.csv", workers=workers)
    assert digest(tmp_path / "one") == digest(tmp_path / "two")


def test_the_demo_is_a_valid_user_catalog(tmp_path):
    settings = DemoSettings(n_artists=3, tracks_per_artist=2, duration_s=12.0)
    written = write_demo_catalog(settings, tags=tmp_path / "tags.csv", meta=tmp_path / "tags_meta.csv")
    tracks, tags, taxonomy, rejected = validate_catalog(tmp_path)
    assert rejected.empty and len(tracks) == len(written)
    assert list(tags.columns[1:]) == tag_names()
    assert pd.read_csv(tmp_path / "tags_meta.csv").equals(taxonomy)


def test_a_share_of_the_demo_can_be_listed_without_its_tags_as_a_company_has_it(tmp_path):
    """``demo.untagged_share``: the same tracks and audio, a seeded share of them in untagged.csv with their
    tags withheld; validation reads them as the untagged tracks of a user's catalog."""
    settings = DemoSettings(n_artists=3, tracks_per_artist=2, duration_s=12.0, seed=2)
    full = write_demo_catalog(settings, tags=tmp_path / "all" / "tags.csv", meta=tmp_path / "all" / "tags_meta.csv")
    company = dataclasses.replace(settings, untagged_share=0.4)
    folder = tmp_path / "company"
    write_demo_catalog(
        company, tags=folder / "tags.csv", meta=folder / "tags_meta.csv", untagged=folder / "untagged.csv"
    )
    tagged, untagged = pd.read_csv(folder / "tags.csv"), pd.read_csv(folder / "untagged.csv")
    assert len(untagged) == round(0.4 * len(full)) and list(untagged.columns) == ["track_id", "path", "artist"]
    assert sorted([*tagged.track_id, *untagged.track_id]) == sorted(full.track_id)
    pd.testing.assert_frame_equal(
        tagged.reset_index(drop=True), full[~full.track_id.isin(untagged.track_id)].reset_index(drop=True)
    )
    assert {k: v for k, v in digest(folder).items() if k.startswith("audio/")} == {
        k: v for k, v in digest(tmp_path / "all").items() if k.startswith("audio/")
    }
    tracks, tags, _, rejected = validate_catalog(folder)
    assert rejected.empty and tracks.track_id.tolist()[len(tagged) :] == untagged.track_id.tolist()
    assert tags.track_id.tolist() == tagged.track_id.tolist()
    again = tmp_path / "again"
    write_demo_catalog(company, tags=again / "tags.csv", meta=again / "tags_meta.csv", untagged=again / "untagged.csv")
    assert digest(again) == digest(folder)
    with pytest.raises(ValueError, match="rows .* have no file to go to"):
        write_demo_catalog(company, tags=again / "tags.csv", meta=again / "tags_meta.csv")
