"""How a run's weights move: Adam (with decoupled weight decay), the learning rate of each step (warm-up,
then constant or cosine), and the moving average of the weights that may be validated and kept instead."""

from __future__ import annotations

import math

import torch
from torch.optim.swa_utils import AveragedModel

from trackrank.learn.settings import TrainSettings


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


def weight_average(model, settings: TrainSettings) -> AveragedModel | None:
    """The exponential moving average of the weights (None when ``settings.ema`` is 0), BatchNorm's
    running statistics averaged with them, so that the averaged network is whole.

    Why: with a few hundred tagged tracks each step's weights carry the noise of their last batches; an
    average over recent steps is a smoother network to validate, stop on and keep. Its decay warms up,
    ``min(ema, (1 + n) / (10 + n))`` at the n-th update (as TensorFlow's ExponentialMovingAverage with
    ``num_updates``), so it averages over about the last tenth of the steps taken until that reaches
    ``1 / (1 - ema)``: a fixed decay from the first step mixes networks from far apart on the training
    path (bench/results/scores_ema)."""
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


def learning_rate(settings: TrainSettings, step: int) -> float:
    """The learning rate of the run's step ``step`` (0-based): ``lr``, reached linearly over the first
    ``warmup_steps`` steps (``lr / warmup_steps`` at step 0); with ``lr_schedule: cosine``, then
    annealed along a half cosine to 0 at the budget's end (``epochs x batches_per_epoch`` steps).

    Why the warm-up: Adam's first steps come before its moment estimates have settled, and a ramp is the
    usual guard. Why the cosine: a run that still climbs when its budget ends would end on a network taken
    at full step size; annealing lets its last epochs settle. What each did on music: docs/experiments.md.
    """
    if step < settings.warmup_steps:
        return settings.lr * (step + 1) / settings.warmup_steps
    if settings.lr_schedule == "constant":
        return settings.lr
    total = settings.epochs * settings.batches_per_epoch
    span = max(1, total - settings.warmup_steps)
    progress = min(1.0, (step - settings.warmup_steps) / span)
    return settings.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
