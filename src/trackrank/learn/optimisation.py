"""How a run's weights move: Adam (with decoupled weight decay) and the learning rate of each step (warm-up,
then constant or cosine)."""

from __future__ import annotations

import math

import torch

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
