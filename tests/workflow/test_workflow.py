"""The workflow run for real by snakemake on the tiny config."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import torch

from conftest import sine, snakemake, workflow_copy
from trackrank.data.feature_store import FeatureStore
from trackrank.rank.parts import read_parts

pytestmark = pytest.mark.workflow  # every test here runs Snakemake


def test_tiny_run_writes_the_catalog_tables_and_every_shard(finished_run):
    results = finished_run / "results"
    tracks = pd.read_parquet(results / "catalog" / "tracks.parquet")
    assert set(tracks["split"]) == {"train", "val", "test"}
    shards = sorted((results / "features").glob("shard-*.parquet"))
    assert [s.name for s in shards] == ["shard-000.parquet", "shard-001.parquet"]
    store = FeatureStore(shards)
    assert sorted(store.track_ids) == sorted(tracks["track_id"])
    cqt = store.cqt(tracks["track_id"][0])
    assert cqt.shape[1] == 96 and cqt.shape[0] >= 512
    assert pq.read_metadata(shards[0]).row_group(0).column(2).compression == "ZSTD"
    for rule in ("synthesize_demo", "ingest_catalog", "cqt_shard"):
        assert any((results / "logs" / rule).iterdir()), rule
        assert any((results / "benchmarks" / rule).iterdir()), rule


def test_tiny_run_ranks_every_split_and_mines_every_strategy(finished_run):
    results = finished_run / "results"
    tracks = pd.read_parquet(results / "catalog" / "tracks.parquet")
    for split in ("train", "val", "test"):
        rankings = read_parts(sorted((results / "rankings" / split).glob("part-*.parquet"))).to_pandas()
        members = set(tracks.loc[tracks.split == split, "track_id"])
        assert set(rankings["anchor"].astype(str)) == members
        assert set(rankings["other"].astype(str)) <= members
    n_train = int((tracks.split == "train").sum())
    for strategy in ("neighbors", "uniform", "distance"):
        triplets = read_parts(sorted((results / "triplets" / strategy).glob("part-*.parquet"))).to_pandas()
        assert list(triplets.columns) == ["anchor", "positive", "negative"]
        assert set(triplets["anchor"].astype(str)) <= set(tracks.loc[tracks.split == "train", "track_id"])
        if strategy != "neighbors":
            assert len(triplets) == n_train * 3 * 5
    assert (results / "plots" / "similarity_vs_rank.png").stat().st_size > 10_000


def planned_rules(work: Path, *config: str) -> set[str]:
    plan = snakemake(work, "-n", *(["--config", *config] if config else []))
    assert plan.returncode == 0, plan.stderr[-2000:]
    return {
        line.split()[1].rstrip(":") for line in plan.stdout.splitlines() if line.startswith(("rule ", "localrule "))
    }


#: The rules that rerun after any change to test metrics, and after any change to a trained model.
EVALUATION = {"evaluate_system", "report", "listen_page", "index_default", "all"}
AFTER_A_MODEL = {"embed", "embed_val", "evaluate_val", "index_part", "index", *EVALUATION}


def test_a_mining_parameter_reruns_mining_only(finished_run):
    assert planned_rules(finished_run, "mining={n_negatives: 4}") == {
        "mine_triplets",
        "train_tl_distance",
        "train_tl_autopool_distance",
        *AFTER_A_MODEL,
    }


def test_a_similarity_change_reruns_rankings_and_mining_but_no_feature_job(finished_run):
    planned = planned_rules(finished_run, "similarity={name: soft_jaccard}")
    assert planned == {
        "rank_split",
        "mine_triplets",
        "plot_similarity_vs_rank",
        "train_at_baseline",
        "train_tl_distance",
        "train_tl_autopool_distance",
        "train_tl_online",
        "train_tl_online_from_at",
        "embed_at_trunk",
        *AFTER_A_MODEL,
    }


def test_tiny_run_trains_every_configured_system(finished_run):
    for system in ("at_baseline", "tl_distance", "tl_autopool_distance", "tl_online", "tl_online_from_at"):
        folder = finished_run / "results" / "models" / system
        history = pd.read_csv(folder / "history.csv")
        assert list(history["epoch"]) == [0, 1, 2], "epoch 0 is the untrained network"
        assert history["kept"].sum() == 1
        assert torch.load(folder / "model.pt", weights_only=True)["settings"]["system"] == system
        assert (finished_run / "results" / "benchmarks" / "train" / f"{system}.tsv").exists()


def test_tiny_run_ends_with_a_table_row_per_system_and_random(finished_run):
    report = finished_run / "results" / "report"
    table = pd.read_csv(report / "table.csv")
    assert table["system"].tolist() == [
        "random",
        "mfcc_stats",
        "at_trunk",
        "untrained",
        "at_baseline",
        "tl_distance",
        "tl_autopool_distance",
        "tl_online",
        "tl_online_from_at",
    ]
    assert table["n_queries"].nunique() == 1
    markdown = (report / "table.md").read_text()
    for system in table["system"]:
        assert f"| {system} |" in markdown
    assert pd.read_csv(report / "rejected_tracks.csv").columns.tolist() == ["track_id", "path", "stage", "reason"]
    for png in ("metrics.png", "training_curves.png"):
        assert (report / png).stat().st_size > 10_000
    embeddings = pq.read_schema(finished_run / "results" / "embeddings" / "tl_distance.parquet")
    assert embeddings.field("embedding").type.list_size == 128
    assert embeddings.field("embedding").type.value_type == pa.float32()
    tags = pq.read_schema(finished_run / "results" / "embeddings" / "at_baseline.parquet")
    assert tags.field("tags").type.list_size == 36


def test_tiny_run_evaluates_the_references_beside_random(finished_run):
    results = finished_run / "results"
    for reference in ("mfcc_stats", "at_trunk", "untrained"):
        assert json.loads((results / "metrics" / f"{reference}.json").read_text())["system"] == reference
    assert pq.read_schema(results / "features" / "mfcc_stats.parquet").field("mfcc_stats").type.list_size == 40
    assert pq.read_schema(results / "embeddings" / "mfcc_stats.parquet").field("embedding").type.list_size == 40
    trunk = torch.load(results / "models" / "at_baseline" / "model.pt", weights_only=True)["model"]
    channels = trunk["trunk.blocks.16.weight"].shape[0]  # the last convolution
    assert pq.read_schema(results / "embeddings" / "at_trunk.parquet").field("embedding").type.list_size == channels
    paired = pd.read_csv(results / "report" / "paired.csv")
    assert paired.loc[paired.baseline == "at_baseline", "system"].tolist() == [
        "random",
        "mfcc_stats",
        "at_trunk",
        "untrained",
        "tl_distance",
        "tl_autopool_distance",
        "tl_online",
        "tl_online_from_at",
    ]
    assert paired.loc[paired.baseline == "untrained", "system"].tolist() == [
        "at_baseline",
        "tl_distance",
        "tl_autopool_distance",
        "tl_online",
        "tl_online_from_at",
    ]
    assert pq.read_schema(results / "embeddings" / "untrained.parquet").field("embedding").type.list_size == 128
    paired_md = (results / "report" / "paired.md").read_text()
    assert "Difference to at_baseline" in paired_md and "Difference to untrained" in paired_md


def test_tiny_run_indexes_every_embedding_and_serves_the_best_on_val(finished_run):
    results = finished_run / "results"
    indexed = ["tl_distance", "tl_autopool_distance", "tl_online", "tl_online_from_at", "at_trunk"]
    for system in indexed:
        assert json.loads((results / "index" / system / "identity.json").read_text())["system"] == system
    val = {s: json.loads((results / "val" / "metrics" / f"{s}.json").read_text())["ndcg@20"] for s in indexed}
    assert all(v["mean"] >= 0 for v in val.values())
    default = json.loads((results / "index" / "default.json").read_text())
    best = max(val, key=lambda s: val[s]["mean"])
    assert default["system"] == best and default["val"] == val[best]
    assert default["test"] == json.loads((results / "metrics" / f"{best}.json").read_text())["ndcg@20"]
    assert f"**{best}**" in (results / "report" / "served.md").read_text()
    n_val = (pd.read_parquet(results / "catalog" / "tracks.parquet").split == "val").sum()
    assert len(pd.read_parquet(results / "val" / "metrics" / f"{best}.per_query.parquet")) == n_val
    assert not (results / "index" / "at_baseline").exists()
    assert planned_rules(finished_run, "index={kind: hnsw}") == {"index", "index_default", "all"}


def test_tiny_run_writes_a_listening_page_whose_players_find_the_audio(finished_run):
    page = finished_run / "results" / "report" / "listen.html"
    sources = re.findall(r'<audio controls preload="none" src="([^"]+)">', page.read_text())
    # up to 10 queries, each: itself, then its first 5 other test tracks by S and by each system
    # (random, 3 references, 5 trained): 10 lists
    test_tracks = (pd.read_parquet(finished_run / "results" / "catalog" / "tracks.parquet").split == "test").sum()
    assert len(sources) == min(10, test_tracks) * (1 + 10 * min(5, test_tracks - 1))
    for source in set(sources):
        assert (page.parent / unquote(source)).resolve().is_file(), source


def test_the_default_index_is_chosen_by_the_configured_evaluation_k(finished_run, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(finished_run, work, symlinks=True)  # copy2 keeps the mtimes: only what k touches reruns
    run = snakemake(work, "--config", "evaluate={k: 10}", "--", "results/index/default.json")
    assert run.returncode == 0, run.stderr[-3000:]
    default = json.loads((work / "results" / "index" / "default.json").read_text())
    metrics = json.loads((work / "results" / "val" / "metrics" / f"{default['system']}.json").read_text())
    assert default["metric"] == "ndcg@10" and default["val"] == metrics["ndcg@10"]


def test_an_evaluation_parameter_reruns_evaluation_and_report_only(finished_run):
    assert planned_rules(finished_run, "evaluate={k: 10}") == {"evaluate_val", *EVALUATION}
    assert planned_rules(finished_run, "evaluate={n_patches: 4}") == {
        "embed",
        "embed_at_trunk",
        "embed_untrained",
        "embed_val",
        "evaluate_val",
        *EVALUATION,
    }
    # without the at_trunk row, at_trunk is no longer indexed: the served choice is made again
    assert planned_rules(finished_run, "evaluate={references: [mfcc_stats]}") == {
        "report",
        "listen_page",
        "index_default",
        "all",
    }
    assert planned_rules(finished_run, "report={listen_queries: 3}") == {"listen_page", "all"}


def test_snakemake_report_renders_the_html_report(finished_run, tmp_path):
    run = snakemake(finished_run, "--report", str(tmp_path / "report.html"))
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "report.html").stat().st_size > 50_000


def test_nothing_is_stale_after_a_complete_run(finished_run):
    run = snakemake(finished_run, "-n")
    assert run.returncode == 0 and "Nothing to be done" in run.stdout + run.stderr


@pytest.mark.changes_finished_run  # the run's catalog paths are absolute: a copy would still read these files
def test_replacing_one_audio_file_reruns_only_its_shard(finished_run):
    tracks = pd.read_parquet(finished_run / "results" / "catalog" / "tracks.parquet")
    replaced = Path(tracks["path"][0])
    original, stat = replaced.read_bytes(), replaced.stat()
    sf.write(replaced, sine(330.0, seconds=sf.info(replaced).duration), 44100)
    try:
        plan = snakemake(finished_run, "-n")
        planned = planned_rules(finished_run)
    finally:  # the session's run again as it was (dry runs only: nothing else changed), for the tests after
        replaced.write_bytes(original)
        os.utime(replaced, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert plan.stdout.count("rule cqt_shard:") == 1
    assert plan.stdout.count("rule cache_features:") == 1  # its shard's part of the patch cache, no other
    assert "cqt_shard" in planned
    downstream = {
        "cache_features",
        "rejected_tracks",
        "mfcc_stats",
        "embed_mfcc_stats",
        "embed_at_trunk",
        "embed_untrained",
        *AFTER_A_MODEL,
    }
    assert planned - {"cqt_shard", *downstream} <= {r for r in planned if r.startswith("train_")}
    assert not planned & {"synthesize_demo", "ingest_catalog", "rank_split", "mine_triplets"}


def test_config_mistakes_stop_the_run_with_one_short_line_each(tmp_path):
    work = workflow_copy(tmp_path)
    run = snakemake(work, "-n", "--config", "no_such_key=1", "train={epochs: ten}")
    assert run.returncode != 0
    output = run.stderr + run.stdout
    assert "(top level): Additional properties are not allowed ('no_such_key' was unexpected)" in output
    assert "train.epochs: 'ten' is not of type 'integer'" in output
    assert len(output.splitlines()) < 12, output  # not Snakemake's dump of the whole schema


#: A user's S that records which job script called it, one line per call, beside itself.
COUNTING_SIMILARITY = """
import sys
from pathlib import Path

