"""Artist-disjoint split: no artist in two splits, proportions near 60/20/20, seeded."""

import numpy as np
import pandas as pd
import pytest

from trackrank.data.split import artist_split
from trackrank.errors import SplitError


def artists(n_artists: int = 60, seed: int = 0) -> pd.Series:
    rng = np.random.default_rng(seed)
    return pd.Series([f"a{a}" for a in range(n_artists) for _ in range(rng.integers(1, 12))])


def test_no_artist_lies_in_two_splits():
    names = artists()
    split = artist_split(names, seed=1)
    per_artist = pd.DataFrame({"artist": names, "split": split}).groupby("artist")["split"].nunique()
    assert per_artist.max() == 1


def test_proportions_come_close_to_60_20_20():
    names = artists(200)
    shares = pd.Series(artist_split(names, seed=0)).value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.6, abs=0.02)
    assert shares["val"] == pytest.approx(0.2, abs=0.02)
    assert shares["test"] == pytest.approx(0.2, abs=0.02)


def test_same_seed_same_split_and_another_seed_another():
    names = artists()
    assert (artist_split(names, seed=5) == artist_split(names, seed=5)).all()
    assert (artist_split(names, seed=5) != artist_split(names, seed=6)).any()


def test_every_split_gets_an_artist_even_when_few():
    split = artist_split(pd.Series(["a", "a", "a", "b", "c"]), seed=0)
    assert set(split) == {"train", "val", "test"}


def test_bad_fractions_and_too_few_artists_are_refused():
    with pytest.raises(SplitError, match="summing to 1"):
        artist_split(artists(), fractions=(0.5, 0.2, 0.2))
    with pytest.raises(SplitError, match="at least 3 artists"):
        artist_split(pd.Series(["a", "b"]))
