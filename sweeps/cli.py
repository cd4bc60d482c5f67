"""The sweep scripts' command line: the flags every sweep has, and their parsing and validation
into one frozen ``Settings``.

Precedence: the flags given, then (with ``--resume``) the sweep's saved settings in its
``sweep.json``, then (with ``--smoke-test``) ``SMOKE``, then the script's defaults. Everything a
user can get wrong in the flags is a ``UsageError`` here, before anything starts.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from sweeps.checkpoint_pruner import KEEP_CHOICES
from sweeps.experiment import Folder
from sweeps.layout import SWEEP_FILE
from sweeps.record import read_sweep_file
from sweeps.settings import Settings, SweepSpec
from sweeps.wandb_hub import WANDB_MODES
from trainables.errors import OneLineParser, UsageError

# What --smoke-test changes (flags given explicitly still win): a quick look, not a result.
SMOKE = dict(
    subset=2000,
    num_samples=4,
    max_epochs=2,
    grace_period=1,
    reduction_factor=2,
    perturbation_interval=1,
    cpus_per_trial=1,
    max_concurrent=2,
)

SCHEDULERS = ("asha", "pbt")  # --scheduler

# Flags that may be given with --resume; everything else comes from the sweep's sweep.json.
# (--study-storage: the database's full URL again, since its password is written nowhere.)
RESUME_FLAGS = ("resume", "address", "num_cpus", "wandb_mode", "verbose", "study_storage")

_UNSET = object()


def build_parser(spec: SweepSpec) -> argparse.ArgumentParser:
    """The flags every sweep has. A script adds its own (e.g. --latent-dim) and then calls
    ``parse_settings``. Defaults shown are the script's; --smoke-test and --resume change them."""
    d = spec.defaults
    p = OneLineParser(
        prog=f"python {spec.script}",
        description=spec.description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a = p.add_argument_group("search").add_argument
    a("--space", default=next(iter(spec.spaces)), help=f"search space: {', '.join(spec.spaces)}")
    a(
        "--num-samples",
        type=int,
        metavar="N",
        default=d["num_samples"],
        help="trials to run (%(default)s)",
    )
    a(
        "--seed",
        type=int,
        metavar="N",
        default=0,
        help="seed of Optuna's TPE sampler; with --scheduler pbt, of the random initial "
        "population (%(default)s)",
    )
    a(
        "--lr-range",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="replace the bounds of the learning-rate axes (lr, lr_g, lr_d) of the space",
    )
    a(
        "--study-storage",
        metavar="URL",
        help="SQLAlchemy URL of the Optuna study (default sqlite:///<experiment>/optuna.db)",
    )
    a = p.add_argument_group("scheduler: ASHA or PBT (time unit: epochs)").add_argument
    a(
        "--scheduler",
        choices=SCHEDULERS,
        default="asha",
        help="asha (default): Optuna's TPE proposes trials, ASHA stops the poor ones early; "
        "pbt: Population Based Training, a random population whose poor trials clone good "
        "ones' checkpoints and perturb their hyperparameters (no Optuna; docs/sweeps.md)",
    )
    a(
        "--max-epochs",
        type=int,
        metavar="N",
        default=d["max_epochs"],
        help="epochs of a full trial (%(default)s)",
    )
    a(
        "--grace-period",
        type=int,
        metavar="N",
        default=d["grace_period"],
        help="first rung (%(default)s)",
    )
    a(
        "--reduction-factor",
        type=float,
        metavar="X",
        default=d["reduction_factor"],
        help="keep 1/RF of trials at each rung (%(default)s)",
    )
    a(
        "--asha-revise",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="judge a trial again at its passed rungs as more trials reach them (default: on); "
        "--no-asha-revise: Ray's ASHA, which decides once, when a trial reaches a rung",
    )
    a(
        "--perturbation-interval",
        type=int,
        metavar="N",
        default=d.get("perturbation_interval", 4),
        help="PBT: epochs between a trial's exploit/explore decisions (%(default)s)",
    )
    a(
        "--quantile-fraction",
        type=float,
        metavar="Q",
        default=0.25,
        help="PBT: the bottom Q of the trials clone checkpoints of the top Q (0 < Q <= 0.5; "
        "%(default)s)",
    )
    a = p.add_argument_group("resources").add_argument
    a(
        "--max-concurrent",
        type=int,
        metavar="N",
        default=d["max_concurrent"],
        help="trials running at once (%(default)s)",
    )
    a("--cpus-per-trial", type=float, metavar="X", default=1.0, help="CPUs per trial (%(default)s)")
    a(
        "--gpus-per-trial",
        type=float,
        metavar="X",
        default=None,
        help=f"GPUs per trial, fractions allowed (default {d['gpus_per_trial']} when the "
        "machine or cluster has GPUs, else 0)",
    )
    a(
        "--address",
        metavar="ADDR",
        help="join a running Ray cluster: auto, HOST:PORT or ray://HOST:PORT",
    )
    a(
        "--num-cpus",
        type=int,
        metavar="N",
        help="CPUs of the local Ray started when --address is not given",
    )
    a(
        "--max-failures",
        type=int,
        metavar="N",
        default=2,
        help="retries of a failed trial (%(default)s)",
    )
    a = p.add_argument_group("storage").add_argument
    a(
        "--storage-path",
        metavar="PATH",
        default="runs",
        help="local folder or s3:// / gs:// URI (%(default)s)",
    )
    a("--name", default=None, help=f"experiment name (default {spec.name})")
    a("--resume", metavar="DIR", help="continue the interrupted sweep in experiment folder DIR")
    a(
        "--keep-checkpoints",
        choices=KEEP_CHOICES,
        default="best",
        help="best (default): once a trial has ended, only the sweep's best trial keeps its "
        "checkpoints (the others keep their metrics; an errored trial its latest, for --resume); "
        "all: every trial keeps its best and latest checkpoint",
    )
    a = p.add_argument_group("data").add_argument
    a(
        "--data-dir",
        metavar="DIR",
        help="FashionMNIST folder (default: $LATENTSWEEP_DATA, Debian's package, ...)",
    )
    a(
        "--val-size",
        type=int,
        metavar="N",
        default=5000,
        help="validation images held out (%(default)s)",
    )
    a(
        "--data-seed",
        type=int,
        metavar="N",
        default=0,
        help="seed of the validation split (%(default)s)",
    )
    a("--subset", type=int, metavar="N", help="use only this many training images")
    a = p.add_argument_group("W&B").add_argument
    a("--wandb-project", metavar="NAME", default="latentsweep", help="W&B project (%(default)s)")
    a(
        "--wandb-mode",
        choices=WANDB_MODES,
        help="default: $WANDB_MODE, else online if an API key is configured, else offline",
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="Ray's own progress table and the trials' log lines instead of the compact view",
    )
    p.add_argument(
        "--smoke-test",
        action="store_true",
        help="tiny sweep for a quick look: "
        + ", ".join(f"{k.replace('_', '-')} {v}" for k, v in SMOKE.items()),
    )
    return p


def parse_settings(
    spec: SweepSpec,
    parser: argparse.ArgumentParser,
    argv: list[str] | None = None,
    resolve_extra: Callable[[dict[str, Any], bool], dict[str, Any]] | None = None,
) -> Settings:
    """Parse and check the flags into the sweep's one ``Settings``. ``resolve_extra(extra,
    resuming)`` checks and resolves the script's own flags (the classifier's encoder) and
    returns them as they are to be recorded. Raises UsageError."""
    defaults = vars(parser.parse_args([]))
    given_ns = argparse.Namespace(**dict.fromkeys(defaults, _UNSET))
    parser.parse_args(argv, namespace=given_ns)
    given = {k: v for k, v in vars(given_ns).items() if v is not _UNSET}

    values = dict(defaults)
    if given.get("resume"):
        unknown = sorted(set(given) - set(RESUME_FLAGS))
        if unknown:
            flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
            raise UsageError(
                f"{flags} cannot change when resuming (the sweep's settings are in its {SWEEP_FILE})",
                f"give only --resume and optionally {', '.join('--' + f.replace('_', '-') for f in RESUME_FLAGS[1:])}",
            )
        saved = read_sweep_file(spec, given["resume"])
        values.update({k: v for k, v in saved["args"].items() if k in values})
    elif given.get("smoke_test"):
        values.update(SMOKE)
        values["name"] = f"{spec.name}_smoke"
    values.update(given)
    values["name"] = values["name"] or spec.name
    if values["lr_range"] is not None:
        values["lr_range"] = tuple(values["lr_range"])
    validate(spec, _settings(values))  # before any path is opened

    if values["resume"]:  # the folder given is the experiment, wherever it was made
        exp = Folder(values["resume"])
        values["storage_path"], values["name"] = exp.parent_uri(), exp.name
    else:
        values["storage_path"] = Folder(values["storage_path"]).uri  # absolute, for sweep.json
    if resolve_extra is not None:
        extra = {k: v for k, v in values.items() if k not in Settings.flag_names()}
        values.update(resolve_extra(extra, bool(values["resume"])))
    return _settings(values)


def _settings(values: dict[str, Any]) -> Settings:
    common = Settings.flag_names()
    extra = {k: v for k, v in values.items() if k not in common}
    return Settings(**{k: values[k] for k in common}, extra=MappingProxyType(extra))


def validate(spec: SweepSpec, s: Settings) -> None:
    """Check flag values before anything starts; each problem names its fix."""

    def need(ok: bool, problem: str, fix: str) -> None:
        if not ok:
            raise UsageError(problem, fix)

    need(
        s.space in spec.spaces,
        f"unknown --space {s.space!r}",
        f"choose one of {', '.join(spec.spaces)}",
    )
    need(
        s.num_samples >= 1,
        f"--num-samples {s.num_samples} must be at least 1",
        "pass the number of trials to run, e.g. --num-samples 20",
    )
    need(
        s.max_epochs >= 1,
        f"--max-epochs {s.max_epochs} must be at least 1",
        "pass e.g. --max-epochs 20",
    )
    need(
        1 <= s.grace_period <= s.max_epochs,
        f"--grace-period {s.grace_period} must be between 1 and --max-epochs {s.max_epochs}",
        "lower --grace-period or raise --max-epochs",
    )
    need(
        s.reduction_factor > 1,
        f"--reduction-factor {s.reduction_factor:g} must be above 1",
        "pass e.g. --reduction-factor 3 (keep a third of the trials at each rung)",
    )
    need(
        s.max_concurrent >= 1,
        f"--max-concurrent {s.max_concurrent} must be at least 1",
        "pass e.g. --max-concurrent 4",
    )
    need(
        s.cpus_per_trial > 0,
        f"--cpus-per-trial {s.cpus_per_trial:g} must be positive",
        "pass e.g. --cpus-per-trial 1",
    )
    need(
        s.gpus_per_trial is None or s.gpus_per_trial >= 0,
        f"--gpus-per-trial {s.gpus_per_trial} is negative",
        "pass 0 for CPU trials or a GPU share such as 0.25",
    )
    need(
        s.gpus_per_trial is None or s.gpus_per_trial <= 1 or float(s.gpus_per_trial).is_integer(),
        f"--gpus-per-trial {s.gpus_per_trial}: above 1, Ray gives whole GPUs only",
        "pass a share up to 1 (e.g. 0.5) or a whole number of GPUs",
    )
    need(
        s.max_failures >= 0,
        f"--max-failures {s.max_failures} is negative",
        "pass 0 to never retry a failed trial",
    )
    need(
        s.num_cpus is None or s.num_cpus >= 1,
        f"--num-cpus {s.num_cpus} must be at least 1",
        "omit it to use every CPU of this machine",
    )
    need(
        1 <= s.val_size < 60000,
        f"--val-size {s.val_size} is not between 1 and 59999 (validation is what trials are "
        "selected on)",
        "pass the number of validation images held out of the 60,000, e.g. 5000",
    )
    need(
        s.subset is None or s.subset >= 1,
        f"--subset {s.subset} must be positive",
        "omit --subset to use every training image",
    )
    need(
        bool(s.name) and "/" not in s.name and s.name not in (".", ".."),
        f"--name {s.name!r} is not a folder name",
        "pass a plain name such as ae_sweep_v2",
    )
    if s.scheduler == "pbt":
        validate_pbt(spec, s, need)
    if s.lr_range is not None:
        low, high = s.lr_range
        need(
            low > 0 and high > 0,
            f"--lr-range {low:g} {high:g} has a bound that is not positive",
            "learning rates are sampled log-uniformly, so both bounds must be above 0",
        )
        need(
            low < high,
            f"--lr-range {low:g} {high:g} is reversed or empty",
            f"give the lower bound first: --lr-range {min(low, high):g} {max(low, high):g}",
        )


def validate_pbt(spec: SweepSpec, s: Settings, need: Callable[[bool, str, str], None]) -> None:
    """What --scheduler pbt needs: a perturbation space, a population, an interval it reaches."""
    need(
        s.space in spec.perturbations,
        f"--scheduler pbt: {spec.script} has no perturbation space for --space {s.space}",
        f"use --scheduler asha, or add PERTURBATIONS[{s.space!r}] beside SPACES in {spec.script}"
        if spec.perturbations
        else "use --scheduler asha (this sweep has no PERTURBATIONS)",
    )
    need(
        s.num_samples >= 2,
        f"--scheduler pbt with --num-samples {s.num_samples}: a population of one has no trial "
        "to clone",
        "pass --num-samples 4 or more",
    )
    need(
        1 <= s.perturbation_interval < s.max_epochs,
        f"--perturbation-interval {s.perturbation_interval} must be between 1 and --max-epochs "
        f"{s.max_epochs} - 1 (PBT decides every N epochs of a trial, so N >= --max-epochs "
        "never perturbs)",
        "lower --perturbation-interval or raise --max-epochs",
    )
    need(
        0 < s.quantile_fraction <= 0.5,
        f"--quantile-fraction {s.quantile_fraction:g} must be above 0 and at most 0.5",
        "pass e.g. --quantile-fraction 0.25 (the bottom quarter clones the top quarter)",
    )
    need(
        s.study_storage is None,
        "--study-storage with --scheduler pbt: PBT keeps no Optuna study",
        "omit --study-storage, or use --scheduler asha",
    )
