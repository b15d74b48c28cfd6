"""The training loop of every system (paper §3.4): epochs of steps, validation, early stopping, resume.

What differs between the auto-tagger, offline TL and online TL (batches, loss, validation ranking) is the
system's kind (:mod:`trackrank.learn.kinds`), decided once per run and passed to the steps; which epoch is
kept and when the run stops is :mod:`trackrank.learn.early_stopping`; resuming, :mod:`trackrank.learn.checkpoints`.
Every step is plain Adam's, at the run's learning rate.

Early stopping watches MAP@k on the validation split (each val track queries the others; relevant = its
first oracle-ranked tracks), not a validation loss: the retrieval metric is what the paper reports, and it
compares the auto-tagger (BCE) and the triplet systems on one scale. Validation losses are logged beside it.

Resuming: after every epoch, ``last.pt`` holds the model, optimiser, RNG states and history. A rerun (a
killed process, a preempted cluster job) continues from it when its settings fingerprint and the digest of
the files it trains on both match; otherwise it starts over.

Data loading: patches come from the memory-mapped cache (:mod:`trackrank.data.feature_cache`) through a
DataLoader whose worker processes each build whole batches (:mod:`trackrank.learn.batches`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from trackrank.errors import ConfigError
from trackrank.learn import checkpoints, early_stopping
from trackrank.learn.checkpoints import load_checkpoint
from trackrank.learn.embedding import choose_device, track_outputs
from trackrank.learn.kinds import SystemKind, kind_of
from trackrank.learn.models import build_model
from trackrank.learn.settings import TrainSettings
from trackrank.learn.training_data import TrainingData
from trackrank.rank.metrics import per_query_metrics

log = logging.getLogger(__name__)


@dataclass
class Run:
    """What one run changes as it trains: the network, its optimiser and gradient scaler, with the files it
    writes."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    model_file: Path
    history_file: Path
    last_file: Path

    def states(self) -> dict:
        """The objects whose state ``last.pt`` keeps, by their key there."""
        return {"model": self.model, "optimizer": self.optimizer, "scaler": self.scaler}


def train(
    settings: TrainSettings,
    data: TrainingData,
    *,
    model_file: str | Path,
    history_file: str | Path,
    last_file: str | Path,
) -> pd.DataFrame:
    """Train (or resume from ``last_file``) one system; the history, as written to ``history_file``.

    ``settings``: the run (its ``epochs`` and ``patience`` grow with a train split larger than
    ``budget_tracks``); ``data``: what it trains and validates on (:func:`trackrank.learn.loading.load_training_data`);
    ``model_file``: the kept epoch's checkpoint, rewritten whenever the smoothed val MAP improves;
    ``history_file``: one CSV row per epoch (losses, val MAP, its smoothed value, seconds), ``kept`` marked;
    ``last_file``: the resumable state after every epoch.
    """
    settings = for_this_split(settings, len(data.train_tracks))
    kind, device = kind_of(settings), choose_device(settings.device)
    run = new_run(settings, data, device, files=(model_file, history_file, last_file))
    fingerprint = checkpoints.fingerprint(settings)  # once: it may hash the checkpoint a TL network starts from
    resumed = checkpoints.resume(
        run.last_file, run.states(), system=settings.system, fingerprint=fingerprint, digest=data.digest, device=device
    )
    state = resumed or early_stopping.new_state()
    log_start(settings, run, device)
    if not state["history"]:  # epoch 0: the untrained network, the bar that training must clear
        record(state, untrained_row(run, kind, data, settings, device), run, kind, settings, data)
    while state["epoch"] < settings.epochs and not early_stopping.should_stop(state, settings):
        record(state, one_epoch(run, kind, data, settings, state, device), run, kind, settings, data)
        checkpoints.save_last(run.last_file, run.states(), state=state, fingerprint=fingerprint, digest=data.digest)
        log_epoch(state["history"][-1], settings)
    return early_stopping.finish(state, settings, model_file=run.model_file, history_file=run.history_file)


def for_this_split(settings: TrainSettings, n_tracks: int) -> TrainSettings:
    """``settings`` for a train split of ``n_tracks`` (:meth:`TrainSettings.for_train_split`), logged when scaled."""
    scaled = settings.for_train_split(n_tracks)
    if scaled is not settings:
        log.info(
            "%d train tracks, more than train.budget_tracks (%d): at most %d epochs, patience %d",
            n_tracks,
            settings.budget_tracks,
            scaled.epochs,
            scaled.patience,
        )
    return scaled


def new_run(settings: TrainSettings, data: TrainingData, device: torch.device, *, files: tuple) -> Run:
    """A run at its start: a new network (or the one it starts from), optimiser and scaler."""
    return Run(*_new_state(settings, data, device), *(Path(f) for f in files))


