"""The search space a sweep hands to Ray Tune: the script's space (``SPACES`` in
``sweeps/<model>_sweep.py``) with the flags that change it (``--lr-range``) and the fixed keys
every trial needs (epochs, data), checked against the trainable's typed config before Ray starts.
"""

from __future__ import annotations

import contextlib
from typing import Any

from ray import tune
from ray.tune.search.sample import Categorical, Domain, Float, Integer, LogUniform, Quantized

from sweeps.request.settings import Settings, SweepSpec
from trainables import config
from trainables.errors import UsageError


def trial_space(
    spec: SweepSpec,
    settings: Settings,
    module,
    space: dict[str, Any],
    decision_epochs: tuple[int, ...] = (),
) -> dict:
    """The param_space of the Tuner: ``space`` (the script's, with its own flags applied), the
    --lr-range bounds, and the keys set by flags; with --report-every N above 1, also the epochs
    every trial must report whatever N says (``decision_epochs``: the scheduler's, from the
    strategy). UsageError if some value cannot be a config."""
    full = {
        **with_lr_range(space, settings.lr_range),
        "epochs": settings.max_epochs,  # ASHA's max_t; schedules such as cosine span it
        "data_dir": settings.data_dir,
        "val_size": settings.val_size,
        "data_seed": settings.data_seed,
        "subset": settings.subset,
    }
    if settings.report_every > 1:  # absent at 1: a sweep's space is what it was before the flag
        full["report_every"] = settings.report_every
        full["report_at"] = ",".join(str(e) for e in decision_epochs)
    if settings.smoke_test:  # the smoke budget, searched or not (a small batch: many steps)
        full.update(spec.smoke_config)
    try:
        check_space(module, full)
    except config.ConfigError as e:
        flag = f"--{e.key.replace('_', '-')}" if e.key else "a flag"
        raise UsageError(
            f"{e} (in the search space or set by a flag)",
            f"fix {flag} if you gave it, else the space in {spec.script}",
        ) from None
    return full


def trial_perturbations(
    spec: SweepSpec, settings: Settings, module, space: dict[str, Any]
) -> dict[str, Any]:
    """What PBT may change mid-trial (``PERTURBATIONS[--space]`` of the script, with --lr-range
    applied to its lr axes), each value checked to make a valid config over ``space`` (the trial
    space). A continuous axis is a ``tune.uniform``/``loguniform`` (PBT multiplies it by 0.8 or
    1.2, kept inside the bounds: ``sweeps.search.population.KeepInBounds``); a discrete one a list (PBT steps
    to a neighbour)."""
    mutations = dict(spec.perturbations[settings.space])
    if settings.lr_range is not None and any(isinstance(v, Float) for v in mutations.values()):
        with contextlib.suppress(UsageError):  # no lr axis among them: nothing to replace
            mutations = with_lr_range(mutations, settings.lr_range)
    base = {k: _extremes(v)[0] if isinstance(v, Domain) else v for k, v in space.items()}
    for key, values in mutations.items():
        if isinstance(values, Categorical) or not isinstance(values, Float | Integer | list):
            raise UsageError(
                f"PERTURBATIONS[{settings.space!r}][{key!r}] in {spec.script} is {values!r}",
                "write a continuous axis as tune.uniform/tune.loguniform and a discrete one as "
                "a plain list (PBT steps to a neighbouring value)",
            )
        for value in values if isinstance(values, list) else _extremes(values):
            try:
                module.CONFIG.from_dict({**base, key: value})
            except config.ConfigError as e:
                raise UsageError(
                    f"{e} (in PERTURBATIONS[{settings.space!r}] of {spec.script})",
                    f"fix PERTURBATIONS in {spec.script}",
                ) from None
    return mutations


def with_lr_range(space: dict[str, Any], lr_range: tuple[float, float] | None) -> dict[str, Any]:
    """``space`` with every log-uniform learning-rate axis (lr, lr_*) set to ``lr_range``."""
    if lr_range is None:
        return space
    low, high = lr_range
    out = dict(space)
    for key, value in space.items():
        if (key == "lr" or key.startswith("lr_")) and isinstance(value, Float):
            out[key] = tune.loguniform(low, high)
    if out == space:
        raise UsageError("--lr-range: this space has no lr axis", "omit --lr-range")
    return out


def describe_space(space: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(searched axes as plain JSON, fixed values) of a Tune param space, for sweep.json."""
    axes, fixed = {}, {}
    for key, value in space.items():
        if isinstance(value, Categorical):
            axes[key] = {"choice": list(value.categories)}
        elif isinstance(value, Float | Integer):
            kind = "log" if isinstance(value.get_sampler(), LogUniform) else ""
            kind += "uniform" if isinstance(value, Float) else "randint"
            axes[key] = {kind: [value.lower, value.upper]}
        elif isinstance(value, Domain):
            axes[key] = {"domain": repr(value)}
        else:
            fixed[key] = value
    return axes, fixed


def searched_keys(space: dict[str, Any]) -> list[str]:
    """The axes of ``space`` that are searched (not fixed values)."""
    return [k for k, v in space.items() if isinstance(v, Domain)]


def check_space(module, space: dict[str, Any]) -> None:
    """Every value of every axis must make a valid trial config: catches a typo in a key or an
    out-of-range bound before Ray starts (raises config.ConfigError naming the key)."""
    base = {}
    for key, value in space.items():
        base[key] = _extremes(value)[0] if isinstance(value, Domain) else value
    module.CONFIG.from_dict(base)
    for key, value in space.items():
        if isinstance(value, Domain):
            for v in _extremes(value):
                module.CONFIG.from_dict({**base, key: v})


def _extremes(domain: Domain) -> list[Any]:
    if isinstance(domain, Categorical):
        return list(domain.categories)
    if isinstance(domain, Integer):
        return list(integer_bounds(domain))
    return [domain.lower, domain.upper]


def integer_bounds(axis: Integer) -> tuple[int, int]:
    """The lowest and highest value an integer axis samples: ``tune.randint``'s upper bound is
    exclusive, ``tune.qrandint``'s with q > 1 inclusive (Ray's docstring)."""
    sampler = axis.get_sampler()
    inclusive = isinstance(sampler, Quantized) and sampler.q != 1
    return axis.lower, axis.upper if inclusive else axis.upper - 1
