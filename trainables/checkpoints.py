"""Self-describing checkpoints: what model, built with which arguments, trained with which config,
up to which epoch, with the optimisers' state and the metric history. Written atomically, read
with weights-only unpickling; ``restore_into`` continues a run from one, and
``evaluate_checkpoint`` is the only reader of the test images.
"""

from __future__ import annotations

import os
import tempfile
import typing
from pathlib import Path
from typing import Any

import torch

from trainables.config import TrainConfig
from trainables.data import DeviceSplit, load_splits
from trainables.devices import resolve_device
from trainables.errors import UsageError
from trainables.optim import hyperparameters, set_hyperparameters

CHECKPOINT_FORMAT = "latentsweep-checkpoint"
CHECKPOINT_VERSION = 1
CHECKPOINT_FILE = "checkpoint.pt"


class CheckpointError(UsageError, RuntimeError):
    """A checkpoint is missing, corrupt or of another model kind."""


def checkpoint_payload(
    kind: str,
    cfg: TrainConfig,
    model_args: dict[str, Any],
    epoch: int,
    history: list[dict[str, Any]],
    state: dict[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """A checkpoint that describes itself: what model, built how, trained how, up to which epoch.
    ``extra`` holds kind-specific records (the GAN's sample grids, the classifier's encoder source)."""
    return {
        **extra,
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "kind": kind,
        "model_args": dict(model_args),
        "config": cfg.to_dict(),
        "epoch": epoch,
        "history": list(history),
        "state": state,
    }


def save_checkpoint(payload: dict[str, Any], directory: str | os.PathLike) -> Path:
    """Write ``directory/checkpoint.pt`` atomically (a reader never sees half a file)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / CHECKPOINT_FILE
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".checkpoint-", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return final


def checkpoint_file(path: str | os.PathLike) -> Path:
    """``path`` itself if a file, else ``path/checkpoint.pt``; a Tune trial folder resolves to its
    latest ``checkpoint_*/checkpoint.pt``."""
    path = Path(path)
    if path.is_file():
        return path
    if (path / CHECKPOINT_FILE).is_file():
        return path / CHECKPOINT_FILE
    tune_ckpts = sorted(path.glob("checkpoint_*/" + CHECKPOINT_FILE))
    if tune_ckpts:
        return tune_ckpts[-1]
    raise CheckpointError(
        f"{path}: no {CHECKPOINT_FILE} found; pass a checkpoint file or its folder"
    )


def load_checkpoint(
    path: str | os.PathLike, kind: str | None = None, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load a latentsweep checkpoint (weights-only unpickling: no code runs); check its kind."""
    file = checkpoint_file(path)
    try:
        payload = torch.load(file, map_location=map_location, weights_only=True)
    except Exception as e:
        raise CheckpointError(
            f"{file}: not a readable checkpoint ({type(e).__name__}); the file is corrupt or "
            "was not written by latentsweep"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{file}: not a latentsweep checkpoint (no '{CHECKPOINT_FORMAT}' header)"
        )
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{file}: checkpoint version {payload.get('version')}, this code reads {CHECKPOINT_VERSION}"
        )
    if kind is not None and payload["kind"] != kind:
        raise CheckpointError(
            f"{file}: checkpoint of kind '{payload['kind']}', but kind '{kind}' is needed here"
        )
    payload["path"] = str(file)
    return payload


def load_model(
    path: str | os.PathLike,
    kind: str,
    build: typing.Callable[[dict[str, Any]], torch.nn.Module],
    state_key: str | tuple[str, ...] = "model",
    map_location: str | torch.device = "cpu",
) -> tuple[Any, dict[str, Any]]:
    """The trained module of a ``kind`` checkpoint, in eval mode, and the checkpoint's payload:
    ``build(payload["model_args"])`` makes it untrained, ``payload["state"][state_key]`` fills it
    (of a tuple of keys, the first the checkpoint holds)."""
    payload = load_checkpoint(path, kind, map_location)
    model = build(payload["model_args"])
    keys = (state_key,) if isinstance(state_key, str) else state_key
    key = next((k for k in keys if k in payload["state"]), keys[-1])
    model.load_state_dict(payload["state"][key])
    return model.eval(), payload


def device_test_split(cfg: TrainConfig, data, device: str) -> DeviceSplit:
    """The test images on ``device`` for ``evaluate_checkpoint``, the only reader of the test set:
    from ``data`` when given (a sweep's splits), else loaded as the checkpoint's config says."""
    if data is not None and not data.has_test:
        raise ValueError(
            "these splits have no test images (Splits.without_test: what a trial gets); "
            "evaluate with the splits load_splits returned"
        )
    data = data or load_splits(cfg.data_dir, cfg.val_size, cfg.data_seed)
    return DeviceSplit(data.test_x, data.test_y, resolve_device(device))


def evaluate_checkpoint(
    path: str | os.PathLike,
    load: typing.Callable[[str | os.PathLike], tuple[Any, dict[str, Any]]],
    config: type[TrainConfig],
    score: typing.Callable[[Any, DeviceSplit, Any], dict[str, Any]],
    data=None,
    device: str = "auto",
) -> dict[str, Any]:
    """Test-split metrics of a checkpoint, the only use of the test images: ``load(path)`` gives
    (model, payload), and ``score(model, test, cfg)`` scores the model, moved to the test
    split's device, with the checkpoint's config ``cfg`` (a ``config``)."""
    model, payload = load(path)
    cfg = config.from_dict(payload["config"])
    test = device_test_split(cfg, data, device)
    return score(model.to(test.device), test, cfg)


def check_resumes(payload: dict[str, Any], kind: str) -> None:
    """Refuse (CheckpointError) to resume a ``kind`` run from another kind's checkpoint."""
    if payload["kind"] != kind:
        raise CheckpointError(
            f"{payload['path']}: checkpoint of kind '{payload['kind']}' cannot resume a '{kind}' run"
        )


def restore_into(
    reporter, modules: dict[str, Any], kind: str
) -> tuple[int, list[dict[str, Any]], dict[str, Any]]:
    """Load the reporter's checkpoint (if any) into ``modules`` (models and optimisers by name);
    returns (last finished epoch, metric history, the whole payload or {}).

    Optimisers keep their state (moments, step counts) but not the checkpoint's hyperparameters:
    every param group's lr, betas, weight decay and momentum stay those of the optimiser as the
    config in force built it. A trial that Population Based Training restored from another
    trial's checkpoint with a perturbed config therefore trains with the perturbed values, and a
    ``--resume`` with another ``--lr`` uses that lr."""
    payload = reporter.restore()
    if payload is None:
        return 0, [], {}
    check_resumes(payload, kind)
    for name, module in modules.items():
        if isinstance(module, torch.optim.Optimizer):
            in_force = hyperparameters(module)  # built from the config this run was given
            module.load_state_dict(payload["state"][name])  # moments, step counts ... and the
            set_hyperparameters(module, in_force)  # saved lr/betas/decay, which must not win
        else:
            module.load_state_dict(payload["state"][name])
    return int(payload["epoch"]), list(payload["history"]), payload


def state_of(modules: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint's ``state`` holds: each module's and optimiser's state_dict by name."""
    return {name: module.state_dict() for name, module in modules.items()}
