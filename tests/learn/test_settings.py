"""System names and the one mapping from the workflow config to each system's training settings."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from trackrank.errors import ConfigError
from trackrank.learn.checkpoints import fingerprint
from trackrank.learn.settings import (
    ALL_SYSTEMS,
    MALLOC_SETTINGS,
    REMOVED,
    TrainSettings,
    expand_systems,
    system_spec,
    train_settings,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def config():
    """config.yaml as the workflow sees it: validated, schema defaults filled in."""
    values = yaml.safe_load((REPO / "config.yaml").read_text())
    validate(values, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return values


def test_all_means_every_system_of_table_2_and_the_online_ones():
    assert expand_systems("all") == list(ALL_SYSTEMS)
    assert {system_spec(s) for s in ALL_SYSTEMS} >= {
        ("fcn5_tagger", None),
        ("triplet", "online"),
        ("autopool_triplet", "online"),
        ("triplet", "distance"),
    }
    assert expand_systems(["tl_online"]) == ["tl_online"]


def test_each_kind_of_system_gets_its_own_learning_rate(config):
    config["train"].update(lr_tagger=0.01, lr_triplet=0.02)
    config["train"]["online"]["lr"] = 0.03
    assert train_settings("at_baseline", config)["lr"] == 0.01
    assert train_settings("tl_distance", config)["lr"] == 0.02
    assert train_settings("tl_autopool_online", config)["lr"] == 0.03


def test_systems_that_mine_in_the_batch_get_their_own_margin(config):
    """train.margin: the offline systems' triplet tables (measured apart on scores); train.online.margin:
    triplets mined in the batch, online or self-supervised, from a random start or a trained network."""
    config["train"]["margin"], config["train"]["online"]["margin"] = 0.3, 0.7
    for system in ("tl_distance", "tl_neighbors", "tl_autopool_distance", "tl_distance_from_ssl"):
        assert train_settings(system, config)["margin"] == 0.3, system
    for system in ("tl_online", "tl_autopool_online", "tl_ssl", "tl_online_from_at", "tl_autopool_online_from_ssl"):
        assert train_settings(system, config)["margin"] == 0.7, system
    assert TrainSettings.from_params("tl_online", train_settings("tl_online", config)).margin == 0.7


def test_a_system_started_from_a_trained_network_trains_at_its_strategys_rate(config):
    """Fine-tuning rates of their own (train.lr_from_at, train.lr_from_ssl) gained on one reserved catalog
    only and were removed: a started network trains at the rate of the strategy it mines with."""
    config["train"]["lr_triplet"] = 0.02
    config["train"]["online"]["lr"] = 0.03
    assert train_settings("tl_distance_from_ssl", config)["lr"] == 0.02
    assert train_settings("tl_autopool_online_from_ssl", config)["lr"] == 0.03
    assert train_settings("tl_ssl", config)["lr"] == 0.03  # the pretraining itself mines in the batch
    assert train_settings("tl_distance", config)["lr"] == 0.02
    assert train_settings("tl_online_from_at", config)["lr"] == 0.03
    assert train_settings("tl_distance_from_at", config)["lr"] == 0.02


def test_offline_batch_shapes_that_cannot_work_stop_naming_their_keys(config):
    config["train"].update(batch_size=42, offline_pairs=5)
    with pytest.raises(ValueError, match=r"train.batch_size \(42\) must be a multiple of train.offline_pairs \(5\)"):
        train_settings("tl_distance", config)
    assert train_settings("tl_online", config)["offline_pairs"] == 5  # online batches do not use it
    config["train"]["offline_pairs"] = 14
    assert train_settings("tl_distance", config)["offline_pairs"] == 14
    config["train"]["offline_negatives"] = "all"  # the paper's, at which runs trained before the option existed
    assert "offline_negatives" not in train_settings("tl_distance", config)
    assert train_settings("tl_online", config)["online_mining"] == "batch_all"


def test_online_mining_reaches_only_the_systems_that_mine_in_the_batch(config):
    """Its default went from semi_hard to batch_all: the systems that do not read it keep semi_hard, the value
    their runs were trained and fingerprinted at, so the change retrains the online and self-supervised
    systems alone."""
    before = {system: train_settings(system, config) for system in ALL_SYSTEMS}
    config["train"]["online"]["mining"] = "hard"
    for system in ALL_SYSTEMS:
        params = train_settings(system, config)
        if system_spec(system)[1] in ("online", "ssl"):
            assert params["online_mining"] == "hard" and before[system]["online_mining"] == "batch_all", system
        else:
            assert params == before[system] and params["online_mining"] == "semi_hard", system
            assert TrainSettings(system=system, online_mining="hard").online_mining == "semi_hard", system


def test_np_reaches_only_the_systems_that_mine_in_the_batch(config):
    """Np went from 2 % of the train split to the paper's 15: the systems that read it (online mining,
    tl_listwise) retrain; the others (the offline ones read it from their triplet table, the tagger and the
    self-supervised ones never) hold 2 %, the value their runs were fingerprinted at, and keep their runs."""
    before = {system: train_settings(system, config) for system in ALL_SYSTEMS}
    config["mining"]["n_positives"] = 7
    for system in ALL_SYSTEMS:
        params = train_settings(system, config)
        if system_spec(system)[1] in ("online", "listwise"):
            assert params["n_positives"] == 7 and before[system]["n_positives"] == 15, system
        else:
            assert params == before[system] and params["n_positives"] == 0.02, system
            assert TrainSettings(system=system, n_positives=7).n_positives == 0.02, system


def test_a_new_option_left_off_neither_retrains_nor_restarts_earlier_runs(config):
    """The default run's checkpoint fingerprints as they were before train.offline_negatives existed
    (4d1ba4a), at that run's margin, online rate and mining: a checkpoint of then still resumes, and the workflow's
    params for training are the same, with the options added since at the values that train as runs did
    then (TRAINS_AS_BEFORE) or removed at those values (REMOVED)."""
    config["train"]["margin"] = 0.2
    config["train"]["online"].update(lr=0.0003, mining="semi_hard")
    config["train"]["offline_negatives"] = "all"
    config["mining"].update(n_positives=0.02, n_negatives=0.3)  # the run's Np and Nn, shares of the train split
    before = {
        "at_baseline": "1935e09cdf78929a",
        "tl_distance": "e0a9b7a10fa0274c",
        "tl_online": "23ca4db8df7e93a6",
        "tl_autopool_online": "2e0c1a95fb639651",
    }
    for system, pinned in before.items():
        params = train_settings(system, config)
        assert not params.keys() & {"offline_negatives", "tag_targets", "listwise_temperature"}
        assert fingerprint(TrainSettings.from_params(system, params)) == pinned, system
    config["train"]["listwise"].update(temperature=0.3, target_temperature=0.2)  # only tl_listwise reads them
    for system in before:  # an update leaves the others alone
        params = train_settings(system, config)
        assert "listwise_temperature" not in params
        assert fingerprint(TrainSettings.from_params(system, params)) == before[system], system
    listwise = TrainSettings.from_params("tl_listwise", train_settings("tl_listwise", config))
    assert (listwise.listwise_temperature, listwise.listwise_target_temperature) == (0.3, 0.2)
    assert fingerprint(listwise) != fingerprint(dataclasses.replace(listwise, listwise_temperature=0.5))
    config["train"]["offline_negatives"] = "batch"  # today's default: only the offline systems read it
    for system in ("tl_online", "tl_autopool_online", "at_baseline"):
        assert "offline_negatives" not in train_settings(system, config)
    config["train"]["offline_pairs"] = 14
    chosen = TrainSettings.from_params("tl_distance", train_settings("tl_distance", config))
    assert chosen.offline_negatives == "batch"
    assert fingerprint(chosen) != fingerprint(dataclasses.replace(chosen, offline_negatives="all"))


def test_every_mapped_setting_is_a_train_settings_field(config):
    for system in ALL_SYSTEMS:
        settings = TrainSettings.from_params(system, train_settings(system, config))
        reads_np = system_spec(system)[1] in ("online", "listwise")
        assert settings.n_positives == (config["mining"]["n_positives"] if reads_np else 0.02)
        reads = system_spec(system)[1] in ("online", "ssl")
        assert settings.online_mining == (config["train"]["online"]["mining"] if reads else "semi_hard")


def test_the_budget_grows_with_a_train_split_larger_than_the_one_it_was_set_for(config):
    defaults = TrainSettings.from_params("tl_online", train_settings("tl_online", config))
    assert (defaults.epochs, defaults.patience, defaults.budget_tracks) == (30, 5, 400)
    for small in (240, 258, 400):  # the scores and demo catalogs' train splits: their measured budget
        assert defaults.for_train_split(small) == defaults
    large = defaults.for_train_split(1211)
    assert (large.epochs, large.patience) == (91, 15)
    assert fingerprint(large) == fingerprint(defaults), "a longer budget resumes the same run"
    paper = yaml.safe_load((REPO / "paper.yaml").read_text())
    validate(paper, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    fixed = TrainSettings.from_params("tl_distance", train_settings("tl_distance", paper))
    assert fixed.for_train_split(8500) == fixed, "paper.yaml's budget is for its own train split"


def test_a_from_at_system_is_its_strategy_started_from_the_tagger():
    from trackrank.learn.settings import starts_from_tagger

    assert system_spec("tl_online_from_at") == ("triplet", "online")
    assert starts_from_tagger("tl_online_from_at") and not starts_from_tagger("tl_online")
    assert not starts_from_tagger("tl_autopool_online_from_at"), "the Auto-pool trunk is not the tagger's"


def test_a_from_ssl_system_is_its_strategy_started_from_the_self_supervised_network_of_its_architecture(config):
    from trackrank.learn.settings import starts_from

    assert system_spec("tl_ssl") == ("triplet", "ssl")
    assert system_spec("tl_distance_from_ssl") == ("triplet", "distance")
    assert system_spec("tl_autopool_online_from_ssl") == ("autopool_triplet", "online")
    assert starts_from("tl_distance_from_ssl") == "tl_ssl"
    assert starts_from("tl_autopool_online_from_ssl") == "tl_autopool_ssl"
    assert starts_from("tl_online_from_at") == "at_baseline"
    assert starts_from("tl_online") is None and starts_from("tl_ssl") is None
    with pytest.raises(ValueError, match="starts at random"):
        system_spec("tl_ssl_from_ssl")
    config["train"]["online"]["lr"] = 0.03
    assert train_settings("tl_ssl", config)["lr"] == 0.03, "it mines in the batch as online TL does"


def test_every_system_that_trains_asks_a_gpu_on_the_profiles_gpu_partition():
    profile = yaml.safe_load((REPO / "workflow" / "profiles" / "slurm" / "config.yaml").read_text())
    assert yaml.safe_load((REPO / "config.yaml").read_text())["train"]["resources"]["gpu"] >= 1
    for system in (*ALL_SYSTEMS, "tl_ssl", "tl_autopool_ssl", "tl_distance_from_ssl", "tl_online_from_ssl"):
        assert profile["set-resources"][f"train_{system}"]["slurm_partition"] == "gpu", system


def test_scripts_that_train_run_with_the_workflow_jobs_malloc_settings(tmp_path):
    """with_malloc_settings re-runs a script (bench/learning.py, train_throughput.py...) with the settings that
    keep freed activations in the process (a CPU step ~25 % slower without, docs/training.md), its own
    arguments and interpreter flags kept, once."""
    script = tmp_path / "script.py"
    script.write_text(
        "import json, os, sys\n"
        "from trackrank.learn.settings import MALLOC_SETTINGS, with_malloc_settings\n"
        "print('started', flush=True)\n"
        "with_malloc_settings()\n"
        "settings = {name: os.environ[name] for name in MALLOC_SETTINGS}\n"
        "print(json.dumps([sys.argv[1:], sys.flags.optimize, settings]))\n"
    )
    env = {name: value for name, value in os.environ.items() if not name.startswith("MALLOC_")}
    run = subprocess.run(
        [sys.executable, "-O", str(script), "--seed", "3"], env=env, capture_output=True, text=True, check=True
    )
    lines = run.stdout.splitlines()
    assert lines.count("started") == 2  # run again once, with the settings in its environment
    arguments, flag, settings = json.loads(lines[-1])
    assert arguments == ["--seed", "3"] and flag == 1
    assert settings == MALLOC_SETTINGS and settings["MALLOC_MMAP_MAX_"] == "0"  # no block handed back to the OS


#: The default run's checkpoint fingerprints (config.yaml), every system: the trainer and the settings may
#: be restructured, but a finished run must still resume, and its rule's params stay as they are. A pin
#: changes only with a default its system reads, each named here: the offline systems' (tl_neighbors,
#: tl_uniform, tl_distance, tl_autopool_distance, tl_distance_from_ssl) with train.offline_negatives and
#: train.margin (batch and 0.2 again, confirmed together); at_baseline's with train.tag_targets back to
#: binary and train.margin (hashed, though the tagger has no margin); tl_online, tl_autopool_online,
#: tl_ssl, tl_autopool_ssl and tl_listwise with train.online.lr 1e-3; tl_online_from_at and
#: tl_autopool_online_from_ssl with it too, and tl_distance_from_ssl with train.lr_triplet, once
#: train.lr_from_at and train.lr_from_ssl were removed.
DEFAULT_RUN_FINGERPRINTS = {
    "at_baseline": "1935e09cdf78929a",
    "tl_neighbors": "a0839b90f0e4932b",
    "tl_uniform": "30ad83dc5c3192c8",
    "tl_distance": "f6e40f897991e867",
    "tl_autopool_distance": "6a1aa3a751ab15f1",
    "tl_online": "fbb5ffbb78b040aa",
    "tl_autopool_online": "40adafe22af1e04b",
    "tl_online_from_at": "706c769fb3030764",  # its init_trunk left out: the workflow adds the tagger's bytes
    "tl_ssl": "2f5af09e9ffa0bb6",
    "tl_autopool_ssl": "9f7a16891a74b378",
    "tl_distance_from_ssl": "5cf3adf6ffdc50b4",
    "tl_autopool_online_from_ssl": "bb50792ec5405071",
    "tl_listwise": "2bf797947f97acfc",  # pinned without its tag head (removed before any release)
}

#: The default run's training params (config.yaml) as Snakemake records them (their repr), hashed: Snakemake
#: reruns a job whose params changed, so a finished run's rule must keep its params' very text. They changed
#: with the defaults above, and those that read Np (online mining, tl_listwise) with the paper's 15 in place
#: of 2 % of the train split; the others hold 2 % (HELD_WHERE_UNREAD).
DEFAULT_RUN_PARAMS = {
    # without train.min_epochs (removed at 1). The offline systems: margin 0.2 and the batch's negatives; the
    # tagger: margin 0.2 (hashed), binary targets; the online ones and tl_listwise: margin 0.5, rate 1e-3;
    # those that mine in the batch: batch_all, the others hold semi_hard
    "at_baseline": "225fd88529c13628",
    # a system started from a trained network at its strategy's rate (train.lr_from_at, train.lr_from_ssl
    # removed): its strategy's params, the network it starts from an input
    **dict.fromkeys(
        ("tl_neighbors", "tl_uniform", "tl_distance", "tl_autopool_distance", "tl_distance_from_ssl"),
        "5890e5436adb91fc",
    ),
    **dict.fromkeys(
        ("tl_online", "tl_autopool_online", "tl_online_from_at", "tl_autopool_online_from_ssl"), "184a081d6a6369f6"
    ),
    **dict.fromkeys(("tl_ssl", "tl_autopool_ssl"), "8ec8234df1383f53"),  # Np held: two patches of one track
    "tl_listwise": "4a82667961f1739e",
}


@pytest.mark.parametrize("system", DEFAULT_RUN_FINGERPRINTS)
def test_settings_built_without_a_config_train_the_default_run(config, system):
    """``TrainSettings(system=...)`` takes the schema's defaults, mapped as the workflow maps config.yaml:
    a bench script or a library caller trains what the README's default run trains."""
    workflow = TrainSettings.from_params(system, train_settings(system, config))
    assert TrainSettings(system=system) == workflow
    assert fingerprint(TrainSettings(system=system)) == DEFAULT_RUN_FINGERPRINTS[system]