import numpy as np


def score(query, others):
    with open(Path(__file__).with_name("similarity_calls.txt"), "a") as calls:
        calls.write(Path(sys.argv[0]).name + "\\n")
    return 1.0 / (1.0 + np.abs(np.asarray(others) - np.asarray(query)).sum(axis=1))
"""


def test_a_users_similarity_is_the_one_every_rule_that_scores_tags_uses(finished_run, tmp_path):
    work = run_without(finished_run, tmp_path / "run")  # the new S reruns every rule that scores tags
    (work / "counting_similarity.py").write_text(COUNTING_SIMILARITY)
    run = snakemake(
        work,
        "--config",
        "similarity={function: 'counting_similarity:score'}",
        "train={systems: [at_baseline]}",
        "evaluate={references: []}",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    callers = (work / "similarity_calls.txt").read_text().split()
    # rankings (each split), mining (each strategy), the auto-tagger's validation and its test retrieval
    for script in ("rank_split", "mine_triplets", "train_system", "evaluate_system"):
        assert any(caller.endswith(f".{script}.py") for caller in callers), (script, sorted(set(callers)))


def test_a_users_similarity_function_that_does_not_resolve_stops_naming_it(finished_run, tmp_path):
    work = run_without(finished_run, tmp_path / "run")  # a copy: Snakemake deletes the outputs of a job it reruns
    run = snakemake(
        work,
        "--config",
        "similarity={function: 'no_such_module:score'}",
        "--forcerun",
        "mine_triplets",
        "--",
        "results/triplets/uniform/part-0000.parquet",
    )
    assert run.returncode != 0
    log = (work / "results" / "logs" / "mine_triplets" / "part-0000.log").read_text()
    assert "cannot import module 'no_such_module'" in run.stderr + log


def test_a_wrong_type_stops_the_run_naming_the_key(tmp_path):
    work = workflow_copy(tmp_path)
    run = snakemake(work, "-n", "--config", "seed=zero")
    assert run.returncode != 0
    assert "seed" in run.stderr + run.stdout and "integer" in run.stderr + run.stdout


def test_a_user_catalog_runs_through_the_feature_stage(small_catalog, tmp_path):
    work = workflow_copy(tmp_path)
    run = snakemake(
        work,
        "--config",
        f"catalog={small_catalog}",
        "--",
        "features",  # the features of every shard
        "results/triplets/distance/part-0000.parquet",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    store = FeatureStore(work / "results" / "features")
    assert sorted(store.track_ids) == [f"t{i}" for i in range(6)]
    assert (work / "results" / "triplets" / "distance" / "part-0000.parquet").exists()
    assert not (work / "results" / "demo").exists()


def test_a_catalogs_untagged_audio_gets_features_but_no_ranking_and_its_table_is_an_input(small_catalog, tmp_path):
    """``untagged.csv``: its tracks go through the feature stage (the self-supervised systems and the
    index read them) but rank in no split; editing it revalidates the catalog."""
    for i in (0, 1):
        sf.write(small_catalog / "audio" / f"u{i}.wav", sine(150.0 + 40 * i, seconds=13.0, sr=22050), 22050)
    pd.DataFrame(
        {"track_id": ["u0", "u1"], "path": ["audio/u0.wav", "audio/u1.wav"], "artist": ["a1", "someone new"]}
    ).to_csv(small_catalog / "untagged.csv", index=False)
    work = workflow_copy(tmp_path)
    run = snakemake(work, "--config", f"catalog={small_catalog}", "--", "features", "oracle")
    assert run.returncode == 0, run.stderr[-3000:]
    tracks = pd.read_parquet(work / "results" / "catalog" / "tracks.parquet")
    assert tracks.set_index("track_id").loc[["u0", "u1"], "split"].tolist() == ["untagged", "untagged"]
    assert {"u0", "u1"} <= set(FeatureStore(work / "results" / "features").track_ids)
    ranked = read_parts(sorted((work / "results" / "rankings").glob("*/part-*.parquet"))).to_pandas()
    assert len(ranked) and not {"u0", "u1"} & (set(ranked["anchor"].astype(str)) | set(ranked["other"].astype(str)))
    pd.DataFrame({"track_id": ["u0"], "path": ["audio/u0.wav"], "artist": ["a1"]}).to_csv(
        small_catalog / "untagged.csv", index=False
    )
    plan = snakemake(work, "--config", f"catalog={small_catalog}", "-n", "--", "features", "oracle")
    assert "checkpoint ingest_catalog:" in plan.stdout, plan.stdout[-3000:]


def test_a_built_in_catalog_withholds_the_tags_of_its_untagged_share(tmp_path):
    """``demo.untagged_share`` (``scores.untagged_share`` alike): a company's catalog from the same audio,
    that share of the tracks validated into the ``untagged`` split."""
    work = workflow_copy(tmp_path)
    run = snakemake(work, "--config", "demo={untagged_share: 0.25}", "--", "results/catalog/tracks.parquet")
    assert run.returncode == 0, run.stderr[-3000:]
    tracks = pd.read_parquet(work / "results" / "catalog" / "tracks.parquet")
    untagged = pd.read_csv(work / "results" / "demo" / "untagged.csv")
    assert len(untagged) == round(0.25 * len(tracks)) > 0
    assert tracks.loc[tracks.split == "untagged", "track_id"].tolist() == untagged.track_id.tolist()
    assert not set(pd.read_parquet(work / "results" / "catalog" / "tags.parquet").track_id) & set(untagged.track_id)


def test_one_config_key_runs_every_system(finished_run):
    from trackrank.learn.settings import ALL_SYSTEMS

    planned = planned_rules(finished_run, "train={systems: all}")
    not_in_tiny = {"tl_neighbors", "tl_uniform", "tl_autopool_online", "tl_listwise"}  # tiny.yaml lacks them
    assert not_in_tiny < set(ALL_SYSTEMS)
    assert {f"train_{system}" for system in not_in_tiny} <= planned


def test_a_retrained_tagger_retrains_the_system_that_starts_from_it(finished_run):
    planned = planned_rules(finished_run, "train={lr_tagger: 0.002}")
    assert {"train_at_baseline", "train_tl_online_from_at", "embed_at_trunk"} <= planned


def test_a_system_started_from_the_self_supervised_network_trains_after_it(finished_run):
    planned = planned_rules(finished_run, "train={systems: [tl_ssl, tl_distance_from_ssl]}")
    assert {"train_tl_ssl", "train_tl_distance_from_ssl"} <= planned
    assert "mine_triplets" not in planned, "neither needs a table the run lacks: tl_ssl reads audio alone"
    alone = snakemake(finished_run, "-n", "--config", "train={systems: [tl_distance_from_ssl]}")
    assert alone.returncode != 0
    assert "tl_distance_from_ssl starts from tl_ssl's trained network: list tl_ssl too" in alone.stderr + alone.stdout


def two_artist_catalog(folder: Path) -> Path:
    from conftest import write_catalog

    (folder / "audio").mkdir(parents=True)
    rows = []
    for i in range(4):
        sf.write(folder / "audio" / f"t{i}.wav", sine(220.0 * (i + 1), sr=8000), 8000)
        rows.append({"track_id": f"t{i}", "path": f"audio/t{i}.wav", "artist": f"a{i % 2}"})
    return write_catalog(folder, rows)


def test_a_catalog_of_fewer_than_3_artists_stops_with_one_message_and_no_traceback(tmp_path):
    work = workflow_copy(tmp_path)
    catalog = two_artist_catalog(tmp_path / "catalog")
    run = snakemake(work, "--config", f"catalog={catalog}", "--", "results/catalog/tracks.parquet")
    assert run.returncode != 0
    assert "needs at least 3 artists" in run.stderr and "Traceback" not in run.stderr, run.stderr[-3000:]


def test_the_console_says_how_many_tracks_were_skipped_and_where_the_list_is(small_catalog, tmp_path):
    tags = pd.read_csv(small_catalog / "tags.csv")
    tags.loc[len(tags)] = ["lost", "audio/lost.wav", "a0", 0.5, 0.5, 0.5, 0.5]
    tags.to_csv(small_catalog / "tags.csv", index=False)
    (small_catalog / "audio" / "t5.flac").write_bytes((small_catalog / "audio" / "t5.flac").read_bytes()[:5000])
    work = workflow_copy(tmp_path)
    run = snakemake(work, "--config", f"catalog={small_catalog}", "--", "results/report/rejected_tracks.csv")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "trackrank: 1 of 7 catalog rows skipped, listed with their reasons in results/catalog/rejected.csv" in (
        run.stderr
    )
    assert re.search(r"trackrank: 1 track\(s\) skipped by this shard, listed .* results/features/shard-\d+", run.stderr)
    assert (
        "trackrank: 2 track(s) skipped in all (validation 1, feature shards 1), listed with their reasons in "
        "results/report/rejected_tracks.csv" in run.stderr
    )


def run_without(finished_run: Path, work: Path, *outputs: str) -> Path:
    """A copy of the finished tiny run in ``work`` without ``outputs`` (folders): a test that reruns part of
    the workflow starts from the run's upstream tables instead of synthesising and extracting them again.
    Mtimes and Snakemake's metadata come along, so a changed setting reruns what it would in the run."""
    shutil.copytree(finished_run, work, ignore=shutil.ignore_patterns("locks"))
    for output in outputs:
        shutil.rmtree(work / output)
    return work


