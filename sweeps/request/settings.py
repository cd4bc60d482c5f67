"""What a sweep is told: the script's declaration (``SweepSpec``) and the parsed command line
(``Settings``), both frozen.

Each sweep flag is declared once, on its ``Settings`` field (``flag(...)``: group, help, default,
metavar, bound, what ``--resume`` may do with it); ``sweeps/request/cli.py`` generates the parser, the
bound checks and the resume rule from that declaration, builds one ``Settings`` from the flags
(and, with ``--resume``, from the sweep's ``sweep.json``), validates it, and hands it on; every
later step only reads it. What the machine decides (GPUs per trial when none were asked for) is
resolved once, into ``sweeps.cluster.ray_cluster.TrialResources``, not written back here.
"""

from __future__ import annotations

import math
import typing
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
    # named configurations --warm-start tries first (e.g. the report's best), as trial-config
    # values; an axis of the space a configuration leaves out takes the trainable's default
    warm_starts: dict[str, dict[str, Any]] = field(default_factory=dict)
    # trial-config values a --smoke-test sweep fixes, searched or not: the budget that shows
    # learning in a minute (a small batch gives the few images many steps)
    smoke_config: dict[str, Any] = field(default_factory=dict)
    # what a trial reports each epoch besides ``columns`` that --objectives may weigh against
    # ``metric``: the model's size, its epoch's seconds
    costs: tuple[str, ...] = ("epoch_seconds",)

    @property
    def script(self) -> str:
        return f"sweeps/{self.name}.py"

    @property
    def smoke_warm_start(self) -> str | None:
        """The configuration --smoke-test tries first: the first of ``warm_starts``."""
        return next(iter(self.warm_starts), None)

    @property
    def flag_defaults(self) -> dict[str, Any]:
        """The defaults the script gives its flags: its first space, and ``defaults``."""
        return {"space": next(iter(self.spaces)), **self.defaults}


@dataclass(frozen=True)
class Bound:
    """A number flag's limits, and how its error says so (``--max-epochs 0 must be at least 1``).
    Write it with ``at_least``, ``above`` or ``between``."""

    low: float
    high: float = math.inf
    strict: bool = False  # low itself is out
    why: str = ""  # said after the problem, in parentheses
    shown: str = "g"  # format of a float value in the problem; an int is shown as it is

    def holds(self, value: float) -> bool:
        return (value > self.low if self.strict else value >= self.low) and value <= self.high

    def problem(self, flag: str, value: float) -> str:
        shown = format(value, self.shown) if isinstance(value, float) else str(value)
        if self.high < math.inf:
            says = f"is not between {self.low:g} and {self.high:g}"
        elif self.strict:
            says = "must be positive" if self.low == 0 else f"must be above {self.low:g}"
        else:
            says = "is negative" if self.low == 0 else f"must be at least {self.low:g}"
        return f"{flag} {shown} {says}" + (f" ({self.why})" if self.why else "")


def at_least(low: float, shown: str = "g") -> Bound:
    return Bound(low, shown=shown)


def above(low: float) -> Bound:
    return Bound(low, strict=True)


def between(low: float, high: float, why: str = "") -> Bound:
    return Bound(low, high, why=why)


# What --resume does with a flag given again; a flag with neither comes from sweep.json.
MAY_CHANGE = "may change"  # where and how the sweep runs, not what it computes
GIVEN_AGAIN = "given again"  # saved incompletely (a database URL's password is written nowhere)


