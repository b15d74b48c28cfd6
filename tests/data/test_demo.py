"""The demo catalog: a paper-like taxonomy, artists with styles, files in the user format."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from trackrank.data.catalog import validate_catalog
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
