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
