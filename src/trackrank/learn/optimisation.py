"""How a run's weights move: Adam at the run's learning rate (with decoupled weight decay)."""

from __future__ import annotations

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
