"""How a trial ended and which trial is the best: the one definition that the results, the
progress view, the checkpoint pruner, PBT, the searcher and ``analysis/`` share.

It works on anything shaped like Tune's ``Trial`` (``status``, ``last_result``, ``trial_id``,
``get_error``) and imports nothing of Ray, so ``analysis/`` may import it (the contract in
pyproject.toml).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

# Tune's statuses of a trial that will not run again.
ENDED = ("TERMINATED", "ERROR")
# Keys of the last result of a trial whose loss diverged (``sweeps.fit.trainable.end_on_divergence``).
DIVERGED, ERROR = "diverged", "error"
# results.parquet's statuses of a trial that failed: Tune's ERROR, and ours for a divergence
# (Tune says TERMINATED).
FAILED = ("ERROR", "DIVERGED")
MODES = ("min", "max")


def sign(mode: str) -> float:
    """1 for a metric to minimise, -1 to maximise: ``sign * value``, lower is better."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: one of {', '.join(MODES)}")
    return 1.0 if mode == "min" else -1.0


def ended(trial) -> bool:
    return trial.status in ENDED


def errored(trial) -> bool:
    return trial.status == "ERROR"


def diverged(trial) -> bool:
    """The trial ended because its loss became NaN/inf (one last result says so)."""
    return (trial.last_result or {}).get(DIVERGED) is True


def status(trial) -> str:
    """Tune's status, but DIVERGED for a trial that diverged: results.parquet's ``status``."""
    return "DIVERGED" if diverged(trial) else trial.status


def epochs(trial) -> int:
    """The epochs a trial has reported (Tune's ``training_iteration`` of its last result)."""
    return int((trial.last_result or {}).get("training_iteration", 0) or 0)


def stopped_early(trial, epochs: int, max_epochs: int) -> bool:
    """The scheduler ended the trial after ``epochs`` of its ``max_epochs`` (not an error, not a
    divergence)."""
    return trial.status == "TERMINATED" and not diverged(trial) and 0 < epochs < max_epochs


def how_it_ended(trial, max_epochs: int) -> str:
    """errored, diverged, stopped early or finished: the words of the console and W&B."""
    if errored(trial):
        return "errored"
    if diverged(trial):
        return "diverged"
    return "stopped early" if epochs(trial) < max_epochs else "finished"


