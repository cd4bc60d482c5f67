"""Starting a sweep from what is already known, before the searcher samples anything.

- ``--warm-start NAME``: a named configuration (the script's ``WARM_STARTS``: the report's best)
  is the first trial (``warm_points``).
- ``--warm-start-from DIR``: an earlier sweep's finished trials (``DIR/results.parquet``: each
  trial's config and every epoch's metric) are given to the Optuna study before the first new
  trial (``earlier_trials``; Optuna's ``add_trials``), so TPE models them from its first
  suggestion: a second sweep starts from what the first learned. The earlier sweep must be of
  the same model, metric and search space (its sweep.json says), else a one-line error.

``WarmStart`` carries both to the strategy's searcher (``sweeps/search/searcher.py`` adds them once).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import optuna
from ray.tune.search.optuna import OptunaSearch
from ray.tune.search.sample import Categorical, Domain, Integer

from sweeps.folder.layout import EARLIER_TRIAL_ATTR, RESULTS_FILE, SWEEP_FILE
from sweeps.folder.storage import Folder
from sweeps.request.search_space import describe_space, integer_bounds, searched_keys
from sweeps.request.settings import Settings, SweepSpec
from trainables import config
from trainables.errors import UsageError


@dataclass(frozen=True)
class WarmStart:
    """What the searcher is given before it samples: configurations to run first (``points``,
    one value per searched axis) and finished trials to learn from (``trials``)."""

    points: list[dict[str, Any]] = field(default_factory=list)
    trials: list[optuna.trial.FrozenTrial] = field(default_factory=list)
    name: str | None = None  # the named configuration the points are


def warm_start(spec: SweepSpec, settings: Settings, module, space: dict[str, Any]) -> WarmStart:
    """--warm-start's and --warm-start-from's, checked before Ray starts (UsageError)."""
    name = settings.warm_start
    if name is None and settings.smoke_test:
        name = spec.smoke_warm_start  # the smoke test's, where the space holds it
    points = warm_points(spec, name, module, space, strict=settings.warm_start is not None)
    return WarmStart(
        points,
        earlier_trials(spec, settings, space) if settings.warm_start_from else [],
        name if points else None,
    )


def warm_points(
    spec: SweepSpec, name: str | None, module, space: dict[str, Any], strict: bool = True
) -> list[dict]:
    """The configurations tried first (Ray's ``points_to_evaluate``): the script's
    ``WARM_STARTS[name]``, as a value for each searched axis of ``space``; an axis the named
    configuration leaves out takes the trainable's default. A value outside its axis is a
    UsageError (``strict``: --warm-start was given) or leaves no point (the smoke test's own)."""
    if name is None:
        return []
    named = spec.warm_starts[name]
    fixed = {k: v for k, v in space.items() if not isinstance(v, Domain)}
    try:
        full = module.CONFIG.from_dict({**fixed, **named}).to_dict()
    except config.ConfigError as e:
        raise UsageError(f"--warm-start {name}: {e}", f"fix WARM_STARTS in {spec.script}") from None
    point = {}
    for key in searched_keys(space):
        value, axis = full[key], space[key]
        if not _inside(axis, value):
            if not strict:
                return []
            raise UsageError(
                f"--warm-start {name}: its {key} {value!r} is outside the "
                f"space's axis {describe_space({key: axis})[0][key]}",
                "choose another --space or --lr-range, or omit --warm-start",
            )
        point[key] = value
    return [point]


def _inside(axis: Domain, value: Any) -> bool:
    if isinstance(axis, Categorical):
        return value in axis.categories
    if value is None:
        return False
    if isinstance(axis, Integer):
        low, high = integer_bounds(axis)
        return low <= value <= high
    return axis.lower <= value <= axis.upper


def earlier_trials(
    spec: SweepSpec, settings: Settings, space: dict[str, Any]
) -> list[optuna.trial.FrozenTrial]:
    """The finished trials of the sweep in --warm-start-from, as Optuna trials of this sweep's
    space: COMPLETE with their last value if they ran every epoch, PRUNED if the scheduler
    stopped them (their last value, every epoch's as intermediate values); errored and
    diverged trials are left out. UsageError if the folder is not a finished sweep of the same
    model, metric and space."""
    where = f"--warm-start-from {settings.warm_start_from}"
    folder = Folder(settings.warm_start_from)
    if not folder.exists(SWEEP_FILE) or not folder.exists(RESULTS_FILE):
        raise UsageError(
            f"{where}: no {SWEEP_FILE} and {RESULTS_FILE} there, so it is not a finished sweep",
            "pass the folder of a sweep that has ended (<storage-path>/<name>)",
        )
    record = folder.read_json(SWEEP_FILE)
    axes = describe_space(space)[0]
    theirs = (record.get("model"), record.get("metric"), record.get("mode"))
    if theirs != (spec.kind, spec.metric, spec.mode):
        raise UsageError(
            f"{where} is a sweep of the {theirs[0]} on {theirs[1]} ({theirs[2]}), not of the "
            f"{spec.kind} on {spec.metric} ({spec.mode})",
            f"pass an earlier {spec.script} sweep",
        )
    if record.get("search_space") != axes:
        raise UsageError(
            f"{where} searched another space ({record.get('search_space')}) than this sweep's "
            f"({axes})",
            "give the same --space and --lr-range as that sweep, or omit --warm-start-from",
        )
    rows = folder.read_parquet(RESULTS_FILE).to_pandas().sort_values(["trial_id", "epoch"])
    distributions = OptunaSearch.convert_search_space(space)
    max_epochs = record.get("max_epochs")
    trials = []
    for _, rows_of in rows.groupby("trial_id", sort=True):
        last = rows_of.iloc[-1]
        if last["status"] != "TERMINATED":
            continue  # errored or diverged: nothing TPE should model as a value
        values = {
            int(e): float(v) for e, v in zip(rows_of["epoch"], rows_of[spec.metric], strict=True)
        }
        params = {k: _plain(last[f"config/{k}"]) for k in distributions}
        pruned = bool(last["stopped_early"]) or int(last["epoch"]) < (max_epochs or 0)
        trials.append(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.PRUNED
                if pruned
                else optuna.trial.TrialState.COMPLETE,
                value=float(last[spec.metric]),
                params=params,
                distributions=distributions,
                intermediate_values=values,
                user_attrs={EARLIER_TRIAL_ATTR: folder.uri, "trial_id": str(last["trial_id"])},
            )
        )
    if not trials:
        raise UsageError(
            f"{where}: the sweep has no finished trial to learn from",
            "pass a sweep with finished trials, or omit --warm-start-from",
        )
    return trials


def _plain(value: Any) -> Any:
    """A numpy scalar from a Parquet row as the plain Python value Optuna stores."""
    return value.item() if hasattr(value, "item") else value
