"""What the three trainables share: typed configs, devices, optimisers, self-describing checkpoints,
and the reporter that sends each epoch's metrics (and a checkpoint) to Ray Tune or to a folder.

Nothing here knows a model; ``trainables/{autoencoder,classifier,gan}.py`` stay thin on top of it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
import socket
import sys
import tempfile
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trainables.data import DeviceSplit, load_splits
from trainables.errors import UsageError

CHECKPOINT_FORMAT = "latentsweep-checkpoint"
CHECKPOINT_VERSION = 1
CHECKPOINT_FILE = "checkpoint.pt"


class ConfigError(UsageError, ValueError):
    """A config key is unknown or has the wrong type or value; ``key`` names it when it is one
    key (so a command line can name the flag that sets it)."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


class CheckpointError(UsageError, RuntimeError):
    """A checkpoint is missing, corrupt or of another model kind."""


class DivergedError(RuntimeError):
    """A training loss became NaN or infinite; the trial cannot continue. Retrying it from its
    last checkpoint would diverge again (epochs replay exactly on a CPU, nearly so on a GPU
    without ``deterministic``), so a sweep ends the trial and records why. ``epoch`` and
    ``metrics`` (the non-finite epoch's metrics) say where."""

    def __init__(self, message: str, epoch: int | None = None, metrics: dict | None = None):
        super().__init__(message)
        self.epoch = epoch
        self.metrics = dict(metrics or {})


# ---------------------------------------------------------------------------------------------
# Typed configs


def param(default: Any, help: str) -> Any:
    """A config field with its command-line help kept as data (``field.metadata["help"]``):
    ``lr: float = param(1e-3, "learning rate per step")``. Defaults must be immutable."""
    return dataclasses.field(default=default, metadata={"help": help})


def help_of(f: dataclasses.Field) -> str:
    """The help text of a config field declared with ``param``; a field without one is a bug."""
    text = f.metadata.get("help", "")
    if not text.strip():
        raise TypeError(
            f"config field {f.name!r} has no help; declare it with core.param(default, help)"
        )
    return text


