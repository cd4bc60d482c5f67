"""The sweep scripts' command line: the flags every sweep has, and their parsing and validation
into one frozen ``Settings``.

Each flag is declared once, on its ``Settings`` field (``sweeps.request.settings.flag``); the parser,
the bound checks and what ``--resume`` accepts (``RESUME_FLAGS``) are generated from it. Only
the checks across flags, or against the script, are written out (``validate``).

Precedence: the flags given, then (with ``--resume``) the sweep's saved settings in its
``sweep.json``, then (with ``--smoke-test``) ``SMOKE``, then the script's defaults. Everything a
user can get wrong in the flags is a ``UsageError`` here, before anything starts.
"""

from __future__ import annotations

import argparse
import typing
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from sweeps.fit.checkpoint_pruner import KEEP_CHOICES
from sweeps.fit.wandb_hub import WANDB_CHECKPOINTS, WANDB_MODES
from sweeps.folder import outcome
from sweeps.folder.layout import SWEEP_FILE
from sweeps.folder.record import read_sweep_file
from sweeps.folder.storage import Folder
from sweeps.request.settings import GIVEN_AGAIN, MAY_CHANGE, Flag, Settings, SweepSpec
from sweeps.search.searcher import SAMPLERS
from sweeps.search.strategies import STRATEGIES
from trainables.errors import OneLineParser, UsageError

# What --smoke-test changes (flags given explicitly still win): a quick look, not a result.
SMOKE = dict(
    subset=8000,
    num_samples=4,
    max_epochs=2,
    grace_period=1,
    reduction_factor=2,
    perturbation_interval=1,
    cpus_per_trial=1,
    max_concurrent=2,
)
# and, unless --warm-start is given, the first trial is the script's first WARM_STARTS
# configuration where the space holds it (sweeps/request/warm_start.py), with the script's
# SweepSpec.smoke_config (its budget: a small batch gives the few images many steps)


# The flags with a fixed set of values, each set owned by the module that acts on it.
CHOICES = MappingProxyType(
    {
        "scheduler": tuple(STRATEGIES),
        "searcher": tuple(SAMPLERS),
        "keep_checkpoints": KEEP_CHOICES,
        "wandb_mode": WANDB_MODES,
        "wandb_log_checkpoint": WANDB_CHECKPOINTS,
    }
)

# Flags that may be given with --resume (declared on_resume: may change, then given again);
# everything else comes from the sweep's sweep.json.
RESUME_FLAGS = (
    "resume",
    *(name for name, (f, _) in Settings.flags().items() if f.on_resume == MAY_CHANGE),
    *(name for name, (f, _) in Settings.flags().items() if f.on_resume == GIVEN_AGAIN),
)

_UNSET = object()


def _dashed(name: str) -> str:
    return "--" + name.replace("_", "-")


