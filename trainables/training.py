"""The epoch loop every trainable runs, once: ``start`` (kernels, reporter, data on the device),
``initialise`` (seeded initialisation, the models built, a checkpoint restored into them) and
``run_epochs`` (per epoch: seed, schedule the lr, train, check, checkpoint, report). A trainable
passes what its model does differently: how to build it and what one epoch of it is.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from trainables.checkpoints import checkpoint_payload, restore_into, state_of
from trainables.config import TrainConfig
from trainables.data import DeviceSplit, Splits, load_splits
from trainables.devices import autocast, resolve_device, seed_epoch, set_determinism
from trainables.optim import set_epoch_lr
from trainables.reporting import TuneReporter


class DivergedError(RuntimeError):
    """A training loss became NaN or infinite; the trial cannot continue. Retrying it from its
    last checkpoint would diverge again (epochs replay exactly on a CPU, nearly so on a GPU
    without ``deterministic``), so a sweep ends the trial and records why. ``epoch`` and
    ``metrics`` (the non-finite epoch's metrics) say where."""

    def __init__(self, message: str, epoch: int | None = None, metrics: dict | None = None):
        super().__init__(message)
        self.epoch = epoch
        self.metrics = dict(metrics or {})


def train_epoch(model, optimizer, data, cfg: TrainConfig, generator, device, loss_fn) -> float:
    """One shuffled pass over ``data`` (a ``DeviceSplit``) minimising ``loss_fn(model, x, y)``;
    returns the mean loss per sample with a single host sync at the end of the epoch."""
    model.train()
    total, n = torch.zeros((), device=device), 0
    for x, y in data.batches(cfg.batch_size, shuffle=True, generator=generator):
        with autocast(cfg, device):
            loss = loss_fn(model, x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach() * len(x)
        n += len(x)
    return (total / n).item()


def check_finite(metrics: dict[str, float], epoch: int) -> None:
    """A DivergedError when a float metric of ``epoch`` is NaN or infinite."""
    for key, value in metrics.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise DivergedError(
                f"{key} became {value} at epoch {epoch}; the trial diverged "
                "(lower the learning rate or change the optimiser)",
                epoch=epoch,
                metrics=metrics,
            )


@dataclass(frozen=True)
class Run:
    """One run of a trainable: its kind and config, where its epochs are reported, its device,
    and the training and validation images on that device."""

    kind: str
    cfg: TrainConfig
    reporter: Any
    device: torch.device
    train: DeviceSplit
    val: DeviceSplit


def start(kind: str, cfg: TrainConfig, data: Splits | None = None, reporter=None) -> Run:
    """A run of ``cfg``: kernels as ``cfg.deterministic`` says, reporting to Tune unless
    ``reporter`` says otherwise, ``data`` (loaded as ``cfg`` says when None) on the device."""
    set_determinism(cfg)  # before any CUDA work
    reporter = reporter or TuneReporter()
    data = data or load_splits(cfg.data_dir, cfg.val_size, cfg.data_seed, cfg.subset)
    device = resolve_device(cfg.device)
    train = DeviceSplit(data.train_x, data.train_y, device)
    val = DeviceSplit(data.val_x, data.val_y, device)
    return Run(kind, cfg, reporter, device, train, val)


def initialise(
    run: Run, build: Callable[[], dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``build()``'s models and optimisers by name, initialised from (seed, epoch 0), with the
    reporter's checkpoint (if any) restored into them; and that checkpoint's payload, or {}."""
    seed_epoch(run.cfg, 0, run.device)
    modules = build()
    _, _, restored = restore_into(run.reporter, modules, run.kind)
    return modules, restored


def run_epochs(
    run: Run,
    modules: dict[str, Any],
    restored: dict[str, Any],
    model_args: dict[str, Any],
    one_epoch: Callable[[int, torch.Generator, list[dict[str, Any]]], dict[str, Any]],
    **extra: Any,
) -> None:
    """Train the epochs after ``restored``'s (all, without one) up to ``cfg.epochs``. Each is
    seeded from (seed, epoch), its lr scheduled in every optimiser of ``modules``, trained by
    ``one_epoch(epoch, generator, history)`` (its metrics; ``generator`` shuffles, ``history``
    holds the earlier epochs' metrics), timed (``epoch_seconds``), checked (``DivergedError``) and, if
    ``cfg.reports`` it, reported with a checkpoint of ``modules``, ``model_args`` and ``extra``
    (the kind's own records); the checkpoint's history holds every epoch."""
    cfg = run.cfg
    history = list(restored.get("history", []))
    optimizers = [m for m in modules.values() if isinstance(m, torch.optim.Optimizer)]
    for epoch in range(int(restored.get("epoch", 0)) + 1, cfg.epochs + 1):
        generator = seed_epoch(cfg, epoch, run.device)
        for optimizer in optimizers:
            set_epoch_lr(optimizer, cfg, epoch)
        started = time.perf_counter()
        metrics = {"epoch": epoch, **one_epoch(epoch, generator, history)}
        # training and validation, not the checkpoint (its metrics are host floats: synced)
        metrics["epoch_seconds"] = time.perf_counter() - started
        check_finite(metrics, epoch)
        history.append(metrics)
        if not cfg.reports(epoch):  # --report-every: the next reported epoch's checkpoint has it
            continue
        payload = checkpoint_payload(
            run.kind, cfg, model_args, epoch, history, state_of(modules), **extra
        )
        run.reporter.report(metrics, payload)


def count_parameters(module: torch.nn.Module) -> int:
    """The module's parameters: its size, a cost a sweep's --objectives may weigh."""
    return sum(p.numel() for p in module.parameters())