def kill_when(command: list[str], work, ready, reason: str) -> None:
    """Start ``command`` in ``work`` and SIGKILL it, with the jobs it runs, as soon as ``ready()`` holds."""
    import signal
    import subprocess
    import time

    job = subprocess.Popen(command, cwd=work, start_new_session=True, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not ready():
            assert job.poll() is None and time.monotonic() < deadline, reason
            time.sleep(0.05)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)  # snakemake and the job it runs
        job.wait()


def rerun_incomplete(command: list[str], work, target: str):
    """``command --rerun-incomplete -- target`` after a killed run, unlocking the folder it left locked."""
    import subprocess

    resume = [*command, "--rerun-incomplete", "--", target]
    rerun = subprocess.run(resume, cwd=work, capture_output=True, text=True)
    if "cannot be locked" in rerun.stderr:  # a killed run leaves its lock behind
        subprocess.run([*command, "--unlock"], cwd=work, check=True, capture_output=True)
        rerun = subprocess.run(resume, cwd=work, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    return rerun


def test_a_run_killed_during_feature_extraction_recomputes_only_the_unfinished_shards(finished_run, tmp_path):
    from conftest import SNAKEMAKE

    work = run_without(finished_run, tmp_path / "run", "results/features")  # its catalog, not its shards
    features = work / "results" / "features"
    command = [*SNAKEMAKE, "--cores", "1", "--configfile", "tiny.yaml", "--config", "features={n_shards: 3}"]
    kill_when(
        [*command, "--", "features"],
        work,
        lambda: len(list(features.glob("shard-*.parquet"))) == 1 and len(list(features.glob(".*.tmp.*"))) == 1,
        "the run ended before a second shard started",
    )
    (done,) = features.glob("shard-*.parquet")
    before = done.stat().st_mtime_ns

    rerun = rerun_incomplete(command, work, "features")
    assert done.stat().st_mtime_ns == before  # the finished shard was not recomputed
    assert sorted(p.name for p in features.glob("shard-*.parquet")) == [f"shard-00{i}.parquet" for i in range(3)]
    assert rerun.stderr.count("rule cqt_shard:") == 2, rerun.stderr


def test_a_training_job_killed_mid_training_resumes_to_the_weights_of_an_uninterrupted_run(finished_run, tmp_path):
    import subprocess

    from conftest import SNAKEMAKE

    epochs = 4
    overrides = [
        "--config",
        f"train={{systems: [tl_online], epochs: {epochs}, batches_per_epoch: 3, patience: {epochs}}}",
    ]
    command = [*SNAKEMAKE, "--cores", "1", "--configfile", "tiny.yaml", *overrides]
    target = "results/models/tl_online/model.pt"
    killed = run_without(finished_run, tmp_path / "killed", "results/models/tl_online")
    last = killed / "results/models/tl_online/last.pt"
    log = killed / "results/logs/train/tl_online.log"

    def epochs_done() -> int:
        try:
            return torch.load(last, weights_only=True)["state"]["epoch"]
        except (OSError, RuntimeError, EOFError, KeyError):  # not written yet
            return 0

    kill_when(  # last.pt is written after each epoch, then the next one starts
        [*command, "--", target], killed, lambda: epochs_done() >= 1, "the run ended before a first epoch was saved"
    )
    # killed mid-training: model.pt holds a kept epoch already, only Snakemake's metadata marks it incomplete
    assert 1 <= epochs_done() < epochs
    assert "keeps epoch" not in log.read_text()

    rerun_incomplete(command, killed, target)
    assert re.search(r"resuming tl_online from epoch [1-9]", log.read_text())  # the rerun's log (mode "w")

    straight = run_without(finished_run, tmp_path / "straight", "results/models/tl_online")
    run = subprocess.run([*command, "--", target], cwd=straight, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    for weights in (target, "results/models/tl_online/last.pt"):  # the kept epoch's weights, and the last epoch's
        resumed = torch.load(killed / weights, weights_only=True)["model"]
        expected = torch.load(straight / weights, weights_only=True)["model"]
        assert resumed.keys() == expected.keys()
        assert all(torch.equal(resumed[name], expected[name]) for name in expected), weights
    history = [
        pd.read_csv(work / "results/models/tl_online/history.csv").drop(columns="seconds")
        for work in (killed, straight)
    ]
    assert list(history[0]["epoch"]) == list(range(epochs + 1))
    pd.testing.assert_frame_equal(*history)
