"""Each stage's settings come from one mapping of the validated config (``*_settings(config)``), and the
workflow builds that mapping without importing torch."""

from __future__ import annotations

import copy
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from trackrank.coldstart.index import build_index, embed_catalog_part
from trackrank.coldstart.served import write_default
from trackrank.coldstart.settings import INDEX_KINDS
from trackrank.data.catalog import ingest
from trackrank.data.demo.catalog import DemoSettings
from trackrank.data.features import extract_shard
from trackrank.evaluate.evaluation import evaluate
from trackrank.evaluate.listen import write_listening_page
from trackrank.evaluate.references.at_trunk import write_trunk_embeddings
from trackrank.evaluate.references.untrained import write_untrained_embeddings
from trackrank.learn.embedding import write_embeddings
from trackrank.learn.settings import ALL_SYSTEMS, system_spec
from trackrank.rank.mining import write_triplets
from trackrank.rank.oracle import write_rankings
from trackrank.rank.similarity import split_oracle
from trackrank.workflow_settings import (
    default_index_settings,
    embedding_settings,
    evaluation_settings,
    index_part_settings,
    index_settings,
    ingest_settings,
    listen_settings,
    mining_settings,
    ranking_settings,
    shard_settings,
    similarity_settings,
    untrained_settings,
)

REPO = Path(__file__).resolve().parents[2]

#: mapping -> (the calls it feeds, {setting: the config key it comes from})
MAPPINGS = {
    ingest_settings: (
        [ingest],
        {
            "seed": "seed",
            "fractions": "split",
            "untagged_train_share": "split/untagged_train_share",
            "short_tracks": "features/short_tracks",
        },
    ),
    shard_settings: ([extract_shard], {"short_tracks": "features/short_tracks"}),
    similarity_settings: (
        [split_oracle],
        {
            "name": "similarity/name",
            "function": "similarity/function",
            "category_weights": "similarity/category_weights",
        },
    ),
    ranking_settings: ([write_rankings], {"top_k": "ranking/top_k"}),
    mining_settings: (
        [write_triplets],
        {"n_positives": "mining/n_positives", "n_negatives": "mining/n_negatives", "seed": "seed"},
    ),
    embedding_settings: (
        [write_embeddings, write_trunk_embeddings],
        {"n_patches": "evaluate/n_patches", "seed": "seed", "device": "train/device"},
    ),
    evaluation_settings: ([evaluate], {"k": "evaluate/k", "n_relevant": "evaluate/n_relevant", "seed": "seed"}),
    listen_settings: (
        [write_listening_page],
        {"n_queries": "report/listen_queries", "n_relevant": "evaluate/n_relevant", "seed": "seed"},
    ),
    untrained_settings: (
        [write_untrained_embeddings],
        {
            "n_patches": "evaluate/n_patches",
            "seed": "seed",
            "device": "train/device",
            "width": "train/width",
            "dim": "train/dim",
        },
    ),
    index_part_settings: ([embed_catalog_part], {"n_patches": "index/n_patches", "device": "train/device"}),
    index_settings: (
        [build_index],
        {"n_patches": "index/n_patches", "kind": "index/kind", "tag_threshold": "train/tag_threshold"},
    ),
    default_index_settings: ([write_default], {"system": "index/system", "metric": "evaluate/k"}),
}