def test_a_removed_option_set_to_anything_but_its_old_off_value_is_refused_naming_it(config):
    """A rule's params carry the removed options at their old values (RETIRED); a bench variant that still
    sets one (bench/variants/scores_ema.json) stops with its name rather than training without it."""
    params = train_settings("tl_distance", config)
    assert params["ema"] == 0.0 and params["aug_mix_db"] == 0.0
    assert TrainSettings.from_params("tl_distance", params) == TrainSettings(system="tl_distance")
    with pytest.raises(ConfigError, match=r"^aug_mix_db, ema: removed"):
        TrainSettings.from_params("tl_distance", {**params, "ema": 0.99, "aug_mix_db": 10.0})
    with pytest.raises(TypeError, match="head_dropout"):
        TrainSettings(system="tl_distance", head_dropout=0.5)


#: The options that went back to the value they had replaced and left trackrank (no confirmed gain on the
#: reserved catalogs), each at that replaced default, which a bench variant of before may set.
REPLACED_DEFAULTS = {"tag_targets": "graded", "min_epochs": 20}


@pytest.mark.parametrize("option", REPLACED_DEFAULTS)
def test_an_option_removed_at_the_value_it_went_back_to_is_refused_at_any_other_naming_it(config, option):
    """A rule's params never carry it; a bench variant that sets it at the value trackrank now always trains
    at trains as without it (bench/variants/confirm_replaced_values.json), one that sets another stops
    naming it (bench/variants/scores_graded_tags.json) rather than
    training without it."""
    assert set(REPLACED_DEFAULTS) == set(REMOVED)
    system = "at_baseline"
    params = train_settings(system, config)
    assert option not in params
    assert TrainSettings.from_params(system, {**params, option: REMOVED[option]}) == TrainSettings(system=system)
    refused = rf"^{option}: removed from trackrank.*trains as at {option}: {re.escape(repr(REMOVED[option]))} "
    with pytest.raises(ConfigError, match=refused):
        TrainSettings.from_params(system, {**params, option: REPLACED_DEFAULTS[option]})
    with pytest.raises(TypeError, match=option):
        TrainSettings(system=system, **{option: REMOVED[option]})


