"""Typed configs: the fields every trainable has (``TrainConfig``), each declared with its help as
data (``param``), and ``from_dict``, which merges a Tune config or the command line's flags over the
defaults and refuses an unknown key or a wrong type by name (``ConfigError``).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from dataclasses import dataclass
from typing import Any

from trainables.errors import UsageError


class ConfigError(UsageError, ValueError):
    """A config key is unknown or has the wrong type or value; ``key`` names it when it is one
    key (so a command line can name the flag that sets it)."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


def param(default: Any, help: str) -> Any:
    """A config field with its command-line help kept as data (``field.metadata["help"]``):
    ``lr: float = param(1e-3, "learning rate per step")``. Defaults must be immutable."""
    return dataclasses.field(default=default, metadata={"help": help})


def help_of(f: dataclasses.Field) -> str:
    """The help text of a config field declared with ``param``; a field without one is a bug."""
    text = f.metadata.get("help", "")
    if not text.strip():
        raise TypeError(
            f"config field {f.name!r} has no help; declare it with param(default, help)"
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
    report_every: int = param(
        1,
        "report (with a checkpoint) every N epochs, and at the epochs of report_at and the last "
        "one: N times fewer results for a sweep's driver; a resume redoes up to N - 1 epochs",
    )
    report_at: str = param(
        "", "epochs always reported, comma-separated (a sweep sets ASHA's rungs here)"
    )

    OPTIMIZERS: typing.ClassVar[tuple[str, ...]] = ("adam", "adamw", "sgd")
    SCHEDULES: typing.ClassVar[tuple[str, ...]] = ("constant", "cosine", "step")
    # Keys a checkpoint fixes: its weights and optimiser state fit only the values it was
    # trained with, so a resume may not change them (subclasses add their model's shape).
    FIXED_ON_RESUME: typing.ClassVar[tuple[str, ...]] = ("optimizer",)

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
        check_field(self, self.epochs >= 1, "epochs", "must be at least 1")
        check_field(self, self.batch_size >= 1, "batch_size", "must be at least 1")
        check_field(self, self.lr > 0 and math.isfinite(self.lr), "lr", "must be a positive number")
        check_field(self, self.weight_decay >= 0, "weight_decay", "must be >= 0")
        check_field(
            self,
            self.optimizer in self.OPTIMIZERS,
            "optimizer",
            f"must be one of {self.OPTIMIZERS}",
        )
        check_field(
            self,
            self.lr_schedule in self.SCHEDULES,
            "lr_schedule",
            f"must be one of {self.SCHEDULES}",
        )
        check_field(
            self,
            self.val_size >= 1,
            "val_size",
            "must be at least 1 (validation is what a sweep selects on)",
        )
        check_field(
            self, self.subset is None or self.subset > 0, "subset", "must be positive or None"
        )
        check_field(self, self.report_every >= 1, "report_every", "must be at least 1")
        check_field(
            self,
            all(e.isdigit() for e in self._report_at_items()),
            "report_at",
            "must be epochs separated by commas, e.g. '1,3,9'",
        )

    def reports(self, epoch: int) -> bool:
        """Whether ``epoch`` is reported (and checkpointed): every ``report_every``-th, those of
        ``report_at`` and the last."""
        return (
            epoch % self.report_every == 0
            or epoch == self.epochs
            or str(epoch) in self._report_at_items()
        )

    def _report_at_items(self) -> list[str]:
        """``report_at`` split at its commas, blanks left out: what ``validate`` checks and
        ``reports`` looks up."""
        return [e.strip() for e in self.report_at.split(",") if e.strip()]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def check_field(cfg: TrainConfig, ok: bool, key: str, why: str) -> None:
    """For ``validate``: unless ``ok``, a ConfigError naming ``key``, its value and ``why``."""
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