@dataclass(frozen=True)
class Flag:
    """One sweep flag, declared on its ``Settings`` field with ``flag``; ``sweeps/request/cli.py`` makes
    the parser, the bound checks and ``RESUME_FLAGS`` from it.

    Its type is the field's annotation (int, float, str, bool, ``X | None``, and
    ``tuple[float, float]`` for two values); a bool that defaults to True also gets
    ``--no-<name>``. Its choices are listed by the module that acts on it (``cli.CHOICES``),
    since this module sits below those."""

    group: str | None  # its --help section; None: the first, beside -h
    # argparse help: %(default)s is the default; {spaces}, {name}, {smoke} and the keys of
    # SweepSpec.defaults are filled in from the script
    help: str
    default: Any = None  # with from_script: used where the script gives none
    from_script: bool = False  # the default is the script's (SweepSpec.flag_defaults)
    metavar: str | tuple[str, ...] | None = None
    bound: Bound | None = None  # a number's limits (None is not checked)
    fix: str = ""  # what ends the bound's error
    on_resume: str | None = None  # MAY_CHANGE or GIVEN_AGAIN: --resume accepts it
    shown_last: bool = False  # after the other flags of its group in --help


def flag(group: str | None, help: str, **declared: Any) -> Any:
    """A ``Settings`` field that is the flag ``--<name>``: ``Flag(group, help, **declared)``
    kept in the field's metadata. The field has no default: a ``Settings`` names every value."""
    return field(metadata={"flag": Flag(group, help, **declared)})


ASHA_OR_PBT = "scheduler: ASHA or PBT (time unit: epochs)"  # a --help section


