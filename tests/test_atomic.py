"""Outputs are whole or absent: a killed or failing write never leaves a file that looks complete."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import trackrank.rank.oracle as ranking
from builders import random_tags
from trackrank.atomic import atomic_output
from trackrank.errors import OutputError
from trackrank.rank.similarity import Oracle


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("previous\n")
    with pytest.raises(RuntimeError, match="killed"), atomic_output(target) as tmp:
        tmp.write_text("half a tab")
        raise RuntimeError("killed")
    assert target.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


def test_a_full_disk_is_a_clear_error_naming_the_output_and_leaves_nothing(tmp_path):
    target = tmp_path / "out" / "metrics.json"
    with pytest.raises(OutputError, match=r"cannot write .*metrics\.json: No space left on device"):
        with atomic_output(target) as tmp:
            tmp.write_text("{")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert list((tmp_path / "out").iterdir()) == []


def test_a_completed_write_replaces_the_target_and_keeps_its_suffix_for_the_writer(tmp_path):
    target = tmp_path / "table.parquet"
    with atomic_output(target) as tmp:
        assert tmp.suffix == ".parquet" and tmp.parent == tmp_path
        pd.DataFrame({"a": [1, 2]}).to_parquet(tmp)
    assert pd.read_parquet(target)["a"].tolist() == [1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["table.parquet"]


def test_rankings_killed_mid_write_leave_no_table(tmp_path, monkeypatch):
    tags = random_tags(n=300, m=12, per_track=3, seed=1)
    oracle = Oracle(tags, np.ones(12), ["Genre"] * 6 + ["Mood"] * 6)
    real_scores = oracle.scores

    def killed_after_the_first_chunk(anchor):
        if anchor == ranking.CHUNK_ANCHORS:
            raise KeyboardInterrupt("SIGINT")
        return real_scores(anchor)

    monkeypatch.setattr(oracle, "scores", killed_after_the_first_chunk)
    with pytest.raises(KeyboardInterrupt):
        ranking.write_rankings(oracle, [f"t{i}" for i in range(300)], output=tmp_path / "train.parquet", top_k=10)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def renamed(monkeypatch) -> set:
    """Every target that atomic_output renamed a finished temporary file to."""
    import os

    targets, real_replace = set(), os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: targets.add(Path(dst)) or real_replace(src, dst))
    return targets


def written_files(folder: Path) -> set:
    return {p for p in folder.rglob("*") if p.is_file()}


def test_the_report_writes_every_file_through_atomic_output(tmp_path, renamed):
    from builders import per_query, report_outputs, write_run
    from trackrank.evaluate.report import write_report

    files = write_run(tmp_path / "metrics", {"at_baseline": per_query(0.0), "tl_online": per_query(0.1)})
    pd.DataFrame(
        {"epoch": [0, 1], "train_loss": [np.nan, 0.4], "val_loss": [0.5, 0.4], "val_map@20": [0.3, 0.4]}
    ).to_csv(tmp_path / "history.csv", index=False)
    write_report(
        [f.with_name(f.name.replace(".per_query.parquet", ".json")) for f in files.values()],
        {"tl_online": tmp_path / "history.csv"},
        **report_outputs(tmp_path / "report"),
        per_query_files=files,
        paired_csv=tmp_path / "report" / "paired.csv",
        paired_md=tmp_path / "report" / "paired.md",
    )
    written = written_files(tmp_path / "report")
    assert {p.name for p in written} >= {"table.md", "table.csv", "paired.md", "paired.csv", "metrics.png"}
    assert written <= renamed


def test_the_listening_page_is_written_through_atomic_output(tmp_path, renamed):
    from builders import tables
    from trackrank.evaluate.listen import write_listening_page

    tracks, tags, rankings = tables(tmp_path)
    tracks.to_parquet(tmp_path / "tracks.parquet")
    tags.reset_index(names="track_id").to_parquet(tmp_path / "tags.parquet")
    rankings.to_parquet(tmp_path / "test.parquet")
    pd.DataFrame({"query": ["a"], "rank": [1], "track_id": ["b"]}).to_parquet(tmp_path / "random.parquet")
    output = tmp_path / "report" / "listen.html"
    write_listening_page(
        tmp_path / "tracks.parquet",
        tags_file=tmp_path / "tags.parquet",
        test_rankings_file=tmp_path / "test.parquet",
        prediction_files={"random": tmp_path / "random.parquet"},
        output=output,
    )
    assert written_files(output.parent) == {output} and output in renamed


def test_the_demo_catalog_is_written_through_atomic_output(tmp_path, renamed):
    from trackrank.data.demo.catalog import DemoSettings, write_demo_catalog

    demo = tmp_path / "demo"
    settings = DemoSettings(n_artists=3, tracks_per_artist=1, duration_s=1.0)
    tags = write_demo_catalog(settings, tags=demo / "tags.csv", meta=demo / "tags_meta.csv")
    written = written_files(tmp_path / "demo")
    assert len(written) == 2 + len(tags) and written <= renamed


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs (root only: CI runs as root, where chmod does not stop writes)."""
    import os
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    folder = tmp_path / "disk"
    folder.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True)
    if mount.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def rankings_into(folder: Path) -> None:
    tags = random_tags(n=300, m=12, per_track=3, seed=1)
    oracle = Oracle(tags, np.ones(12), ["Genre"] * 6 + ["Mood"] * 6)
    ranking.write_rankings(
        oracle, [f"t{i}" for i in range(300)], output=folder / "rankings" / "train.parquet", top_k=100
    )


def test_a_real_full_disk_is_a_clear_error_naming_the_output_and_leaves_no_file(small_disk):
    with pytest.raises(OutputError, match=r"cannot write .*train\.parquet: .*No space left on device"):
        rankings_into(small_disk)  # 30,000 rows: far more than 64 KiB
    assert list((small_disk / "rankings").iterdir()) == []


def test_a_read_only_results_folder_is_a_clear_error_and_leaves_no_file(small_disk):
    import subprocess

    (small_disk / "rankings").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    with pytest.raises(OutputError, match=r"cannot write .*train\.parquet: .*Read-only file system"):
        rankings_into(small_disk)
    assert list((small_disk / "rankings").iterdir()) == []