@dataclass
class TrainConfig:
    """Fields every trainable has. Subclasses add their model's fields."""

    seed: int = param(
        0, "seeds weight init and each epoch's shuffle/noise (seed, epoch) -> resumable"
    )
    epochs: int = param(10, "epochs to train; ASHA may stop a trial earlier")
    batch_size: int = param(128, "images per optimiser step")
    lr: float = param(1e-3, "learning rate per step of batch_size images")
    weight_decay: float = param(
        0.0, "L2 penalty coefficient inside the optimiser (torch's weight_decay)"
    )
    optimizer: str = param("adam", "adam | adamw | sgd (sgd uses momentum below)")
    momentum: float = param(0.9, "SGD momentum; ignored by adam/adamw")
    lr_schedule: str = param(
        "constant", "constant | cosine (to 0 at `epochs`) | step (x0.1 at 50%, 75%)"
    )
    device: str = param(
        "auto", "auto (cuda if the trial has a GPU, else cpu) | cpu | cuda | cuda:N"
    )
    amp: bool = param(False, "bf16 autocast for forward passes on CUDA; ignored on CPU")
    deterministic: bool = param(
        False,
        "deterministic CUDA kernels (torch.use_deterministic_algorithms, cuDNN deterministic, no "
        "autotuning, CUBLAS_WORKSPACE_CONFIG): a resumed GPU run then replays bit-identically, "
        "at a speed cost (docs/performance.md); CPU runs replay exactly without it",
    )
    data_dir: str | None = param(
        None, "FashionMNIST folder; None -> $LATENTSWEEP_DATA, Debian, download"
    )
    val_size: int = param(
        5000, "validation images held out of the 60k training images (stratified)"
    )
    data_seed: int = param(0, "seed of the validation split (fixed across a sweep)")
    subset: int | None = param(
        None, "keep only this many training images (smoke tests); None = all"
    )

    OPTIMIZERS: typing.ClassVar[tuple[str, ...]] = ("adam", "adamw", "sgd")
    SCHEDULES: typing.ClassVar[tuple[str, ...]] = ("constant", "cosine", "step")

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None = None, **overrides: Any):
        """Defaults merged with ``values``; an unknown key or a wrong type raises ConfigError."""
        merged = dict(values or {}, **overrides)
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(merged) - names)
        if unknown:
            raise ConfigError(
                f"{cls.__name__}: unknown key(s) {unknown}; valid keys are {sorted(names)}"
            )
        kwargs = {k: _coerce(cls.__name__, k, v, hints[k]) for k, v in merged.items()}
        cfg = cls(**kwargs)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        _check(self, self.epochs >= 1, "epochs", "must be at least 1")
        _check(self, self.batch_size >= 1, "batch_size", "must be at least 1")
        _check(self, self.lr > 0 and math.isfinite(self.lr), "lr", "must be a positive number")
        _check(self, self.weight_decay >= 0, "weight_decay", "must be >= 0")
        _check(
            self,
            self.optimizer in self.OPTIMIZERS,
            "optimizer",
            f"must be one of {self.OPTIMIZERS}",
        )
        _check(
            self,
            self.lr_schedule in self.SCHEDULES,
            "lr_schedule",
            f"must be one of {self.SCHEDULES}",
        )
        _check(
            self,
            self.val_size >= 1,
            "val_size",
            "must be at least 1 (validation is what a sweep selects on)",
        )
        _check(self, self.subset is None or self.subset > 0, "subset", "must be positive or None")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check(cfg: TrainConfig, ok: bool, key: str, why: str) -> None:
    if not ok:
        raise ConfigError(f"{type(cfg).__name__}.{key}={getattr(cfg, key)!r} {why}", key=key)


