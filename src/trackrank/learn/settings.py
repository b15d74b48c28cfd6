"""What a training run is: the systems of Table 2 by name, :class:`TrainSettings`, and the config
mapping of the stages that run a system's network (training, embedding, index).

Free of torch: the workflow reads the system names and the mappings when it builds its DAG.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import sys
from dataclasses import dataclass
from typing import Any

from trackrank.config import schema_defaults
from trackrank.errors import ConfigError
from trackrank.learn.augment import Augmentation
from trackrank.rank.mining import STRATEGIES

#: Environment for job processes (set before they start; see workflow/rules/common.smk).
#: glibc hands large freed blocks back to the OS at once, so every CPU training step
#: page-faults its activations in again: about half a step's time at the demo's width,
#: measured. These keep freed memory in the process. glibc maps a block of 32 MiB or more
#: (its threshold's ceiling) on its own whenever the heap has no free run that large, and
#: unmaps it when freed: the demo's offline TL step (126 patches, 198 MB activations in its
#: first block) then faulted ~10 M pages a run of 2 epochs and ran ~25 % slower, on most runs
#: but not all. ``MALLOC_MMAP_MAX_=0`` takes every block from the heap, which keeps it.
MALLOC_SETTINGS = {
    "MALLOC_TRIM_THRESHOLD_": str(16 << 30),
    "MALLOC_TOP_PAD_": str(1 << 30),
    "MALLOC_MMAP_THRESHOLD_": str(32 << 20),
    "MALLOC_MMAP_MAX_": "0",
}


def with_malloc_settings() -> None:
    """Re-run this Python process with :data:`MALLOC_SETTINGS` unless its environment has them all (glibc
    reads them at process start only): for a script that trains outside the workflow, as its jobs run."""
    if any(name not in os.environ for name in MALLOC_SETTINGS):
        os.environ.update({name: value for name, value in MALLOC_SETTINGS.items() if name not in os.environ})
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])  # its flags, -c or -m kept


#: Reference rows of the results tables, beside ``random``: rankings that need no ranking
#: training (``evaluate.references`` in the config chooses which are made).
#: ``mfcc_stats``: MFCC mean/std per track (trackrank.evaluate.references.mfcc_stats); ``at_trunk``: the trained
#: auto-tagger's penultimate layer (trackrank.evaluate.references.at_trunk); ``untrained``: the TL network at its
#: initialisation (trackrank.evaluate.references.untrained). All rank by Euclidean distance.
REFERENCES = ("mfcc_stats", "at_trunk", "untrained")
#: The trained auto-tagger's trunk used as an embedding: a reference row, and an index the service can serve.
TRUNK_SYSTEM = "at_trunk"


def embedding_system(system: str) -> str:
    """The name of what a trained ``system`` embeds tracks with: its own output, or for the auto-tagger (whose
    output is tags) its trunk, :data:`TRUNK_SYSTEM`."""
    return TRUNK_SYSTEM if system_spec(system)[0] == "fcn5_tagger" else system


#: Every system: Table 2 of the paper, then online mining and the listwise loss (beyond the paper).
#: ``train.systems: all``.
ALL_SYSTEMS = (
    "at_baseline",
    "tl_neighbors",
    "tl_uniform",
    "tl_distance",
    "tl_autopool_distance",
    "tl_online",
    "tl_autopool_online",
    "tl_online_from_at",
    "tl_listwise",
)
#: Suffix of a TL system whose trunk starts from the trained auto-tagger's (same FCN-5 trunk).
FROM_TAGGER = "_from_at"
#: Suffix of a TL system whose network starts from the self-supervised one of its architecture
#: (``tl_ssl`` or ``tl_autopool_ssl``: two patches of one track a positive pair, no tags).
FROM_SSL = "_from_ssl"
#: The strategy of the self-supervised systems: they learn from the audio of every track outside the
#: test split, tagged or not.
SELF_SUPERVISED = "ssl"
#: The strategy of the listwise systems (``tl_listwise``): a listwise loss on S over each batch
#: (:mod:`trackrank.learn.listwise`), batches drawn as online mining draws them.
LISTWISE = "listwise"


def expand_systems(systems) -> list[str]:
    """``train.systems`` as a list: ``all`` means :data:`ALL_SYSTEMS`."""
    return list(ALL_SYSTEMS) if systems == "all" else list(systems)


def starts_from_tagger(system: str) -> bool:
    """``tl_<strategy>_from_at``: its FCN-5 trunk starts from the trained ``at_baseline``'s, not at random."""
    return system.startswith("tl_") and not system.startswith("tl_autopool_") and system.endswith(FROM_TAGGER)