def build_parser(spec: SweepSpec) -> argparse.ArgumentParser:
    """The flags every sweep has, generated from ``Settings``. A script adds its own (e.g.
    --latent-dim) and then calls ``parse_settings``. Defaults shown are the script's;
    --smoke-test and --resume change them."""
    parser = OneLineParser(
        prog=f"python {spec.script}",
        description=spec.description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    context = {
        **spec.defaults,
        "spaces": ", ".join(spec.spaces),
        "warm_starts": ", ".join(spec.warm_starts) or "none in this script",
        "name": spec.name,
        "smoke": ", ".join(
            f"{k.replace('_', '-')} {v}"
            for k, v in {**SMOKE, "warm_start": spec.smoke_warm_start}.items()
            if v is not None
        )
        + "".join(f"; every trial's {k} {v}" for k, v in spec.smoke_config.items()),
    }
    groups: dict[str | None, Any] = {None: parser}
    flags = sorted(Settings.flags().items(), key=lambda item: item[1][0].shown_last)
    for name, (f, hint) in flags:
        if f.group not in groups:
            groups[f.group] = parser.add_argument_group(f.group)
        kwargs = _argument(spec, name, f, hint)
        groups[f.group].add_argument(_dashed(name), help=f.help.format(**context), **kwargs)
    return parser


def _argument(spec: SweepSpec, name: str, f: Flag, hint: Any) -> dict[str, Any]:
    """argparse's arguments for one declared flag, but its help."""
    default = f.default
    if f.from_script:
        script = spec.flag_defaults
        default = script[name] if default is None else script.get(name, default)
    if hint is bool:
        action = argparse.BooleanOptionalAction if default else "store_true"
        return dict(action=action, default=bool(default))
    kwargs: dict[str, Any] = dict(default=default)
    kind = next((a for a in typing.get_args(hint) if a is not type(None)), hint)  # X | None: X
    if typing.get_origin(kind) is tuple:  # e.g. tuple[float, float]: two values
        kwargs["nargs"] = len(typing.get_args(kind))
        kind = typing.get_args(kind)[0]
    if kind is not str:
        kwargs["type"] = kind
    if f.metavar is not None:
        kwargs["metavar"] = f.metavar
    if name in CHOICES:
        kwargs["choices"] = CHOICES[name]
    return kwargs


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
            flags = ", ".join(map(_dashed, unknown))
            raise UsageError(
                f"{flags} cannot change when resuming (the sweep's settings are in its {SWEEP_FILE})",
                f"give only --resume and optionally {', '.join(map(_dashed, RESUME_FLAGS[1:]))}",
            )
        saved = read_sweep_file(spec, given["resume"])
        check_growth(saved, given)
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


def check_growth(saved: dict[str, Any], given: dict[str, Any]) -> None:
    """--num-samples with --resume may grow a sweep that ASHA runs, never shrink one."""
    had, wanted = saved["args"].get("num_samples"), given.get("num_samples")
    if wanted is None or had is None or wanted == had:
        return
    where = f"--resume {given['resume']}"
    if wanted < had:
        raise UsageError(
            f"--num-samples {wanted} with {where}: the sweep has {had} trials (its {SWEEP_FILE}); "
            "a sweep can grow, not shrink",
            f"omit --num-samples, or pass more than {had} to add trials",
        )
    if not STRATEGIES[saved["args"].get("scheduler", "asha")].uses_study:
        raise UsageError(
            f"--num-samples {wanted} with {where}: a PBT population cannot grow (its trials "
            "exploit one another from the start)",
            "omit --num-samples to resume it, or start a new sweep with --num-samples",
        )


def check_objectives(spec: SweepSpec, given: str, need) -> None:
    """--objectives: METRIC:MODE pairs, two or more, distinct, the sweep's metric first."""
    example = f"{spec.metric}:{spec.mode},<cost metric>:min"
    parts = [part.strip() for part in given.split(",")]
    for part in parts:
        metric, _, mode = part.rpartition(":")
        need(
            bool(metric) and mode in outcome.MODES,
            f"--objectives {given!r}: {part!r} is not METRIC:MODE with MODE min or max",
            f"pass e.g. --objectives {example}",
        )
    metrics = [part.rpartition(":")[0] for part in parts]
    known = [*spec.columns[1:], *spec.costs]  # not "epoch"
    for metric in metrics:
        need(
            metric in known,
            f"--objectives {given!r}: {spec.script}'s trials do not report {metric!r}",
            f"choose from {', '.join(known)}",
        )
    need(
        len(parts) >= 2,
        f"--objectives {given!r} names one metric: a one-metric sweep needs no --objectives",
        f"omit --objectives, or add a second, e.g. --objectives {example}",
    )
    need(
        len(set(metrics)) == len(metrics),
        f"--objectives {given!r} names a metric twice",
        "name each metric once",
    )
    need(
        parts[0] == f"{spec.metric}:{spec.mode}",
        f"--objectives {given!r} must start with {spec.script}'s own metric "
        f"{spec.metric}:{spec.mode} (checkpoints, the progress view and best/checkpoint.pt "
        "follow it)",
        f"pass e.g. --objectives {example}",
    )


def validate(spec: SweepSpec, s: Settings) -> None:
    """Check flag values before anything starts; each problem names its fix. First each
    declared bound, then what no bound can say: across flags, or against the script."""

    def need(ok: bool, problem: str, fix: str) -> None:
        if not ok:
            raise UsageError(problem, fix)

    for name, (f, _) in Settings.flags().items():
        value = getattr(s, name)
        if f.bound is not None and value is not None:
            need(f.bound.holds(value), f.bound.problem(_dashed(name), value), f.fix)
    need(
        s.space in spec.spaces,
        f"unknown --space {s.space!r}",
        f"choose one of {', '.join(spec.spaces)}",
    )
    need(
        s.warm_start is None or s.warm_start in spec.warm_starts,
        f"unknown --warm-start {s.warm_start!r}",
        f"choose one of {', '.join(spec.warm_starts)}" if spec.warm_starts else "omit it",
    )
    need(
        1 <= s.grace_period <= s.max_epochs,
        f"--grace-period {s.grace_period} must be between 1 and --max-epochs {s.max_epochs}",
        "lower --grace-period or raise --max-epochs",
    )
    need(
        s.gpus_per_trial is None or s.gpus_per_trial <= 1 or float(s.gpus_per_trial).is_integer(),
        f"--gpus-per-trial {s.gpus_per_trial}: above 1, Ray gives whole GPUs only",
        "pass a share up to 1 (e.g. 0.5) or a whole number of GPUs",
    )
    need(
        bool(s.name) and "/" not in s.name and s.name not in (".", ".."),
        f"--name {s.name!r} is not a folder name",
        "pass a plain name such as ae_sweep_v2",
    )
    need(
        s.scheduler in STRATEGIES,
        f"unknown --scheduler {s.scheduler!r}",
        f"choose one of {', '.join(STRATEGIES)}",
    )
    if s.objectives is not None:
        check_objectives(spec, s.objectives, need)
        need(
            STRATEGIES[s.scheduler].uses_study,
            f"--objectives with --scheduler {s.scheduler}: it optimises one metric, with no "
            "Optuna study to hold several",
            "use --scheduler mo-asha (or asha, which stops by the first objective alone)",
        )
        need(
            s.warm_start_from is None,
            "--warm-start-from with --objectives: an earlier sweep's trials hold one value each",
            "omit --warm-start-from, or --warm-start NAME to try a configuration first",
        )
    STRATEGIES[s.scheduler].check(spec, s, need)
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