def is_finite_number(value: Any) -> bool:
    """A metric value that can rank a trial: a real number, not NaN or infinite."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def rank(trial, metric: str, mode: str) -> tuple[float, str] | None:
    """How a trial ranks for the sweep's best, lower first: its last value of ``metric``
    (signed by ``mode``), then its trial id, so a tie goes to the lowest id. None for a trial
    that cannot be the best: errored, diverged, or without a finite last value."""
    value = (trial.last_result or {}).get(metric)
    if errored(trial) or diverged(trial) or not is_finite_number(value):
        return None
    return (sign(mode) * value, trial.trial_id)


def best(trials: Iterable, metric: str, mode: str, finished_only: bool = True):
    """The best trial by ``rank``, or None. ``finished_only``: of the TERMINATED trials (what
    best.json picks from); else running trials count too (the progress view's best so far)."""
    ranked = [
        (key, trial)
        for trial in trials
        if (not finished_only or trial.status == "TERMINATED")
        and (key := rank(trial, metric, mode)) is not None
    ]
    return min(ranked, key=lambda kt: kt[0])[1] if ranked else None


def trial_error(trial) -> str | None:
    """Why a trial failed, in one line: its divergence, or what ended an errored trial (the last
    line of Ray's error.txt naming an exception, else its first line after the "Failure # N"
    header); None if it did not fail."""
    if diverged(trial):
        return str(trial.last_result.get(ERROR) or "the trial diverged")
    if not errored(trial):
        return None
    try:
        text = trial.get_error() or ""
    except Exception:  # an unreadable error file must not stop the results being written
        text = ""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    named = [line for line in lines if re.match(r"^[\w.]*(Error|Exception|Interrupt)\b", line)]
    first = [line for line in lines if not line.startswith("Failure #")][:1]
    return (named or first or ["the trial errored"])[-1][:500]


def test_key(metric: str) -> str:
    """The test split's name of a validation metric: val_mse -> test_mse, fid -> test_fid."""
    return "test_" + metric.removeprefix("val_")


# --- several objectives (--objectives) ------------------------------------------------------------

# the user attribute of a multi-objective Optuna trial holding its values at each epoch,
# {"<epoch>": [values]}: Optuna's intermediate values hold one value per step
EPOCH_VALUES_ATTR = "epoch_values"


def epoch_values(frozen) -> dict[int, float | list[float]]:
    """An Optuna trial's value(s) at each epoch it reported: its intermediate values, or a
    multi-objective trial's ``EPOCH_VALUES_ATTR``."""
    if frozen.intermediate_values:
        return dict(frozen.intermediate_values)
    return {int(k): v for k, v in frozen.user_attrs.get(EPOCH_VALUES_ATTR, {}).items()}


def signed_values(result: dict, objectives) -> tuple[float, ...] | None:
    """``result``'s values of ``objectives`` ((metric, mode) pairs), each signed so that lower
    is better; None if one is missing, NaN or infinite."""
    values = [result.get(metric) for metric, _ in objectives]
    if not all(is_finite_number(v) for v in values):
        return None
    return tuple(sign(mode) * float(v) for v, (_, mode) in zip(values, objectives, strict=True))


def dominates(a, b) -> bool:
    """``a`` is no worse than ``b`` in every objective and better in one (lower is better)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True)
    )


def non_dominated_fronts(points: list) -> list[list[int]]:
    """The indices of ``points`` (lower is better in each coordinate) by non-dominated sorting:
    the first front (nothing dominates its points), then the front of the rest, and so on."""
    remaining, fronts = list(range(len(points))), []
    while remaining:
        front = [
            i for i in remaining if not any(dominates(points[j], points[i]) for j in remaining)
        ]
        fronts.append(front)
        remaining = [i for i in remaining if i not in front]
    return fronts


def crowding_distances(points: list) -> list[float]:
    """NSGA-II's crowding distance of each point of one front: per objective, the gap between
    its two neighbours over the objective's range, summed; the ends of each objective get inf."""
    n = len(points)
    distance = [0.0] * n
    if n <= 2:
        return [math.inf] * n
    for k in range(len(points[0])):
        order = sorted(range(n), key=lambda i: (points[i][k], i))
        low, high = points[order[0]][k], points[order[-1]][k]
        distance[order[0]] = distance[order[-1]] = math.inf
        if high == low:
            continue
        for before, i, after in zip(order, order[1:], order[2:], strict=False):
            distance[i] += (points[after][k] - points[before][k]) / (high - low)
    return distance


def pareto_order(points: list) -> list[int]:
    """The indices of ``points`` best first: by non-dominated front, within a front the more
    isolated first (crowding distance, NSGA-II's rule), then the lower first coordinate, then
    the lower index. MO-ASHA's ranking at a rung."""
    order = []
    for front in non_dominated_fronts(points):
        crowd = crowding_distances([points[i] for i in front])
        order += [
            i
            for _, i in sorted(
                zip(crowd, front, strict=True), key=lambda ci: (-ci[0], points[ci[1]][0], ci[1])
            )
        ]
    return order


def front_values(trial, objectives, max_epochs: int) -> tuple[float, ...] | None:
    """A trial's signed values of ``objectives`` if it may stand on the sweep's front (it
    trained all ``max_epochs``, did not diverge, every value finite), else None. Whether it
    errored is the caller's to say: ``front`` reads the status, the checkpoint pruner is told."""
    if diverged(trial) or epochs(trial) < max_epochs:
        return None
    return signed_values(trial.last_result or {}, objectives)


def front(trials: Iterable, objectives, max_epochs: int) -> list:
    """The trials on the sweep's Pareto front: of those that ended TERMINATED with
    ``front_values``, the ones no other dominates; in the order of the first objective, then
    the trial id."""
    scored = [
        (values, trial)
        for trial in trials
        if trial.status == "TERMINATED"
        and (values := front_values(trial, objectives, max_epochs)) is not None
    ]
    points = [values for values, _ in scored]
    first = non_dominated_fronts(points)[0] if points else []
    return [scored[i][1] for i in sorted(first, key=lambda i: (points[i], scored[i][1].trial_id))]