@dataclass(frozen=True)
class Settings:
    """The sweep's flags after parsing and validation, in the order ``--help`` shows them (but
    ``--smoke-test``, shown last). Each field declares its flag (``flag``).

    Paths are resolved: ``storage_path`` is an absolute URI, and with ``--resume`` it and
    ``name`` are the resumed folder's. ``extra`` holds the flags a script adds itself
    (``--latent-dim``, ``--encoder-checkpoint``), read-only."""

    space: str = flag("search", "search space: {spaces}", from_script=True)
    num_samples: int = flag(
        "search",
        "trials to run (%(default)s); with --resume, more than the sweep had grows it (ASHA)",
        from_script=True,
        metavar="N",
        bound=at_least(1),
        fix="pass the number of trials to run, e.g. --num-samples 20",
        on_resume=MAY_CHANGE,
    )
    time_budget: float | None = flag(
        "search",
        "end the sweep after this many seconds (Ray Tune's time_budget_s): no new trial starts "
        "and running trials stop, their epochs kept; a resumed sweep gets its budget anew",
        metavar="SECONDS",
        bound=above(0),
        fix="pass the sweep's wall-clock budget in seconds, e.g. --time-budget 600",
    )
    objectives: str | None = flag(
        "search",
        "optimise several metrics at once, METRIC:MODE,... starting with the sweep's own "
        "(e.g. val_mse:min,latent_dim:min): Optuna's multi-objective sampler, every trial's "
        "values in the study, best.json's Pareto front with test metrics; --scheduler mo-asha "
        "stops trials by non-dominated sorting, asha by the first metric alone",
        metavar="LIST",
    )
    seed: int = flag(
        "search",
        "seed of Optuna's TPE sampler; with --scheduler pbt, of the random initial population "
        "(%(default)s)",
        default=0,
        metavar="N",
    )
    searcher: str = flag(
        "search",
        "the Optuna sampler that proposes trials: tpe (default: Optuna's TPE, multivariate "
        "with a constant liar), tpe-independent (one dimension at a time), tpe-5 (models "
        "after 5 random trials, not 10), random",
        default="tpe",
    )
    warm_start: str | None = flag(
        "search",
        "try this named configuration as the first trial: {warm_starts} (Ray's "
        "points_to_evaluate; axes it leaves out take the trainable's defaults)",
        metavar="NAME",
    )
    warm_start_from: str | None = flag(
        "search",
        "give the searcher an earlier sweep's finished trials before the first new one (the "
        "same model, metric and space; Optuna's add_trials), so it starts from what that sweep "
        "learned",
        metavar="DIR",
    )
    lr_range: tuple[float, float] | None = flag(
        "search",
        "replace the bounds of the learning-rate axes (lr, lr_g, lr_d) of the space",
        metavar=("LOW", "HIGH"),
    )
    study_storage: str | None = flag(  # None: <experiment>/optuna.journal
        "search",
        "where the Optuna study is: a SQLAlchemy URL (postgresql://..., sqlite:///path.db) or "
        "Optuna's journal file (journal:///path); default: the journal "
        "<experiment>/optuna.journal",
        metavar="URL",
        on_resume=GIVEN_AGAIN,
    )
    scheduler: str = flag(
        ASHA_OR_PBT,
        "asha (default): Optuna's TPE proposes trials, ASHA stops the poor ones early; "
        "pbt: Population Based Training, a random population whose poor trials clone good "
        "ones' checkpoints and perturb their hyperparameters (no Optuna; docs/sweeps.md); "
        "pb2: PBT whose new values a GP bandit picks within the continuous axes' bounds",
        default="asha",
    )
    max_epochs: int = flag(
        ASHA_OR_PBT,
        "epochs of a full trial (%(default)s)",
        from_script=True,
        metavar="N",
        bound=at_least(1),
        fix="pass e.g. --max-epochs 20",
    )
    grace_period: int = flag(  # ASHA
        ASHA_OR_PBT, "first rung (%(default)s)", from_script=True, metavar="N"
    )
    reduction_factor: float = flag(  # ASHA
        ASHA_OR_PBT,
        "keep 1/RF of trials at each rung (%(default)s)",
        from_script=True,
        metavar="X",
        bound=above(1),
        fix="pass e.g. --reduction-factor 3 (keep a third of the trials at each rung)",
    )
    asha_revise: bool = flag(
        ASHA_OR_PBT,
        "judge a trial again at its passed rungs as more trials reach them (default: on); "
        "--no-asha-revise: Ray's ASHA, which decides once, when a trial reaches a rung",
        default=True,
    )
    report_every: int = flag(
        ASHA_OR_PBT,
        "trials report (and checkpoint) every N epochs, ASHA's rungs and the last epoch always "
        "(%(default)s): N times fewer results for the driver, for short epochs on many GPUs "
        "(docs/performance.md); a resumed trial redoes up to N - 1 epochs",
        default=1,
        metavar="N",
        bound=at_least(1),
        fix="pass e.g. --report-every 3",
    )
    perturbation_interval: int = flag(
        ASHA_OR_PBT,
        "PBT: epochs between a trial's exploit/explore decisions (%(default)s)",
        default=4,
        from_script=True,
        metavar="N",
    )
    quantile_fraction: float = flag(
        ASHA_OR_PBT,
        "PBT: the bottom Q of the trials clone checkpoints of the top Q (0 < Q <= 0.5; "
        "%(default)s)",
        default=0.25,
        metavar="Q",
    )
    synch: bool = flag(
        ASHA_OR_PBT,
        "PBT: decide for all trials at once, each waiting at the end of its interval until the "
        "others reach it (Ray's synch=True); default: each trial decided on its own as it "
        "reaches it",
        default=False,
    )
    max_concurrent: int = flag(
        "resources",
        "trials running at once (%(default)s)",
        from_script=True,
        metavar="N",
        bound=at_least(1),
        fix="pass e.g. --max-concurrent 4",
    )
    cpus_per_trial: float = flag(
        "resources",
        "CPUs per trial (%(default)s)",
        default=1.0,
        metavar="X",
        bound=above(0),
        fix="pass e.g. --cpus-per-trial 1",
    )
    gpus_per_trial: float | None = flag(  # None: the script's default where GPUs exist, else 0
        "resources",
        "GPUs per trial, fractions allowed (default {gpus_per_trial} when the machine or "
        "cluster has GPUs, else 0)",
        metavar="X",
        bound=at_least(0, shown=""),  # the value as parsed: "-1.0 is negative"
        fix="pass 0 for CPU trials or a GPU share such as 0.25",
    )
    address: str | None = flag(
        "resources",
        "join a running Ray cluster: auto, HOST:PORT or ray://HOST:PORT",
        metavar="ADDR",
        on_resume=MAY_CHANGE,
    )
    num_cpus: int | None = flag(
        "resources",
        "CPUs of the local Ray started when --address is not given",
        metavar="N",
        bound=at_least(1),
        fix="omit it to use every CPU of this machine",
        on_resume=MAY_CHANGE,
    )
    max_failures: int = flag(
        "resources",
        "retries of a failed trial (%(default)s)",
        default=2,
        metavar="N",
        bound=at_least(0),
        fix="pass 0 to never retry a failed trial",
    )
    storage_path: str = flag(
        "storage", "local folder or s3:// / gs:// URI (%(default)s)", default="runs", metavar="PATH"
    )
    name: str = flag("storage", "experiment name (default {name})")
    resume: str | None = flag(
        "storage", "continue the interrupted sweep in experiment folder DIR", metavar="DIR"
    )
    keep_checkpoints: str = flag(
        "storage",
        "best (default): once a trial has ended, only the sweep's best trial keeps its "
        "checkpoints (the others keep their metrics; an errored trial its latest, for --resume); "
        "all: every trial keeps its best and latest checkpoint",
        default="best",
    )
    data_dir: str | None = flag(
        "data",
        "FashionMNIST folder (default: $LATENTSWEEP_DATA, Debian's package, ...)",
        metavar="DIR",
    )
    val_size: int = flag(
        "data",
        "validation images held out (%(default)s)",
        default=5000,
        metavar="N",
        bound=between(1, 59999, why="validation is what trials are selected on"),
        fix="pass the number of validation images held out of the 60,000, e.g. 5000",
    )
    data_seed: int = flag(
        "data", "seed of the validation split (%(default)s)", default=0, metavar="N"
    )
    subset: int | None = flag(
        "data",
        "use only this many training images",
        metavar="N",
        bound=above(0),
        fix="omit --subset to use every training image",
    )
    wandb_project: str = flag(
        "W&B", "W&B project (%(default)s)", default="latentsweep", metavar="NAME"
    )
    wandb_entity: str | None = flag(
        "W&B",
        "W&B entity (team or user) of the runs; default: $WANDB_ENTITY, else your default entity",
        metavar="NAME",
    )
    wandb_log_checkpoint: str = flag(
        "W&B",
        "none (default) | best: upload the best trial's checkpoint as a W&B model artifact of "
        "its run once the sweep ends",
        default="none",
    )
    wandb_mode: str | None = flag(  # as given; sweeps.fit.wandb_hub.resolve_wandb_mode decides
        "W&B",
        "default: $WANDB_MODE, else online if an API key is configured, else offline",
        on_resume=MAY_CHANGE,
    )
    tensorboard: bool = flag(
        "W&B",
        "also write Tune's TensorBoard event files in each trial folder (off: W&B, result.json "
        "and progress.csv hold the same values, and at 1,000 trials the writer took a tenth of "
        "the driver's time; docs/performance.md)",
    )
    smoke_test: bool = flag(None, "tiny sweep for a quick look: {smoke}", shown_last=True)
    verbose: bool = flag(
        None,
        "Ray's own progress table and the trials' log lines instead of the compact view",
        on_resume=MAY_CHANGE,
    )
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def flag_names(cls) -> tuple[str, ...]:
        """The common flags' names (argparse dests), without ``extra``."""
        return tuple(f.name for f in fields(cls) if f.name != "extra")

    @classmethod
    def flags(cls) -> dict[str, tuple[Flag, Any]]:
        """Each flag's name -> its declaration and its type (the field's annotation)."""
        hints = typing.get_type_hints(cls)
        return {
            f.name: (f.metadata["flag"], hints[f.name]) for f in fields(cls) if "flag" in f.metadata
        }

    @property
    def objective_pairs(self) -> tuple[tuple[str, str], ...]:
        """--objectives as (metric, mode) pairs; () for a one-metric sweep. ``cli.validate``
        has checked the form."""
        if not self.objectives:
            return ()
        return tuple(tuple(part.strip().rsplit(":", 1)) for part in self.objectives.split(","))  # type: ignore[return-value]

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
