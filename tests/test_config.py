"""Each default is written once, in the schema: config.yaml lists the schema's defaults, paper.yaml only
where the paper differs, and the package reads the schema's (``trackrank.config.schema_defaults``)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from trackrank.config import SCHEMA, config_problems, schema_defaults
from trackrank.learn.settings import TrainSettings, train_settings

REPO = Path(__file__).resolve().parents[1]


def read(name: str) -> dict:
    return yaml.safe_load((REPO / name).read_text())


def leaves(tree: dict, path: tuple = ()) -> dict[tuple, object]:
    """Every value of a nested mapping that is not itself a mapping, by its key path."""
    found = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            found.update(leaves(value, (*path, key)))
        else:
            found[(*path, key)] = value
    return found


def merged(base: dict, overlay: dict) -> dict:
    """``overlay`` over ``base``, key by key, as Snakemake lays a ``--configfile`` over config.yaml."""
    result = copy.deepcopy(base)
    for key, value in overlay.items():
        result[key] = merged(result[key], value) if isinstance(value, dict) and key in result else value
    return result


def test_the_package_reads_the_defaults_snakemake_fills_in():
    filled = {}
    validate(filled, str(SCHEMA))
    assert schema_defaults() == filled
    assert schema_defaults()["train"]["offline_negatives"] == "batch"


def test_config_yaml_lists_every_setting_at_the_schemas_default():
    """config.yaml is the defaults written out with what each does: a value there that is not the schema's
    default would be a second home for it, and the two would disagree where the package reads the schema."""
    config, defaults = leaves(read("config.yaml")), leaves(schema_defaults())
    assert config.keys() == defaults.keys()
    differ = {".".join(key): (config[key], defaults[key]) for key in config if config[key] != defaults[key]}
    assert differ == {}, "config.yaml (left) and the schema's default (right) disagree"


def test_paper_yaml_lists_only_where_the_paper_differs_from_the_defaults():
    defaults = leaves(schema_defaults())
    paper = leaves(read("paper.yaml"))
    assert paper.keys() <= defaults.keys()
    same = [".".join(key) for key, value in paper.items() if value == defaults[key]]
    assert same == [], "paper.yaml repeats these defaults"


#: Options removed because they measured no gain on real music (CHANGELOG.md), each at the value it had.
REMOVED = {
    ("train", "ema"): 0.0,
    ("train", "warmup_steps"): 0,
    ("train", "lr_schedule"): "constant",
    ("train", "weight_decay"): 0.0,
    ("train", "head_dropout"): 0.0,
    ("train", "augment", "mix_db"): 0.0,
    ("train", "tag_targets"): "binary",
    ("train", "lr_from_at"): 0.0001,
    ("train", "lr_from_ssl"): 0.0001,
}


@pytest.mark.parametrize("key", REMOVED, ids=".".join)
def test_a_config_that_still_sets_a_removed_option_is_refused_naming_it(key):
    """A config written for an older trackrank (config.yaml listed every option) stops the workflow with one
    line that names the key, rather than the key being ignored."""
    config = read("config.yaml")
    *parents, name = key
    holder = config
    for parent in parents:
        holder = holder[parent]
    holder[name] = REMOVED[key]
    problems = config_problems(config, str(SCHEMA))
    assert problems == [f"{'.'.join(parents)}: Additional properties are not allowed ('{name}' was unexpected)"]


@pytest.fixture
def paper() -> dict:
    """paper.yaml laid over config.yaml and validated, as ``snakemake --configfile paper.yaml`` sees it."""
    config = merged(read("config.yaml"), read("paper.yaml"))
    validate(config, str(SCHEMA))
    return config


def test_paper_yaml_trains_the_papers_systems(paper):
    """§3.2-3.4 and Table 1: Np 15, Nn 250; the filters of Table 1, d = 128, margin 0.5, one anchor and one
    positive with 42 negatives per batch, Adam at 1e-6 (TL) and 1e-4 (AT), binarised tags, no augmentation."""
    assert (paper["mining"]["n_positives"], paper["mining"]["n_negatives"]) == (15, 250)
    distance = TrainSettings.from_params("tl_distance", train_settings("tl_distance", paper))
    assert (distance.width, distance.dim, distance.margin, distance.lr) == (1.0, 128, 0.5, 1e-6)
    assert (distance.batch_size, distance.offline_pairs, distance.offline_negatives) == (42, 1, "all")
    assert not distance.augmentation.active
    tagger = TrainSettings.from_params("at_baseline", train_settings("at_baseline", paper))
    assert (tagger.lr, tagger.tag_threshold, tagger.width) == (1e-4, 0.5, 1.0)
    table_2 = ["at_baseline", "tl_neighbors", "tl_uniform", "tl_distance", "tl_autopool_distance"]
    assert paper["train"]["systems"] == table_2