def _coerce(owner: str, key: str, value: Any, hint: Any) -> Any:
    """Accept ``value`` for a field typed ``hint`` (numpy scalars from samplers included)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
    bad = ConfigError(
        f"{owner}.{key}={value!r} has type {type(value).__name__}, expected {getattr(hint, '__name__', hint)}",
        key=key,
    )
    if hint is bool:
        if isinstance(value, bool) or (hasattr(value, "dtype") and value.dtype == bool):
            return bool(value)
        raise bad
    if hint is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
        if isinstance(value, numbers.Real) and float(value).is_integer():
            return int(value)
        raise bad
    if hint is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return float(value)
        raise bad
    if hint is str:
        if isinstance(value, str):
            return value
        raise bad
    return value


# ---------------------------------------------------------------------------------------------
# Devices, optimisers, schedules, seeding


def ray_gpu_ids() -> list[str] | None:
    """The GPUs Ray gave this process when it is a Ray worker (a Tune trial); None outside one
    (plain Python, or the sweep's driver)."""
    ray = sys.modules.get("ray")  # a Ray worker has imported it; nothing else needs to
    if ray is None or not ray.is_initialized():
        return None
    context = ray.get_runtime_context()
    if context.worker.mode != ray.WORKER_MODE:
        return None
    return context.get_accelerator_ids().get("GPU", [])


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda if a GPU is visible (Ray sets CUDA_VISIBLE_DEVICES to the trial's GPUs),
    else CPU. A Ray trial given no GPU runs on the CPU even on a GPU node: current Ray leaves
    CUDA_VISIBLE_DEVICES alone then (ray-project/ray#54868), so torch would see every GPU."""
    if name == "auto":
        granted = ray_gpu_ids()
        use_gpu = torch.cuda.is_available() and (granted is None or len(granted) > 0)
        return torch.device("cuda" if use_gpu else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} but no CUDA GPU is visible; use device='auto' or 'cpu'")
    return device


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


CUBLAS_WORKSPACE = ":4096:8"  # what cuBLAS needs for deterministic matmuls (CUDA >= 10.2)


def set_determinism(cfg: TrainConfig) -> None:
    """This process's kernels as ``cfg.deterministic`` says: with it, only deterministic
    algorithms (``torch.use_deterministic_algorithms``: an op that has none raises a
    RuntimeError naming it), cuDNN deterministic with autotuning off, and cuBLAS's workspace
    setting (``CUBLAS_WORKSPACE_CONFIG``, read when the process first uses cuBLAS: call this
    before any CUDA work; one given in the environment is kept). Without it, both flags are
    turned off again (torch's defaults), so a Ray worker reused for another trial follows that
    trial's config (keep one value for a whole sweep: cuBLAS reads its setting once per
    process)."""
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(cfg.deterministic)
    torch.backends.cudnn.deterministic = cfg.deterministic


def autocast(cfg: TrainConfig, device: torch.device):
    """bf16 autocast on CUDA when ``cfg.amp``; a no-op context otherwise."""
    return torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=cfg.amp and device.type == "cuda"
    )


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


def seed_epoch(cfg: TrainConfig, epoch: int, device: torch.device) -> torch.Generator:
    """Seed everything random in ``epoch`` from (seed, epoch); returns the shuffle generator.
    Epoch 0 seeds initialisation. A run resumed at epoch k replays epochs k+1.. exactly on a
    CPU, and on CUDA with ``cfg.deterministic`` (``set_determinism``); on CUDA without it the
    kernels' sums run in varying order and a replay differs in the last bits."""
    s = cfg.seed * 1_000_003 + epoch
    torch.manual_seed(s)
    gen = torch.Generator(device=device)
    gen.manual_seed(s)
    return gen


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
    for key, value in metrics.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise DivergedError(
                f"{key} became {value} at epoch {epoch}; the trial diverged "
                "(lower the learning rate or change the optimiser)",
                epoch=epoch,
                metrics=metrics,
            )


# ---------------------------------------------------------------------------------------------
# Checkpoints


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


# ---------------------------------------------------------------------------------------------
# Lineage: which trial trained which epochs of a checkpoint's weights
#
# A checkpoint's ``lineage`` is a list of segments {"trial_id", "first_epoch", "last_epoch"}, in
# epoch order. A trial that only ever restores its own checkpoints has one segment; one that
# Population Based Training restored from another trial's checkpoint (an exploit) inherits that
# trial's segments and adds its own. Its ``history`` then holds the donor's epochs up to the
# clone: the lineage says which epochs of it were not this trial's.


def extend_lineage(lineage: list[dict[str, Any]], trial_id: str | None, epoch: int) -> list:
    """``lineage`` with ``epoch`` trained by ``trial_id`` (the restored checkpoint's lineage ends
    at ``epoch - 1``)."""
    out = [dict(segment) for segment in lineage]
    if out and out[-1]["trial_id"] == trial_id:
        out[-1]["last_epoch"] = epoch
    else:
        out.append({"trial_id": trial_id, "first_epoch": epoch, "last_epoch": epoch})
    return out


def clone_of(lineage: list[dict[str, Any]]) -> dict[str, Any]:
    """The latest exploit in ``lineage`` (whose last segment is the trial itself):
    ``cloned_from`` (the trial whose checkpoint it restored) and ``cloned_epoch`` (that
    checkpoint's epoch); {} for weights one trial trained from the start."""
    if len(lineage) < 2:
        return {}
    return {"cloned_from": lineage[-2]["trial_id"], "cloned_epoch": lineage[-1]["first_epoch"] - 1}


# ---------------------------------------------------------------------------------------------
# Reporters: where each epoch's metrics and checkpoint go


class TuneReporter:
    """Inside a Ray Tune trial: restore from Tune's checkpoint, report through ``tune.report``.
    Each checkpoint also records where it was trained (``trained_on``: the Ray node, host, GPU
    ids, ``CUDA_VISIBLE_DEVICES`` and torch device), which Tune's own result fields (one IP per
    machine) cannot tell, and which trial trained which of its epochs (``lineage``). After
    Population Based Training has restored this trial from another trial's checkpoint, every
    result also says so (``cloned_from``, ``cloned_epoch``: ``clone_of``)."""

    def __init__(self) -> None:
        self.lineage: list[dict[str, Any]] = []

    def restore(self) -> dict[str, Any] | None:
        from ray import tune

        ckpt = tune.get_checkpoint()
        if ckpt is None:
            return None
        with ckpt.as_directory() as d:
            payload = load_checkpoint(d)
        self.lineage = list(payload.get("lineage", []))
        return payload

    def report(self, metrics: dict[str, Any], payload: dict[str, Any]) -> None:
        import ray
        from ray import tune

        trial_id = tune.get_context().get_trial_id()
        self.lineage = extend_lineage(self.lineage, trial_id, int(payload["epoch"]))
        payload = {
            **payload,
            "lineage": self.lineage,
            "trained_on": {
                "node_id": ray.get_runtime_context().get_node_id(),
                "hostname": socket.gethostname(),
                "gpu_ids": ray_gpu_ids() or [],
                # what Ray set for this worker: the granted GPUs' ids (None with no GPU granted)
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                "device": str(resolve_device(payload["config"].get("device", "auto"))),
            },
        }
        with tempfile.TemporaryDirectory(prefix="latentsweep-ckpt-") as d:
            save_checkpoint(payload, d)
            tune.report(
                {**metrics, **clone_of(self.lineage)},
                checkpoint=tune.Checkpoint.from_directory(d),
            )


class FolderReporter:
    """Outside Ray: keep ``out/checkpoint.pt`` (latest) and ``out/metrics.jsonl`` (all epochs)."""

    def __init__(self, out: str | os.PathLike, resume: bool = False, verbose: bool = True):
        self.out = Path(out)
        self.resume = resume
        self.verbose = verbose
        self.lineage: list[dict[str, Any]] = []  # epochs run here have no trial id

    def restore(self) -> dict[str, Any] | None:
        if not self.resume:
            return None
        if not (self.out / CHECKPOINT_FILE).is_file():
            raise CheckpointError(
                f"--resume: {self.out / CHECKPOINT_FILE} does not exist; run without --resume first"
            )
        payload = load_checkpoint(self.out)
        self.lineage = list(payload.get("lineage", []))
        return payload

    def report(self, metrics: dict[str, Any], payload: dict[str, Any]) -> None:
        self.lineage = extend_lineage(self.lineage, None, int(payload["epoch"]))
        payload = {**payload, "lineage": self.lineage}
        save_checkpoint(payload, self.out)
        # Rewrite from the checkpoint's history so the file matches it exactly after a resume.
        tmp = self.out / ".metrics.jsonl.tmp"
        tmp.write_text("".join(json.dumps(m) + "\n" for m in payload["history"]))
        os.replace(tmp, self.out / "metrics.jsonl")
        if self.verbose:
            shown = " ".join(
                f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()
            )
            print(shown, flush=True)


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
    if payload["kind"] != kind:
        raise CheckpointError(
            f"{payload['path']}: checkpoint of kind '{payload['kind']}' cannot resume a '{kind}' run"
        )
    for name, module in modules.items():
        if isinstance(module, torch.optim.Optimizer):
            in_force = hyperparameters(module)  # built from the config this run was given
            module.load_state_dict(payload["state"][name])  # moments, step counts ... and the
            set_hyperparameters(module, in_force)  # saved lr/betas/decay, which must not win
        else:
            module.load_state_dict(payload["state"][name])
    return int(payload["epoch"]), list(payload["history"]), payload


def state_of(modules: dict[str, Any]) -> dict[str, Any]:
    return {name: module.state_dict() for name, module in modules.items()}