@pytest.fixture
def config():
    """config.yaml as the workflow sees it: validated, schema defaults filled in."""
    values = yaml.safe_load((REPO / "config.yaml").read_text())
    validate(values, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return values


def changed(config: dict, key: str) -> dict:
    """``config`` with the value at ``key`` (a/b) replaced by another valid one of its type."""
    other = copy.deepcopy(config)
    *parents, last = key.split("/")
    holder = other
    for parent in parents:
        holder = holder[parent]
    value = holder[last]
    if isinstance(value, bool) or value is None:
        holder[last] = "tests.module:function"
    elif isinstance(value, (int, float)):
        holder[last] = value + 1
    elif isinstance(value, str):
        holder[last] = value + "_other"
    elif isinstance(value, dict) and last == "split":
        holder[last] = {**value, "train": 0.5, "val": 0.25, "test": 0.25}
    else:
        holder[last] = {"Genre": 2.0}
    return other


@pytest.mark.parametrize("mapping", MAPPINGS, ids=lambda m: m.__name__)
def test_every_setting_is_a_keyword_of_the_calls_it_feeds(config, mapping):
    calls, _ = MAPPINGS[mapping]
    for call in calls:
        keywords = {
            name
            for name, p in inspect.signature(call).parameters.items()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        }
        assert set(mapping(config)) <= keywords, call.__name__


@pytest.mark.parametrize("mapping", MAPPINGS, ids=lambda m: m.__name__)
def test_each_setting_follows_its_config_key(config, mapping):
    _, sources = MAPPINGS[mapping]
    settings = mapping(config)
    assert set(settings) == set(sources)
    for setting, key in sources.items():
        moved = mapping(changed(config, key))
        assert moved[setting] != settings[setting], f"{mapping.__name__}: {setting} ignores {key}"
        assert {s: v for s, v in moved.items() if sources[s] != key} == {
            s: v for s, v in settings.items() if sources[s] != key
        }, f"{mapping.__name__}: {key} leaks into another setting"


def test_the_demo_settings_follow_the_config(config):
    config["demo"].update(n_artists=9, tracks_per_artist=2, duration_s=12.5)
    config["seed"] = 4
    assert DemoSettings.from_config(config) == DemoSettings(n_artists=9, tracks_per_artist=2, duration_s=12.5, seed=4)


def test_online_mining_takes_its_np_from_the_miners_mapping(config):
    from trackrank.learn.settings import train_settings

    config["mining"]["n_positives"] = 7
    assert train_settings("tl_online", config)["n_positives"] == mining_settings(config)["n_positives"] == 7


def test_the_workflow_imports_no_torch_when_it_builds_its_dag():
    sources = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
    modules = sorted({m for f in sources for m in re.findall(r"^from (trackrank[\w.]+) import", f.read_text(), re.M)})
    assert "trackrank.learn.settings" in modules and "trackrank.workflow_settings" in modules
    code = f"import sys\nfor m in {modules!r}: __import__(m)\nprint(sorted(m for m in sys.modules if m == 'torch'))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO / "src")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]", f"importing {modules} imports torch"


def schema() -> dict:
    return yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


def test_the_schema_offers_the_index_kinds_the_code_builds():
    assert tuple(schema()["properties"]["index"]["properties"]["kind"]["enum"]) == INDEX_KINDS


@pytest.mark.parametrize(
    "name",
    [
        *ALL_SYSTEMS,
        *("tl_ssl", "tl_autopool_ssl", "tl_distance_from_ssl", "tl_autopool_online_from_ssl"),
        *("tl_autopool_listwise", "tl_listwise_from_at", "tl_autopool_listwise_from_at"),
        *("tl_autopool_online_from_at", "tl_ssl_from_ssl", "tl_bogus", "at_baseline_from_at", "tl_", "tl_distance_x"),
    ],
)
def test_the_schema_and_the_system_grammar_accept_the_same_names(name):
    """The schema's pattern says which names a config may list; ``system_spec`` says what they are:
    a name the schema accepts must parse, and every name of ``train.systems: all`` must be accepted."""
    pattern = schema()["properties"]["train"]["properties"]["systems"]["oneOf"][0]["items"]["pattern"]
    if re.fullmatch(pattern, name):
        architecture, strategy = system_spec(name)
        assert strategy in (None, "neighbors", "uniform", "distance", "online", "listwise", "ssl")
    else:
        assert name not in ALL_SYSTEMS


def test_training_resources_are_set_in_one_place():
    """train.resources (config.yaml) is what a training job asks for; the SLURM profile only says where
    it runs, so the two can never disagree."""
    profile = yaml.safe_load((REPO / "workflow" / "profiles" / "slurm" / "config.yaml").read_text())
    config_keys = set(yaml.safe_load((REPO / "config.yaml").read_text())["train"]["resources"])
    assert config_keys >= {"gpu", "mem_mb", "runtime"}
    for system in ALL_SYSTEMS:
        assert not config_keys & set(profile["set-resources"][f"train_{system}"]), system


def test_the_config_shape_is_read_at_the_boundary_only():
    """Stage code takes keyword arguments: only the boundary module, the training system grammar and the
    built-in catalogs' ``from_config`` read the workflow config's keys."""
    readers = sorted(
        str(path.relative_to(REPO / "src"))
        for path in (REPO / "src" / "trackrank").rglob("*.py")
        if re.search(r"config\[\"", path.read_text())
    )
    assert readers == [
        "trackrank/data/demo/catalog.py",
        "trackrank/data/scores/plan.py",
        "trackrank/learn/settings.py",
        "trackrank/workflow_settings.py",
    ]
