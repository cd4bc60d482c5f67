"""What a sweep is told: the script's declaration (``SweepSpec``) and the parsed command line
(``Settings``), both frozen.

``sweeps/cli.py`` builds one ``Settings`` from the flags (and, with ``--resume``, from the
sweep's ``sweep.json``), validates it, and hands it on; every later step only reads it. What the
machine decides (GPUs per trial when none were asked for) is resolved once, into
``sweeps.ray_cluster.TrialResources``, not written back here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class SweepSpec:
    """One model's sweep: everything that differs between the three scripts."""

    kind: str  # trainables module: autoencoder | classifier | gan
    name: str  # script name and default experiment name, e.g. ae_sweep
    metric: str  # reported each epoch; ASHA and Optuna optimise it
    mode: str  # min | max
    spaces: dict[str, dict[str, Any]]  # named search spaces; the first is the default
    columns: tuple[str, ...]  # metric columns of the progress table
    # num_samples, max_epochs, grace_period, reduction_factor, max_concurrent, gpus_per_trial
    defaults: dict[str, Any]
    description: str = ""  # the script's docstring (--help)
    # per space: what Population Based Training may change mid-trial (--scheduler pbt); a space
    # without an entry cannot be run with PBT
    perturbations: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def script(self) -> str:
        return f"sweeps/{self.name}.py"


@dataclass(frozen=True)
class Settings:
    """The sweep's flags after parsing and validation, in the order ``--help`` shows them.

    Paths are resolved: ``storage_path`` is an absolute URI, and with ``--resume`` it and
    ``name`` are the resumed folder's. ``extra`` holds the flags a script adds itself
    (``--latent-dim``, ``--encoder-checkpoint``), read-only."""

    # search
    space: str
    num_samples: int
    seed: int  # Optuna TPE's seed; with --scheduler pbt, the random initial population's
    lr_range: tuple[float, float] | None  # replaces the bounds of the space's lr axes
    study_storage: str | None  # SQLAlchemy URL; None: <experiment>/optuna.db
    # the scheduler (time unit: epochs)
    scheduler: str  # asha | pbt
    max_epochs: int
    grace_period: int  # ASHA
    reduction_factor: float  # ASHA
    asha_revise: bool  # ASHA
    perturbation_interval: int  # PBT: epochs between a trial's exploit/explore decisions
    quantile_fraction: float  # PBT: the bottom fraction clones the top fraction
    # resources
    max_concurrent: int
    cpus_per_trial: float
    gpus_per_trial: float | None  # None: the script's default where GPUs exist, else 0
    address: str | None  # join a running Ray cluster
    num_cpus: int | None  # CPUs of the local Ray
    max_failures: int
    # storage
    storage_path: str
    name: str
    resume: str | None
    keep_checkpoints: str  # best: ended trials but the best keep no checkpoint; all: each keeps
    # data
    data_dir: str | None
    val_size: int
    data_seed: int
    subset: int | None
    # W&B
    wandb_project: str
    wandb_mode: str | None  # as given; sweeps.wandb_hub.resolve_wandb_mode decides
    smoke_test: bool
    verbose: bool  # Ray's own progress table and the trials' logs, not the compact view
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def flag_names(cls) -> tuple[str, ...]:
        """The common flags' names (argparse dests), without ``extra``."""
        return tuple(f.name for f in fields(cls) if f.name != "extra")

    @property
    def experiment_uri(self) -> str:
        """``<storage_path>/<name>`` (query parameters such as endpoint_override kept)."""
        base, sep, query = self.storage_path.partition("?")
        return f"{base.rstrip('/')}/{self.name}{sep}{query}"

    def as_args(self) -> dict[str, Any]:
        """The flags as one flat JSON-able dict: ``args`` in sweep.json, which --resume reads."""
        values = {name: getattr(self, name) for name in self.flag_names()}
        if values["lr_range"] is not None:
            values["lr_range"] = list(values["lr_range"])
        return {**values, **self.extra}
