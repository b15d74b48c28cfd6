"""Which epoch a run keeps and when it stops: the hooks the training loop (:mod:`trackrank.learn.training`)
calls after each validation.

On a small val split one epoch's MAP is noisy (80 val tracks: a few points either way), and a rule that
stops at the first three epochs without a new maximum stops on a lucky epoch, long before music has taught
the network anything; so the rule watches the mean of the last ``smoothing`` validations of trained epochs
(epoch 0, the untrained network, stands alone), and its patience runs from the best trained epoch. Only
full windows count: the first trained epochs' means are over fewer validations, as noisy as one, and a
lucky first epoch would otherwise stop the run before its first full window. The kept epoch is the last
of the best window, or epoch 0 where no window beat it: the most trained network of the best stretch.
Its weights are kept in ``model.pt`` (and in the run's state, which ``last.pt`` carries).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from trackrank.atomic import atomic_output
from trackrank.learn.settings import TrainSettings

log = logging.getLogger(__name__)


def new_state() -> dict:
    """A run's state before its first validation: epochs and steps done, the best smoothed val MAP so far
    and its epoch, epochs without a gain, the history's rows."""
    return {"epoch": 0, "step": 0, "best": -1.0, "best_epoch": 0, "bad_epochs": 0, "history": []}


def smoothed(history: list[dict], metric: str, *, window: int) -> float:
    """The mean of ``metric`` over the last ``window`` trained epochs of ``history`` (all of them while
    fewer); epoch 0, the untrained network, is its own: a window of trained epochs that reached back to
    it would carry its value into theirs."""
    rows = history[-1:] if history[-1]["epoch"] == 0 else [row for row in history[-window:] if row["epoch"] > 0]
    return float(np.mean([row[metric] for row in rows]))


def record_epoch(
    state: dict, row: dict, model, settings: TrainSettings, selects: bool, tags: list[str], model_file: Path
) -> None:
    """Add an epoch's row to the history; keep ``model``'s weights in ``model_file`` when the smoothed val
    MAP (:func:`smoothed`, over ``settings.smoothing`` validations) improved, or every epoch where the
    system's kind does not select (``selects`` False: it keeps its last)."""
    metric = f"val_map@{settings.k}"
    state["history"].append(row)
    state["epoch"] = row["epoch"]
    value = row[f"{metric}_smoothed"] = smoothed(state["history"], metric, window=settings.smoothing)
    if np.isnan(row[metric]):
        log.warning("epoch %d: %s is undefined (validation split too small); keeping this epoch", row["epoch"], metric)
    # a trained epoch counts once its window is full (the budget's length where that is shorter)
    counts = row["epoch"] == 0 or row["epoch"] >= min(settings.smoothing, settings.epochs)
    if row["epoch"] > 0 and counts and selects:  # patience runs from the best *trained* epoch (see should_stop)
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
            "tags": tags,
            "epoch": row["epoch"],
            metric: row[metric],
        }
        state.update(best=value, best_epoch=row["epoch"], kept_checkpoint=kept)
        save_kept(state, model_file)


def save_kept(state: dict, model_file: Path) -> None:
    """Write ``model_file`` (atomically) from the kept epoch's checkpoint."""
    with atomic_output(model_file) as tmp:
        torch.save(state["kept_checkpoint"], tmp)


def should_stop(state: dict, settings: TrainSettings) -> bool:
    """Early stopping: ``patience`` epochs without a gain over the best trained epoch.

    Why not over epoch 0 too: on music the untrained network is a fair embedding already, and the
    first steps of training make validation worse before they make it better (measured on the
    ``scores`` catalog); counted from epoch 0, patience stopped every triplet system there. The kept
    epoch is still the best of all, epoch 0 included, so a run that never beats its start keeps it (and
    says FAILED RUN).
    """
    return state["bad_epochs"] >= settings.patience


def finish(state: dict, settings: TrainSettings, *, model_file: Path, history_file: Path) -> pd.DataFrame:
    """Say how the run ended, write the kept weights where Snakemake removed them, and write the history
    (``kept`` marked); the history."""
    log_end(state, settings)
    if not model_file.exists():  # a finished run resumed after Snakemake removed its outputs
        save_kept(state, model_file)
    history = pd.DataFrame(state["history"])
    history["kept"] = history["epoch"] == state["best_epoch"]
    with atomic_output(history_file) as tmp:
        history.to_csv(tmp, index=False)
    return history


def log_end(state: dict, settings: TrainSettings) -> None:
    """Log why the run stopped and which epoch it keeps; warn when training never beat its first epoch."""
    metric = f"val_map@{settings.k}"
    smoothing = f" (mean of {settings.smoothing})" if settings.smoothing > 1 else ""
    if should_stop(state, settings):
        log.info(
            "early stop: no %s%s gain for %d epochs; best epoch %d",
            metric,
            smoothing,
            settings.patience,
            state["best_epoch"],
        )
    kept, done = state["best_epoch"], state["epoch"]
    log.info("%s keeps epoch %d of %d (%s%s %.4f)", settings.system, kept, done, metric, smoothing, state["best"])
    if kept <= 1 and done > 1:
        start = "the network it started from" if settings.init_trunk else "the untrained network"
        log.warning(
            "%s: FAILED RUN: its best epoch is %s, so further training made validation worse "
            "(%s %.4f); see history.csv and training_curves.png",
            settings.system,
            f"0, {start}" if kept == 0 else "its first",
            metric,
            state["best"],
        )