def mines_offline(strategy: str | None) -> bool:
    """Whether a system of this mining strategy trains on a mined triplet table (the paper's
    strategies); the tagger (None), online mining and the self-supervised systems mine in the batch or
    not at all."""
    return strategy in STRATEGIES


def starts_from_ssl(system: str) -> bool:
    """``tl_[autopool_]<strategy>_from_ssl``: its network starts from the trained self-supervised one."""
    return system.startswith("tl_") and system.endswith(FROM_SSL)


def starts_from(system: str) -> str | None:
    """The system whose trained network starts ``system`` (None: it starts at random)."""
    if starts_from_tagger(system):
        return "at_baseline"
    if starts_from_ssl(system):
        return "tl_autopool_ssl" if system.startswith("tl_autopool_") else "tl_ssl"
    return None


def system_spec(system: str) -> tuple[str, str | None]:
    """(architecture, mining strategy) of a system name: at_baseline, tl_<strategy>, tl_autopool_<strategy>,
    tl_<strategy>_from_at, tl_[autopool_]<strategy>_from_ssl."""
    if starts_from_tagger(system):
        system = system.removesuffix(FROM_TAGGER)
    if starts_from_ssl(system):
        system = system.removesuffix(FROM_SSL)
        if system.endswith(f"_{SELF_SUPERVISED}"):
            raise ConfigError(f"unknown system '{system}{FROM_SSL}': the self-supervised system starts at random")
    if system == "at_baseline":
        return "fcn5_tagger", None
    match = re.fullmatch(r"tl_autopool_(\w+)", system)
    if match:
        return "autopool_triplet", match.group(1)
    match = re.fullmatch(r"tl_(\w+)", system)
    if match:
        return "triplet", match.group(1)
    raise ConfigError(f"unknown system '{system}': expected at_baseline, tl_<strategy> or tl_autopool_<strategy>")


class _FromSchema:
    """The default of a :class:`TrainSettings` field left out (see there)."""

    def __repr__(self) -> str:
        return "FROM_SCHEMA"


FROM_SCHEMA: Any = _FromSchema()