def _new_state(settings: TrainSettings, data: TrainingData, device: torch.device):
    """The network, optimiser and gradient scaler of a run at its start."""
    model = build_model(
        settings.architecture,
        n_tags=len(data.tag_names),
        dim=settings.dim,
        width=settings.width,
        seed=settings.seed,
    ).to(device)
    if settings.init_trunk:
        start_from(model, settings, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    return model, optimizer, scaler


def start_from(model, settings: TrainSettings, device: torch.device) -> None:
    """Load ``settings.init_trunk`` into a new network: whole where it is a network of the same
    architecture (a self-supervised ``tl_ssl``), else its FCN-5 trunk alone (the auto-tagger's, into a
    ``tl_*`` network; the head stays random)."""
    source = load_checkpoint(settings.init_trunk, device=device, keys=("model",))["model"]
    own = model.state_dict()
    if source.keys() == own.keys() and all(source[k].shape == own[k].shape for k in own):
        model.load_state_dict(source)
        log.info("network initialised from %s", settings.init_trunk)
        return
    if settings.architecture != "triplet":
        raise ConfigError(
            f"{settings.system}: {settings.init_trunk} is not a network of its architecture, and only a TL "
            "network shares the auto-tagger's FCN-5 trunk"
        )
    model.trunk.load_state_dict({k.removeprefix("trunk."): v for k, v in source.items() if k.startswith("trunk.")})
    log.info("trunk initialised from %s", settings.init_trunk)


def record(state: dict, row: dict, run: Run, kind: SystemKind, settings: TrainSettings, data: TrainingData) -> None:
    """Add an epoch's row to the history, keeping the network when early stopping's rule says so."""
    early_stopping.record_epoch(state, row, run.model, settings, kind.selects_epoch, data.tag_names, run.model_file)


def log_start(settings: TrainSettings, run: Run, device: torch.device) -> None:
    n_parameters = sum(p.numel() for p in run.model.parameters())
    log.info("training %s (%s, %d parameters) on %s", settings.system, settings.architecture, n_parameters, device)


@torch.no_grad()
def validate(model, kind: SystemKind, data: TrainingData, settings: TrainSettings, device: torch.device) -> dict:
    """Val MAP@k (early stopping's metric) and a validation loss, on track-level outputs."""
    outputs = track_outputs(
        model, data.cache, data.val_tracks, n_patches=settings.val_patches, seed=settings.seed, device=device
    )
    k = min(settings.k, len(data.val_ids) - 1)
    predicted, loss = kind.validation(outputs, data, settings, k)
    relevant = data.val_relevant
    usable = (relevant >= 0).all(axis=1)
    metrics = per_query_metrics(predicted[usable], relevant[usable], k=k)
    return {"val_loss": float(loss), f"val_map@{settings.k}": float(metrics["map"].mean())}


def untrained_row(run: Run, kind: SystemKind, data: TrainingData, settings: TrainSettings, device) -> dict:
    """Epoch 0's history row: the network before any step, validated."""
    started = time.perf_counter()
    scores = validate(run.model, kind, data, settings, device)
    return {"epoch": 0, "step": 0, "train_loss": float("nan"), **scores, "seconds": time.perf_counter() - started}


def one_epoch(run: Run, kind: SystemKind, data: TrainingData, settings: TrainSettings, state: dict, device) -> dict:
    """Train the next epoch, validate it, and return its history row (``state``'s step moves on)."""
    epoch, started = state["epoch"] + 1, time.perf_counter()
    train_loss, active = _train_epoch(run.model, run.optimizer, run.scaler, data, settings, epoch, device, kind=kind)
    state["step"] += settings.batches_per_epoch
    scores = validate(run.model, kind, data, settings, device)
    row = {"epoch": epoch, "step": state["step"], "train_loss": train_loss, **scores}
    row["seconds"] = time.perf_counter() - started
    if kind.reports_active:
        row["active_fraction"] = active
    return row


def log_epoch(row: dict, settings: TrainSettings) -> None:
    metric = f"val_map@{settings.k}"
    log.info(
        "epoch %d: train loss %.4f, val loss %.4f, %s %.4f%s (%.1f s)",
        row["epoch"],
        row["train_loss"],
        row["val_loss"],
        metric,
        row[metric],
        f", active triplets {row['active_fraction']:.1%}" if "active_fraction" in row else "",
        row["seconds"],
    )


def epoch_batches(
    data: TrainingData, settings: TrainSettings, epoch: int, device: torch.device, *, kind: SystemKind
) -> DataLoader:
    """The epoch's mini-batches, augmented as the settings say, built by ``settings.workers`` DataLoader processes."""
    dataset = kind.batches(data, settings, epoch)
    dataset.augmentation = settings.augmentation
    return DataLoader(
        dataset,
        batch_size=None,
        num_workers=settings.workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if settings.workers else None,
    )


def _train_epoch(
    model,
    optimizer,
    scaler,
    data: TrainingData,
    settings: TrainSettings,
    epoch: int,
    device: torch.device,
    *,
    kind: SystemKind,
) -> tuple[float, float]:
    """One epoch of steps: (mean train loss, mean share of active triplets; NaN for the auto-tagger)."""
    model.train()
    losses, active = [], []
    for batch in epoch_batches(data, settings, epoch, device, kind=kind):
        with torch.autocast(device_type=device.type, enabled=device.type == "cuda"):
            loss, fraction = kind.loss(model, batch, data, settings, device)
        if fraction is not None:
            active.append(fraction)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(loss.item())
    return float(np.mean(losses)), float(np.mean(active)) if active else float("nan")
