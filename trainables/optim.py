"""Optimisers as a config builds them, the learning-rate schedule (a pure function of the epoch, so
a resumed run needs no scheduler state), and the hyperparameters of a param group that the config
in force must set again after an optimiser's state is restored.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from trainables.config import TrainConfig


def make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def lr_factor(cfg: TrainConfig, epoch: int) -> float:
    """Multiplier of each param group's base lr during ``epoch`` (1-based): a pure function of the
    epoch, so a resumed trial needs no scheduler state."""
    progress = (epoch - 1) / cfg.epochs
    if cfg.lr_schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    if cfg.lr_schedule == "step":
        return 0.01 if progress >= 0.75 else 0.1 if progress >= 0.5 else 1.0
    return 1.0


def set_epoch_lr(optimizer: torch.optim.Optimizer, cfg: TrainConfig, epoch: int) -> None:
    for group in optimizer.param_groups:
        group.setdefault("base_lr", group["lr"])
        group["lr"] = group["base_lr"] * lr_factor(cfg, epoch)


# What a config sets in an optimiser's param groups (those of them the optimiser has). Loading
# an optimiser's state_dict brings back the values it was saved with; the config in force must
# win, or a Population Based Training exploit silently trains on with the donor's values.
HYPERPARAMETERS = ("lr", "betas", "weight_decay", "momentum")


def hyperparameters(optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
    """Each param group's ``HYPERPARAMETERS`` (the unscheduled lr: ``base_lr`` once
    ``set_epoch_lr`` has run)."""
    return [
        {
            k: group.get("base_lr", group["lr"]) if k == "lr" else group[k]
            for k in HYPERPARAMETERS
            if k in group
        }
        for group in optimizer.param_groups
    ]


def set_hyperparameters(optimizer: torch.optim.Optimizer, values: list[dict[str, Any]]) -> None:
    """Put ``values`` (``hyperparameters`` of an optimiser built from the config in force) into
    ``optimizer``'s param groups, ``base_lr`` included, so ``set_epoch_lr`` schedules the new lr."""
    for group, wanted in zip(optimizer.param_groups, values, strict=True):
        group.update(wanted)
        group["base_lr"] = wanted["lr"]