@dataclass
class TrainSettings:
    """Everything that defines a training run.

    A field left out takes the schema's default (``workflow/schemas/config.schema.yaml``) as
    :func:`train_settings` maps the default config for this system, so ``TrainSettings(system="tl_distance")``
    trains what the default run (config.yaml) trains. The paper's values are paper.yaml's. An option of
    :data:`TRAINS_AS_BEFORE` or :data:`HELD_WHERE_UNREAD` that the system does not read is held at that value.
    """

    system: str
    width: float = FROM_SCHEMA  # filter factor (1: Table 1's)
    dim: int = FROM_SCHEMA  # embedding size d
    margin: float = FROM_SCHEMA  # triplet margin, on squared distances of unit vectors
    lr: float = FROM_SCHEMA  # Adam's learning rate
    batch_size: int = FROM_SCHEMA  # patches of negatives (offline), of tagged tracks (tagger), per step
    epochs: int = FROM_SCHEMA  # upper bound, in epochs of batches_per_epoch steps
    batches_per_epoch: int = FROM_SCHEMA
    patience: int = FROM_SCHEMA  # epochs without a gain of the smoothed val MAP before stopping
    budget_tracks: int = FROM_SCHEMA  # epochs and patience hold up to this many train tracks, scale past it; 0: fixed
    smoothing: int = FROM_SCHEMA  # early stopping and the kept epoch follow the mean of this many validations
    tag_threshold: float = FROM_SCHEMA  # a likelihood from which a tag is a track's
    val_patches: int = FROM_SCHEMA  # patches per val track
    k: int = FROM_SCHEMA  # early stopping watches val MAP@k ...
    n_relevant: int = FROM_SCHEMA  # ... with a val track's first n_relevant oracle-ranked tracks relevant
    seed: int = FROM_SCHEMA
    workers: int = FROM_SCHEMA  # DataLoader worker processes
    device: str = FROM_SCHEMA  # auto | cpu | cuda
    n_positives: int = FROM_SCHEMA  # online mining's Np: an anchor's first-ranked train tracks (READ_BY)
    offline_pairs: int = FROM_SCHEMA  # (anchor, positive) pairs per offline TL batch (paper: 1)
    offline_negatives: str = FROM_SCHEMA  # a pair's negatives: "batch" (the whole batch's) or "all" (the table's)
    online_tracks: int = FROM_SCHEMA  # P tracks ...
    online_patches: int = FROM_SCHEMA  # ... x K patches per online batch
    online_mining: str = FROM_SCHEMA  # batch_all | semi_hard | hard
    listwise_temperature: float = FROM_SCHEMA  # tl_listwise: scale of the model's squared distances ...
    listwise_target_temperature: float = FROM_SCHEMA  # ... and of S (trackrank.learn.listwise)
    init_trunk: str = ""  # a trained model.pt that starts a TL network ("": random): the tagger's trunk, or a
    # network of the same architecture whole (tl_ssl's)
    aug_pitch: int = FROM_SCHEMA  # training-patch augmentation (trackrank.learn.augment); all 0: none
    aug_gain_db: float = FROM_SCHEMA
    aug_tilt_db: float = FROM_SCHEMA
    aug_stretch: float = FROM_SCHEMA

    def __post_init__(self) -> None:
        left_out = [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is FROM_SCHEMA]
        if left_out:
            defaults = _default_fields(self.system)
            for name in left_out:
                setattr(self, name, defaults[name])
        for option, value in (TRAINS_AS_BEFORE | HELD_WHERE_UNREAD).items():
            if not self.reads(option):
                setattr(self, option, value)

    def reads(self, option: str) -> bool:
        """Whether this system's training reads ``option`` of :data:`READ_BY`; the others hold it."""
        return READ_BY[option](self.architecture, self.strategy)

    @classmethod
    def from_params(cls, system: str, params: dict, **more) -> TrainSettings:
        """The settings that a training rule's params (:func:`train_settings`) stand for: an option of
        :data:`TRAINS_AS_BEFORE` they leave out is at that value, not at its default; one of :data:`RETIRED`
        or :data:`REMOVED` they carry at its old value is no setting."""
        return cls(system=system, **{**TRAINS_AS_BEFORE, **without_retired(params), **more})

    @property
    def augmentation(self) -> Augmentation:
        return Augmentation(self.aug_pitch, self.aug_gain_db, self.aug_tilt_db, self.aug_stretch)

    @property
    def architecture(self) -> str:
        return system_spec(self.system)[0]

    @property
    def strategy(self) -> str | None:
        return system_spec(self.system)[1]

    @property
    def ranks_batches(self) -> bool:
        """Its batches are ranked by the train split's rankings, an input of its training: online mining,
        and an offline system whose pairs take their negatives from the whole batch."""
        return self.strategy in ("online", LISTWISE) or (
            mines_offline(self.strategy) and self.offline_negatives == "batch"
        )

    def for_train_split(self, n_tracks: int) -> TrainSettings:
        """These settings for a train split of ``n_tracks``: ``epochs`` and ``patience`` times
        ``n_tracks / budget_tracks`` (rounded) past ``budget_tracks`` tracks, else unchanged.

        Why: an epoch is a fixed number of steps, so it covers less of a larger split, and on music the
        val curve of a larger split climbs more slowly per epoch, so a fixed stopping rule ends a large
        split's runs while they still learn (docs/experiments.md). The budget stays in passes over the split.
        """
        if not self.budget_tracks or n_tracks <= self.budget_tracks:
            return self
        scale = n_tracks / self.budget_tracks
        return dataclasses.replace(self, epochs=round(self.epochs * scale), patience=round(self.patience * scale))


