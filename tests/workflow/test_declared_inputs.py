"""Every file a job reads is a declared input: each rule's job runs alone, given only its inputs.

For one job of each rule of the tiny workflow, a fresh copy of the workflow receives only the files
that job declared (as the finished run's metadata lists them), plus the catalog checkpoint's tables,
which Snakemake itself reads to plan any job downstream of the checkpoint (and, for ingest_catalog,
the catalog's audio, whose headers validation reads undeclared so that replacing one track reruns its
shard only); the job must succeed and write its outputs. A job that opens an undeclared file of
results/ fails here, as it would on a cluster without a shared file system.
"""

from __future__ import annotations

import io
import shutil
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest

from conftest import snakemake, workflow_copy

pytestmark = pytest.mark.workflow  # every test here runs Snakemake

CHECKPOINT_OUTPUTS = [
    "results/catalog/tracks.parquet",
    "results/catalog/tags.parquet",
    "results/catalog/taxonomy.csv",
    "results/catalog/rejected.csv",
]


def jobs_of(finished_run) -> pd.DataFrame:
    """One row per job of the finished run: rule, log (unique per job), outputs, declared inputs."""
    summary = snakemake(finished_run, "--detailed-summary")
    assert summary.returncode == 0, summary.stderr[-2000:]
    table = pd.read_csv(io.StringIO(summary.stdout), sep="\t", dtype=str, keep_default_na=False)
    table = table[table["log-file(s)"] != "-"]
    return table.groupby("log-file(s)", sort=False).agg(
        rule=("rule", "first"), outputs=("output_file", list), inputs=("input-file(s)", "first")
    )


@pytest.fixture(scope="module")
def one_job_per_rule(finished_run) -> dict[str, tuple[list[str], list[str]]]:
    jobs = jobs_of(finished_run).drop_duplicates("rule")
    return {row.rule: (row.outputs, [f for f in row.inputs.split(",") if f and f != "-"]) for row in jobs.itertuples()}


RULES = [
    "synthesize_demo",
    "ingest_catalog",
    "cqt_shard",
    "rejected_tracks",
    "rank_split",
    "mine_triplets",
    "plot_similarity_vs_rank",
    "cache_features",
    "train_at_baseline",
    "train_tl_distance",
    "train_tl_online",
    "train_tl_online_from_at",
    "embed",
    "mfcc_stats",
    "embed_mfcc_stats",
    "embed_at_trunk",
    "embed_untrained",
    "evaluate_system",
    "report",
    "listen_page",
    "embed_val",
    "evaluate_val",
    "index_part",
    "index",
    "index_default",
]


def run_alone(rule: str, outputs: list[str], inputs: list[str], finished_run, work):
    """``rule``'s job in a fresh workflow copy ``work`` given only its declared inputs: (given, run)."""
    work = workflow_copy(work)
    given = set(inputs) | (set() if rule in ("synthesize_demo", "ingest_catalog") else set(CHECKPOINT_OUTPUTS))
    if rule == "ingest_catalog":  # validation reads every audio header, undeclared by design (catalog.smk)
        shutil.copytree(finished_run / "results/demo/audio", work / "results/demo/audio")
    for name in given:
        if name.startswith("/"):
            continue  # audio named by absolute path in the catalog table: read in place
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(finished_run / name, work / name)
    return work, given, snakemake(work, "--allowed-rules", rule, "--rerun-triggers", "mtime", "--", *outputs)


@pytest.fixture(scope="module")
def alone(one_job_per_rule, finished_run, tmp_path_factory) -> dict:
    """Each rule's job run alone, two at a time: each is mostly one process starting up, so two share
    the machine's cores better than one after the other."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            rule: pool.submit(run_alone, rule, *one_job_per_rule[rule], finished_run, tmp_path_factory.mktemp(rule))
            for rule in RULES
        }
        return {rule: future.result() for rule, future in futures.items()}


@pytest.mark.parametrize("rule", RULES)
def test_a_job_runs_alone_with_only_its_declared_inputs(rule, one_job_per_rule, alone):
    outputs, _ = one_job_per_rule[rule]
    work, given, run = alone[rule]
    assert run.returncode == 0, f"{rule} given only {sorted(given)}:\n{run.stderr[-3000:]}"
    for name in outputs:
        assert (work / name).exists(), f"{rule} did not write {name}"