@pytest.mark.parametrize("system", DEFAULT_RUN_PARAMS)
def test_a_finished_default_runs_training_params_are_as_they_were(config, system):
    """The params of each system's training rule, as Snakemake records them to decide whether a finished job
    reruns, are what they were when the default run was trained (pinned at 0c22e77, and again where defaults
    changed: DEFAULT_RUN_PARAMS)."""
    recorded = hashlib.sha256(repr(train_settings(system, config)).encode()).hexdigest()[:16]
    assert recorded == DEFAULT_RUN_PARAMS[system]


def test_the_default_system_is_the_one_config_yaml_describes():
    distance = TrainSettings(system="tl_distance")
    assert (distance.offline_negatives, distance.margin, distance.offline_pairs) == (
        "batch",
        0.2,
        42,
    )
    assert distance.lr == 1e-3
    assert distance.ranks_batches and distance.augmentation.pitch == 2 and distance.smoothing == 3
    assert TrainSettings(system="tl_online").ranks_batches and TrainSettings(system="tl_listwise").ranks_batches
    assert TrainSettings(system="tl_online").margin == 0.5, "the online systems keep their own margin"
    assert TrainSettings(system="tl_distance", margin=0.7).margin == 0.7


@pytest.mark.parametrize("negatives", ["all", "batch"])
@pytest.mark.parametrize("temperature", [0.5, 0.3])
def test_a_rules_params_read_back_as_the_settings_they_stand_for(config, temperature, negatives):
    """The params leave out an option at the value that trains as before (TRAINS_AS_BEFORE), which need not be
    its default: read back, it is that value again, for every system, whatever the config chose for the
    systems that read it."""
    config["train"]["listwise"]["temperature"] = temperature
    config["train"].update(offline_negatives=negatives, offline_pairs=14)
    for system in DEFAULT_RUN_FINGERPRINTS:
        params = train_settings(system, config)
        reads_it = system == "tl_listwise"
        assert ("listwise_temperature" in params) == (reads_it and temperature != 0.5), system
        settings = TrainSettings.from_params(system, params)
        assert settings.listwise_temperature == (temperature if reads_it else 0.5), system
        offline = settings.strategy in ("neighbors", "uniform", "distance")
        assert settings.offline_negatives == (negatives if offline else "all"), system