#: Options added after runs were trained, each at the value that trains as those runs did. This is not
#: the option's default (the schema's, which may be another): at this value an option is left out of a run's
#: rule params and checkpoint fingerprint, so that adding an option neither retrains nor restarts the runs
#: that do not use it (Snakemake reruns a job whose params changed; a changed fingerprint starts over).
TRAINS_AS_BEFORE = {
    "offline_negatives": "all",
    "listwise_temperature": 0.5,
    "listwise_target_temperature": 0.1,
}

#: Which systems read each option of :data:`TRAINS_AS_BEFORE`, by (architecture, strategy): the others hold
#: it at that value, so that it reaches neither their params nor their fingerprints.
READ_BY = {
    "offline_negatives": lambda architecture, strategy: mines_offline(strategy),
    "listwise_temperature": lambda architecture, strategy: strategy == LISTWISE,
    "listwise_target_temperature": lambda architecture, strategy: strategy == LISTWISE,
    "online_mining": lambda architecture, strategy: strategy in ("online", SELF_SUPERVISED),
    "n_positives": lambda architecture, strategy: strategy in ("online", LISTWISE),  # offline: in the table
}

#: Options whose default changed after runs were trained, each at the value those runs had: a system that
#: does not read one (:data:`READ_BY`) holds it there, in its params and fingerprint as before, so that the
#: change retrains the systems that read it and no other.
HELD_WHERE_UNREAD = {"online_mining": "semi_hard", "n_positives": 0.02}  # Np: 2 % of the train split


def without_as_before(settings: dict) -> dict:
    """``settings`` less the options of :data:`TRAINS_AS_BEFORE` at that value."""
    return {k: v for k, v in settings.items() if k not in TRAINS_AS_BEFORE or v != TRAINS_AS_BEFORE[k]}


#: Options removed after runs were trained with them off (issue 43: none measured a gain on real music), at
#: the value those runs had. A finished run's checkpoint fingerprint hashed them and its training rule's
#: params listed them, so both still do, at these values (:func:`trackrank.learn.checkpoints.fingerprint`,
#: :func:`train_settings`): their removal neither starts a run over nor reruns its job.
RETIRED = {
    "ema": 0.0,
    "warmup_steps": 0,
    "lr_schedule": "constant",
    "weight_decay": 0.0,
    "head_dropout": 0.0,
    "aug_mix_db": 0.0,
}
#: Where each of :data:`RETIRED` stood in a rule's params: after this key (Snakemake compares their text).
RETIRED_AFTER = {
    "smoothing": ("ema", "warmup_steps", "lr_schedule", "weight_decay", "head_dropout"),
    "aug_stretch": ("aug_mix_db",),
}


def with_retired(params: dict) -> dict:
    """A rule's ``params`` with the options of :data:`RETIRED` back in their places, at their retired values."""
    placed = {}
    for key, value in params.items():
        placed[key] = value
        placed.update({name: RETIRED[name] for name in RETIRED_AFTER.get(key, ())})
    return placed


