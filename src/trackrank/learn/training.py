"""The training loop of every system (paper §3.4): epochs of steps, validation, early stopping, resume.

What differs between the auto-tagger, offline TL and online TL (batches, loss, validation ranking)
is the system's kind (:mod:`trackrank.learn.kinds`); what a run reads is
:mod:`trackrank.learn.training_data`.

Early stopping watches MAP@k on the validation split (each val track queries the
others; relevant = its first oracle-ranked tracks), not a validation loss: the
retrieval metric is what the paper reports, and it compares the auto-tagger (BCE) and
the triplet systems on one scale. Validation losses are logged beside it. On a small
val split one epoch's MAP is noisy (80 val tracks: a few points either way), and a rule
that stops at the first three epochs without a new maximum stops on a lucky epoch, long
before music has taught the network anything; so the rule watches the mean of the last
``smoothing`` validations of trained epochs (epoch 0, the untrained network, stands alone),
and its patience runs from the best trained epoch. Only full windows count: the first trained
epochs' means are over fewer validations, as noisy as one, and a lucky first epoch would otherwise
stop the run before its first full window (measured: ``tl_distance``, seed 2, on the scores
catalog). The kept epoch is the last of the best window, or epoch 0 where no window beat it: the
most trained network of the best stretch.
Its weights are kept in ``model.pt``. With ``ema`` set, what is validated, stopped on and kept is an
exponential moving average of the weights (:func:`weight_average`), not the last step's weights.

Resuming: after every epoch, ``last.pt`` holds the model, its weight average, optimiser, RNG states
and history. A rerun (a killed process, a preempted cluster job) starts from it when its
settings fingerprint and the digest of the files it trains on both match, so it continues
from the saved step; a rerun because an input changed (new triplets, rankings, tags, S or
features) starts over. Checkpoints hold
only tensors and plain Python values and are loaded with ``weights_only=True``.

Data loading: patches come from the memory-mapped cache (:mod:`trackrank.data.feature_cache`)
through a DataLoader whose worker processes each build whole batches
(:mod:`trackrank.learn.batches`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader

from trackrank.atomic import atomic_output
from trackrank.errors import ConfigError
from trackrank.learn.checkpoints import load_checkpoint
from trackrank.learn.embedding import choose_device, track_outputs
from trackrank.learn.kinds import kind_of
from trackrank.learn.models import build_model
from trackrank.learn.settings import TrainSettings
from trackrank.learn.training_data import TrainingData
from trackrank.rank.metrics import per_query_metrics

log = logging.getLogger(__name__)


@torch.no_grad()
def validate(model, data: TrainingData, settings: TrainSettings, device: torch.device) -> dict[str, float]:
    """Val MAP@k (early-stopping metric) and a validation loss on track-level outputs."""
    outputs = track_outputs(
        model, data.cache, data.val_tracks, n_patches=settings.val_patches, seed=settings.seed, device=device
    )
    k = min(settings.k, len(data.val_ids) - 1)
    predicted, loss = kind_of(settings).validation(outputs, data, settings, k)
    relevant = data.val_relevant
    usable = (relevant >= 0).all(axis=1)
    metrics = per_query_metrics(predicted[usable], relevant[usable], k=k)
    return {"val_loss": float(loss), f"val_map@{settings.k}": float(metrics["map"].mean())}


def _new_state(settings: TrainSettings, data: TrainingData, device: torch.device):
    model = build_model(
        settings.architecture,
        n_tags=len(data.tag_names),
        dim=settings.dim,
        width=settings.width,
        head_dropout=settings.head_dropout,
        seed=settings.seed,
    ).to(device)
    if settings.init_trunk:
        start_from(model, settings, device)
    optimizer = new_optimizer(model, settings)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    return model, optimizer, scaler


def new_optimizer(model, settings: TrainSettings) -> torch.optim.Adam:
    """Adam; with ``weight_decay``, decoupled as AdamW does, on the conv and linear weights alone.

    Why those alone: biases and BatchNorm's scales and shifts have a handful of values each and set the
    level of what a layer passes on, and shrinking them regularises nothing; decoupled, the decay does not
    pass through Adam's per-weight scaling, so every weight shrinks by the same ``lr * weight_decay``
    share per step whatever its gradients."""
    if not settings.weight_decay:
        return torch.optim.Adam(model.parameters(), lr=settings.lr)
    weights = [p for p in model.parameters() if p.ndim > 1]
    others = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": weights, "weight_decay": settings.weight_decay}, {"params": others, "weight_decay": 0.0}]
    return torch.optim.Adam(groups, lr=settings.lr, decoupled_weight_decay=True)


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


def weight_average(model, settings: TrainSettings) -> AveragedModel | None:
    """The exponential moving average of the weights (None when ``settings.ema`` is 0), BatchNorm's
    running statistics averaged with them, so that the averaged network is whole.

    Why: with a few hundred tagged tracks each step's weights carry the noise of their last batches; an
    average over recent steps is a smoother network to validate, stop on and keep. Its decay warms up,
    ``min(ema, (1 + n) / (10 + n))`` at the n-th update (as TensorFlow's ExponentialMovingAverage with
    ``num_updates``), so it averages over about the last tenth of the steps taken until that reaches
    ``1 / (1 - ema)``: a fixed decay from the first step mixes networks from far apart on the training
    path, and ranked worse than any of them (measured on ``scores``: bench/results/scores_ema)."""
    if not settings.ema:
        return None
    return AveragedModel(model, multi_avg_fn=_warming_average(settings.ema), use_buffers=True)


def _warming_average(ema: float):
    """An AveragedModel ``multi_avg_fn``: one update of the moving average with the warmed-up decay."""

    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        weight = (9.0 / (n_averaged + 10)).clamp(min=1 - ema)  # 1 - decay, on the device: no sync per step
        for mean, value in zip(averaged, current):
            if mean.is_floating_point():
                mean.lerp_(value, weight.to(mean.dtype))
            else:  # BatchNorm's step counter
                mean.copy_(value)

    return update


def train(
    settings: TrainSettings,
    data: TrainingData,
    *,
    model_file: str | Path,
    history_file: str | Path,
    last_file: str | Path,
) -> pd.DataFrame:
    """Train (or resume from ``last_file``) one system.

    Parameters
    ----------
    settings : the run (system, network size, learning rate, epochs of ``batches_per_epoch`` steps,
        early stopping's ``patience`` and ``smoothing`` in epochs, seed, device); ``epochs`` and
        ``patience`` grow with a train split larger than ``budget_tracks`` (TrainSettings.for_train_split).
    data : what it trains and validates on (:func:`~trackrank.learn.training_data.load_training_data`).
    model_file : the kept epoch's checkpoint (model.pt), rewritten whenever the smoothed val MAP improves.
    history_file : one CSV row per epoch (losses, val MAP, its smoothed value, seconds), ``kept`` marked.
    last_file : the resumable state after every epoch; a rerun with the same settings and inputs goes on
        from it.

    Returns
    -------
    The history, as written to ``history_file``.
    """
    model_file, history_file, last = Path(model_file), Path(history_file), Path(last_file)
    scaled = settings.for_train_split(len(data.train_tracks))
    if scaled is not settings:
        log.info(
            "%d train tracks, more than train.budget_tracks (%d): at most %d epochs, patience %d",
            len(data.train_tracks),
            settings.budget_tracks,
            scaled.epochs,
            scaled.patience,
        )
        settings = scaled
    device = choose_device(settings.device)
    model, optimizer, scaler = _new_state(settings, data, device)
    average = weight_average(model, settings)
    evaluated = average.module if average is not None else model  # what is validated and kept
    state = {"epoch": 0, "step": 0, "best": -1.0, "best_epoch": 0, "bad_epochs": 0, "history": []}
    fingerprint = settings.fingerprint()  # once: it may hash the tagger checkpoint a TL trunk starts from
    if last.exists():
        checkpoint = load_checkpoint(last, device=device)
        same_data = checkpoint.get("data") == data.digest
        if checkpoint.get("fingerprint") == fingerprint and same_data and "kept_checkpoint" in checkpoint["state"]:
            model.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            scaler.load_state_dict(checkpoint["scaler"])
            if average is not None:
                average.load_state_dict(checkpoint["average"])
            torch.set_rng_state(checkpoint["torch_rng"])
            state = checkpoint["state"]
            log.info("resuming %s from epoch %d (step %d)", settings.system, state["epoch"], state["step"])
        elif not same_data:
            log.info("%s was written for other inputs (triplets, rankings, tags, S or features): starting over", last)
        else:
            log.info("%s exists but was written with other settings (or by an older trackrank): starting over", last)
    log.info(
        "training %s (%s, %d parameters) on %s",
        settings.system,
        settings.architecture,
        sum(p.numel() for p in model.parameters()),
        device,
    )
    metric = f"val_map@{settings.k}"
    if not state["history"]:  # epoch 0: the untrained network, the bar that training must clear
        started = time.perf_counter()
        _record_epoch(
            state,
            {
                "epoch": 0,
                "step": 0,
                "train_loss": float("nan"),
                **validate(model, data, settings, device),
                "seconds": time.perf_counter() - started,
            },
            evaluated,
            settings,
            data,
            model_file,
        )
    while state["epoch"] < settings.epochs and not _should_stop(state, settings):
        epoch = state["epoch"] + 1
        started = time.perf_counter()
        train_loss, active_fraction = _train_epoch(
            model, optimizer, scaler, data, settings, epoch, device, average=average, first_step=state["step"]
        )
        state["step"] += settings.batches_per_epoch
        row = {
            "epoch": epoch,
            "step": state["step"],
            "train_loss": train_loss,
            **validate(evaluated, data, settings, device),
            "seconds": time.perf_counter() - started,
        }
        if kind_of(settings).reports_active:
            row["active_fraction"] = active_fraction
        _record_epoch(state, row, evaluated, settings, data, model_file)
        with atomic_output(last) as tmp:
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict(),
                    "average": average.state_dict() if average is not None else None,
                    "torch_rng": torch.get_rng_state(),
                    "state": state,
                    "fingerprint": fingerprint,
                    "data": data.digest,
                },
                tmp,
            )
        log.info(
            "epoch %d: train loss %.4f, val loss %.4f, %s %.4f%s (%.1f s)",
            epoch,
            train_loss,
            row["val_loss"],
            metric,
            row[metric],
            f", active triplets {active_fraction:.1%}" if "active_fraction" in row else "",
            row["seconds"],
        )
    smoothing = f" (mean of {settings.smoothing})" if settings.smoothing > 1 else ""
    if _should_stop(state, settings):
        log.info(
            "early stop: no %s%s gain for %d epochs; best epoch %d",
            metric,
            smoothing,
            settings.patience,
            state["best_epoch"],
        )
    log.info(
        "%s keeps epoch %d of %d (%s%s %.4f)",
        settings.system,
        state["best_epoch"],
        state["epoch"],
        metric,
        smoothing,
        state["best"],
    )
    if state["best_epoch"] <= 1 and state["epoch"] > 1:
        start = "the network it started from" if settings.init_trunk else "the untrained network"
        log.warning(
            "%s: FAILED RUN: its best epoch is %s, so further training made validation worse "
            "(%s %.4f); see history.csv and training_curves.png",
            settings.system,
            f"0, {start}" if state["best_epoch"] == 0 else "its first",
            metric,
            state["best"],
        )
    if not model_file.exists():  # a finished run resumed after Snakemake removed its outputs
        _save_kept(state, model_file)
    history = pd.DataFrame(state["history"])
    history["kept"] = history["epoch"] == state["best_epoch"]
    with atomic_output(history_file) as tmp:
        history.to_csv(tmp, index=False)
    return history


def smoothed(history: list[dict], metric: str, *, window: int) -> float:
    """The mean of ``metric`` over the last ``window`` trained epochs of ``history`` (all of them while
    fewer); epoch 0, the untrained network, is its own: a window of trained epochs that reached back to
    it would carry its value into theirs."""
    rows = history[-1:] if history[-1]["epoch"] == 0 else [row for row in history[-window:] if row["epoch"] > 0]
    return float(np.mean([row[metric] for row in rows]))


def _record_epoch(state: dict, row: dict, model, settings: TrainSettings, data: TrainingData, model_file: Path) -> None:
    """Add an epoch's row to the history; keep its weights in ``model_file`` when the smoothed val MAP
    (:func:`smoothed`, over ``settings.smoothing`` validations) improved."""
    metric = f"val_map@{settings.k}"
    state["history"].append(row)
    state["epoch"] = row["epoch"]
    value = row[f"{metric}_smoothed"] = smoothed(state["history"], metric, window=settings.smoothing)
    if np.isnan(row[metric]):
        log.warning("epoch %d: %s is undefined (validation split too small); keeping this epoch", row["epoch"], metric)
    # a trained epoch counts once its window is full (the budget's length where that is shorter)
    counts = row["epoch"] == 0 or row["epoch"] >= min(settings.smoothing, settings.epochs)
    selects = kind_of(settings).selects_epoch
    if row["epoch"] > 0 and counts and selects:  # patience runs from the best *trained* epoch (see _should_stop)
        if value > state.get("best_trained", -1.0):
            state.update(best_trained=value, bad_epochs=0)
        else:
            state["bad_epochs"] += 1
    if not selects or np.isnan(row[metric]) or (counts and value > state["best"]):
        # the kept weights also travel in last.pt: Snakemake deletes model.pt before it reruns a job,
        # and a resumed run must still end with the best epoch's weights
        kept = {
            "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "settings": dataclasses.asdict(settings),
            "tags": data.tag_names,
            "epoch": row["epoch"],
            metric: row[metric],
        }
        state.update(best=value, best_epoch=row["epoch"], kept_checkpoint=kept)
        _save_kept(state, model_file)


def _save_kept(state: dict, model_file: Path) -> None:
    """Write ``model_file`` (atomically) from the kept epoch's checkpoint."""
    with atomic_output(model_file) as tmp:
        torch.save(state["kept_checkpoint"], tmp)


def _should_stop(state: dict, settings: TrainSettings) -> bool:
    """Early stopping: ``patience`` epochs without a gain over the best trained epoch, never before
    ``min_epochs``.

    Why not over epoch 0 too: on music the untrained network is a fair embedding already, and the
    first steps of training make validation worse before they make it better (measured on the
    ``scores`` catalog: val MAP 0.25 untrained, 0.21-0.23 for five epochs, 0.29 at epoch 12); counted
    from epoch 0, patience stopped every triplet system there. The kept epoch is still the best of
    all, epoch 0 included, so a run that never beats its start keeps it (and says FAILED RUN).
    """
    return state["epoch"] >= settings.min_epochs and state["bad_epochs"] >= settings.patience


def learning_rate(settings: TrainSettings, step: int) -> float:
    """The learning rate of the run's step ``step`` (0-based): ``lr``, reached linearly over the first
    ``warmup_steps`` steps (``lr / warmup_steps`` at step 0); with ``lr_schedule: cosine``, then
    annealed along a half cosine to 0 at the budget's end (``epochs x batches_per_epoch`` steps).

    Why the warm-up: Adam's first steps come before its moment estimates have settled, and a ramp is the
    usual guard. Measured on ``scores`` (docs/training.md) it does not do what was hoped (the first
    epoch's drop in val MAP is deeper with it, so that drop is not the step size's doing): the offline TL
    system gains in the mean, not significantly; the auto-tagger loses. Off by default. Why the cosine:
    a run that still climbs when its budget ends (the offline TL system on ``scores``) ends on a network
    taken at full step size; annealing lets its last epochs settle (docs/training.md says what it moved).
    """
    if step < settings.warmup_steps:
        return settings.lr * (step + 1) / settings.warmup_steps
    if settings.lr_schedule == "constant":
        return settings.lr
    total = settings.epochs * settings.batches_per_epoch
    span = max(1, total - settings.warmup_steps)
    progress = min(1.0, (step - settings.warmup_steps) / span)
    return settings.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def epoch_batches(data: TrainingData, settings: TrainSettings, epoch: int, device: torch.device) -> DataLoader:
    """The epoch's mini-batches, augmented as the settings say, built by ``settings.workers`` DataLoader processes."""
    dataset = kind_of(settings).batches(data, settings, epoch)
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
    average: AveragedModel | None = None,
    first_step: int = 0,
) -> tuple[float, float]:
    """One epoch of steps, each followed by the weight average's update (``average``, or None), the
    first of them the run's step ``first_step`` (0-based; the learning rate's warm-up follows it):
    (mean train loss, mean share of active triplets; NaN for the auto-tagger)."""
    model.train()
    kind = kind_of(settings)
    losses, active = [], []
    for step, batch in enumerate(epoch_batches(data, settings, epoch, device), start=first_step):
        rate = learning_rate(settings, step)  # the schedule's rate (lr itself when there is none)
        for group in optimizer.param_groups:
            group["lr"] = rate
        with torch.autocast(device_type=device.type, enabled=device.type == "cuda"):
            loss, fraction = kind.loss(model, batch, data, settings, device)
        if fraction is not None:
            active.append(fraction)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if average is not None:
            average.update_parameters(model)
        losses.append(loss.item())
    return float(np.mean(losses)), float(np.mean(active)) if active else float("nan")
