"""One change at a time to an index: two adds at once both land, the second says it waits, and what an
interrupted change left is named on open and removed by the next change."""

from __future__ import annotations

import logging
import threading

import pandas as pd

from trackrank.coldstart import grow
from trackrank.coldstart.search import CatalogIndex


class Waiting(logging.Handler):
    """Sets ``said`` when a change logs that it waits for another."""

    def __init__(self):
        super().__init__()
        self.said = threading.Event()

    def emit(self, record):
        if "waiting for it to finish" in record.getMessage():
            self.said.set()


def test_two_adds_at_once_both_land_and_the_second_says_it_waits(index_copy, new_files, monkeypatch):
    """The first add to save waits until the other has read the index or said that it waits for the lock:
    without the lock both read the 3-track index and the later save drops the other's track."""
    waiting, saving, real_save = Waiting(), [], grow.save
    logging.getLogger("trackrank.coldstart.index_lock").addHandler(waiting)

    def save(*args):
        saving.append(threading.current_thread().name)
        if len(saving) == 1:
            waiting.said.wait(120)  # until the other add waits at the lock (or, unlocked, is saving too)
        else:
            waiting.said.set()
        real_save(*args)

    monkeypatch.setattr(grow, "save", save)
    results = {}
    adds = [
        threading.Thread(
            target=lambda f=f: results.update({f.stem: grow.add_tracks(index_copy, [str(f)], device="cpu")})
        )
        for f in new_files
    ]
    try:
        for add in adds:
            add.start()
        for add in adds:
            add.join(300)
    finally:
        logging.getLogger("trackrank.coldstart.index_lock").removeHandler(waiting)
    assert results == {"fresh": (["fresh"], []), "other": (["other"], [])}
    assert sorted(pd.read_parquet(index_copy / "tracks.parquet").track_id) == ["fresh", "other", "t0", "t1", "t2"]
    assert CatalogIndex(index_copy).faiss.ntotal == 5
    assert waiting.said.is_set()


def test_a_change_says_who_holds_the_index(index_copy, caplog):
    from trackrank.coldstart.index_lock import changing

    with changing(index_copy, "add"):
        held = threading.Thread(target=lambda: grow.remove_tracks(index_copy, ["t1"]))
        with caplog.at_level(logging.WARNING, logger="trackrank.coldstart.index_lock"):
            held.start()
            held.join(2)  # it waits: the lock is held here
            assert held.is_alive()
    held.join(120)
    assert (
        f"index {index_copy}: pid " in caplog.text and "(`trackrank index add`) is changing it; waiting" in caplog.text
    )
    assert sorted(pd.read_parquet(index_copy / "tracks.parquet").track_id) == ["t0", "t2"]


def test_what_a_killed_change_left_is_named_on_open_and_removed_by_the_next_change(index_copy, caplog):
    half = index_copy.parent / ".index.new-k1ll3d"  # as a kill during `index add` leaves it
    half.mkdir()
    (half / "tracks.parquet").write_bytes(b"half written")
    with caplog.at_level(logging.WARNING, logger="trackrank.coldstart.index_lock"):
        CatalogIndex(index_copy)
    assert f"{index_copy}: an interrupted `trackrank index add` or `remove` left .index.new-k1ll3d" in caplog.text
    assert half.exists(), "a reader removes nothing: a change may be writing it"
    grow.remove_tracks(index_copy, ["t1"])
    assert sorted(p.name for p in index_copy.parent.iterdir()) == [".index.lock", "index"]