#: Options removed at the value trackrank trains at since: a confirmation on the reserved catalogs found no
#: gain of the default they had over it (CHANGELOG.md). Unlike :data:`RETIRED` they are hashed nowhere: no
#: run's fingerprint held them (``tag_targets`` at that value was left out, :data:`TRAINS_AS_BEFORE`;
#: ``min_epochs`` is the stopping rule's, never hashed), so their removal restarts no run. A params dict (a
#: bench variant) may still name one, at that value only (:func:`without_retired`).
REMOVED = {"tag_targets": "binary", "min_epochs": 1}


def without_retired(params: dict) -> dict:
    """``params`` less the options of :data:`RETIRED` and :data:`REMOVED`, which they may carry at those
    values only (another, as a variant of bench/learning.py may set, is refused naming it)."""
    gone = RETIRED | REMOVED
    changed = sorted(k for k, v in params.items() if k in gone and v != gone[k])
    if changed:
        kept = ", ".join(f"{k}: {gone[k]!r}" for k in changed)
        raise ConfigError(
            f"{', '.join(changed)}: removed from trackrank, having measured no gain on real music; trackrank trains "
            f"as at {kept} (CHANGELOG.md; bench/README.md names the commit that still has it)"
        )
    return {k: v for k, v in params.items() if k not in gone}


#: config ``train`` keys that are TrainSettings fields under the same name.
TRAIN_KEYS = (
    "width",
    "dim",
    "margin",
    "batch_size",
    "offline_pairs",
    "offline_negatives",
    "epochs",
    "batches_per_epoch",
    "patience",
    "budget_tracks",
    "smoothing",
    "tag_threshold",
    "val_patches",
    "workers",
    "device",
)


def train_settings(system: str, config: dict) -> dict:
    """The training rule's params of one system from a validated workflow config: its TrainSettings fields
    less those of :data:`TRAINS_AS_BEFORE` at that value, with those of :data:`RETIRED`
    (:meth:`TrainSettings.from_params` reads them back)."""
    fields = config_fields(system, config)
    settings = dataclasses.asdict(TrainSettings(system=system, **fields))  # options it does not read as before
    return without_as_before(with_retired({key: settings[key] for key in fields}))


@functools.cache
def _default_fields(system: str) -> dict:
    """The TrainSettings fields of one system in the default config (the schema's defaults)."""
    return config_fields(system, schema_defaults())


def config_fields(system: str, config: dict) -> dict:
    """Every TrainSettings field of one system (but ``init_trunk``) from a validated workflow config."""
    train = config["train"]
    settings = {key: train[key] for key in TRAIN_KEYS}
    architecture, strategy = system_spec(system)
    if mines_offline(strategy) and train["batch_size"] % train["offline_pairs"]:
        raise ConfigError(
            f"train.batch_size ({train['batch_size']}) must be a multiple of train.offline_pairs "
            f"({train['offline_pairs']}): each (anchor, positive) pair gets batch_size / offline_pairs negatives"
        )
    online = dict(train["online"])
    online_lr, online_margin = online.pop("lr"), online.pop("margin")
    if not mines_offline(strategy) and architecture != "fcn5_tagger":  # mined in the batch: its own margin
        settings["margin"] = online_margin
    if architecture == "fcn5_tagger":
        settings["lr"] = train["lr_tagger"]
    elif mines_offline(strategy):
        settings["lr"] = train["lr_triplet"]
    else:  # online and self-supervised: mined in the batch
        settings["lr"] = online_lr
    settings["k"] = train["val_k"]
    settings["n_relevant"] = train["val_relevant"]
    settings["seed"] = config["seed"]
    settings["n_positives"] = config["mining"]["n_positives"]  # online mining's Np is the offline miner's
    settings.update({f"online_{key}": value for key, value in online.items()})
    settings.update({f"aug_{key}": value for key, value in train["augment"].items()})
    settings.update({f"listwise_{key}": value for key, value in train["listwise"].items()})
    return settings
