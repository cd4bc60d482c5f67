"""What a sweep prints while it runs: a compact progress view, not Ray's table.

On a terminal the view is redrawn in place, at most once a second, in at most 100 columns:

    ae_sweep  /home/me/runs/ae_sweep  elapsed 0:01:23  ETA ~0:04:10
    trials 7/20 done, 2 running, 11 pending; stopped early 4, errored 0, diverged 0
    trial-epochs 31/400 (8%); best val_mse 0.017121 (e5651832: optimizer=adam lr=0.00062 ...)
      running 1a2b3c4d  epoch 3/20  val_mse 0.021304

When stdout is not a terminal (CI, a log file) it prints one plain line per trial as it ends and
a status line at most every 30 s; a trial's line is cut to 100 columns (its config ends in
"..."; results.parquet has all of it), the status line is printed whole.
``--verbose`` gives Ray's own table instead (``CLIReporter``), and the per-checkpoint lines of
the trials' workers with it.

Tune pickles the reporter with the experiment (``tuner.pkl``), so a resumed sweep gets it back;
whether Ray's table is wanted is read each time from ``$LATENTSWEEP_PROGRESS`` (set by
``sweeps/ray_cluster.tune_environment`` from ``--verbose``), so ``--resume --verbose`` works.
"""

from __future__ import annotations

import datetime
import logging
import os
import sys
import time
from typing import Any

import optuna
from ray.air.constants import TRAINING_ITERATION
from ray.tune import CLIReporter, ProgressReporter

from sweeps.folder import outcome

PROGRESS_ENV = "LATENTSWEEP_PROGRESS"  # "verbose": Ray's own table
WIDTH = 100
STATUS_EVERY_S = 30.0  # plain output: a status line at most this often
REDRAW_EVERY_S = 1.0  # terminal: redraw at most this often


def verbose() -> bool:
    return os.environ.get(PROGRESS_ENV) == "verbose"


def _clock(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(max(seconds, 0.0))))


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2g}" if value != 0 and abs(value) < 1e-2 else f"{value:.4g}"
    return str(value)


def _fit(line: str) -> str:
    return line if len(line) <= WIDTH else line[: WIDTH - 3] + "..."


class SweepProgress(ProgressReporter):
    """Tune's progress reporter for a sweep: the compact view, or Ray's table with --verbose."""

    def __init__(
        self,
        name: str,
        experiment: str,
        metric: str,
        mode: str,
        max_epochs: int,
        searched: list[str],
        columns: list[str],
    ):
        self.name, self.experiment = name, experiment
        self.metric, self.mode, self.max_epochs = metric, mode, max_epochs
        self.searched, self.columns = list(searched), list(columns)
        self._reset()

    def _reset(self) -> None:
        self._start = time.time()
        self._total: int | None = None
        self._announced: set[str] = set()  # trials whose end has been printed (plain output)
        # Tune's trial list grows (a requeued trial is moved to its end, its length unchanged):
        # the count seen so far and the trials not announced yet, so that each step looks at the
        # running and new trials, not at every trial (a full scan at each step made the driver's
        # time per trial grow with the sweep: BENCHMARKS.md, section 6, "10,000 trials")
        self._seen = 0
        self._open: list = []
        self._last_status = 0.0
        self._last_draw = 0.0
        self._drawn_lines = 0
        self._table: CLIReporter | None = None

    # Tune pickles the reporter with the experiment; the view's own state starts afresh.
    def __getstate__(self) -> dict[str, Any]:
        keep = ("name", "experiment", "metric", "mode", "max_epochs", "searched", "columns")
        return {k: self.__dict__[k] for k in keep}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    def setup(self, start_time=None, total_samples=None, metric=None, mode=None, **kwargs):
        self._start = start_time or time.time()
        self._total = total_samples
        if verbose():
            self._table = CLIReporter(
                metric_columns=[TRAINING_ITERATION, *self.columns],
                parameter_columns=self.searched,
                sort_by_metric=True,
                max_report_frequency=30,
            )
            self._table.setup(start_time, total_samples, metric, mode, **kwargs)

    @property
    def _tty(self) -> bool:
        return sys.stdout.isatty()

    def should_report(self, trials, done: bool = False) -> bool:
        if self._table is not None:
            return self._table.should_report(trials, done)
        now = time.time()
        if done:
            return True
        if self._tty:
            return now - self._last_draw >= REDRAW_EVERY_S
        ended = any(outcome.ended(t) for t in self._unannounced(trials))
        return ended or now - self._last_status >= STATUS_EVERY_S

    def _unannounced(self, trials) -> list:
        """The trials whose end has not been printed: those open at the last look, and the new
        ones in Tune's list (a shorter list than seen: another run's, looked at afresh)."""
        if len(trials) < self._seen:
            self._seen, self._open = 0, []
        self._open += [t for t in trials[self._seen :] if t.trial_id not in self._announced]
        self._seen = len(trials)
        return self._open

    def report(self, trials, done: bool, *sys_info: str) -> None:
        if self._table is not None:
            self._table.report(trials, done, *sys_info)
            return
        if self._tty:
            self._draw(self.view(trials))
        else:
            still_open = []
            for trial in self._unannounced(trials):
                if outcome.ended(trial):
                    self._announced.add(trial.trial_id)
                    print(_fit(f"{self.name}: {self.trial_line(trial)}"), flush=True)
                else:
                    still_open.append(trial)
            self._open = still_open
            now = time.time()
            if done or now - self._last_status >= STATUS_EVERY_S:
                self._last_status = now
                print(f"{self.name}: {self.status_line(trials)}", flush=True)

    # --- what the view says ------------------------------------------------------------------

    def _value(self, trial) -> float | None:
        value = (trial.last_result or {}).get(self.metric)
        return float(value) if outcome.is_finite_number(value) else None

    def _config(self, trial) -> str:
        return " ".join(f"{k}={_short(trial.config.get(k))}" for k in self.searched)

    def trial_line(self, trial) -> str:
        """One finished trial: how it ended, its epochs, its metric and its config."""
        epochs, value = outcome.epochs(trial), self._value(trial)
        how = outcome.how_it_ended(trial, self.max_epochs)
        score = f", {self.metric} {value:.5g}" if value is not None else ""
        return f"trial {trial.trial_id} {how} at epoch {epochs}/{self.max_epochs}{score} ({self._config(trial)})"

    def counts(self, trials) -> dict[str, int]:
        ended = [t for t in trials if outcome.ended(t)]
        total = max(self._total or 0, len(trials))
        return {
            "total": total,
            "done": len(ended),
            "running": sum(t.status == "RUNNING" for t in trials),
            "pending": total - len(ended) - sum(t.status == "RUNNING" for t in trials),
            "stopped_early": sum(
                outcome.stopped_early(t, outcome.epochs(t), self.max_epochs) for t in ended
            ),
            "errored": sum(map(outcome.errored, trials)),
            "diverged": sum(map(outcome.diverged, trials)),
            "epochs": sum(outcome.epochs(t) for t in trials),
            "budget": total * self.max_epochs,
        }

    def best(self, trials):
        """The best trial so far, running ones too, by the rule ``best.json`` is picked by."""
        return outcome.best(trials, self.metric, self.mode, finished_only=False)

    def status_line(self, trials) -> str:
        c = self.counts(trials)
        best = self.best(trials)
        line = (
            f"{c['done']}/{c['total']} trials done ({c['stopped_early']} stopped early, "
            f"{c['errored']} errored, {c['diverged']} diverged), {c['running']} running, "
            f"{c['pending']} pending; {c['epochs']}/{c['budget']} trial-epochs"
        )
        if best is not None:
            line += f"; best {self.metric} {self._value(best):.5g} ({best.trial_id})"
        return line + f"; elapsed {_clock(time.time() - self._start)}"

    def view(self, trials) -> list[str]:
        """The lines of the terminal view, each at most WIDTH columns."""
        c = self.counts(trials)
        elapsed = time.time() - self._start
        eta = ""
        if 0 < c["done"] < c["total"]:
            eta = f"  ETA ~{_clock(elapsed * (c['total'] - c['done']) / c['done'])}"
        best = self.best(trials)
        share = 100 * c["epochs"] / max(c["budget"], 1)
        lines = [
            f"{self.name}  {self.experiment}  elapsed {_clock(elapsed)}{eta}",
            f"trials {c['done']}/{c['total']} done, {c['running']} running, {c['pending']} "
            f"pending; stopped early {c['stopped_early']}, errored {c['errored']}, diverged "
            f"{c['diverged']}",
            f"trial-epochs {c['epochs']}/{c['budget']} ({share:.0f}%)"
            + (
                f"; best {self.metric} {self._value(best):.5g} ({best.trial_id}: "
                f"{self._config(best)})"
                if best is not None
                else ""
            ),
        ]
        for trial in trials:
            if trial.status == "RUNNING":
                value = self._value(trial)
                score = f"  {self.metric} {value:.5g}" if value is not None else ""
                lines.append(
                    f"  running {trial.trial_id}  epoch {outcome.epochs(trial)}/{self.max_epochs}"
                    + score
                )
        return [_fit(line) for line in lines]

    def _draw(self, lines: list[str]) -> None:
        """Replace the previous view with ``lines`` (cursor up, clear to the end of screen)."""
        self._last_draw = time.time()
        up = f"\x1b[{self._drawn_lines}F" if self._drawn_lines else ""
        sys.stdout.write(up + "\x1b[J" + "\n".join(lines) + "\n")
        sys.stdout.flush()
        self._drawn_lines = len(lines)


class _DropTokenNotice(logging.Filter):
    """Ray 2.60 warns at every start that token authentication is on (docs/sweeps.md explains
    it once); the compact view leaves that line out."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Token authentication is enabled" not in record.getMessage()


def quiet_driver_logs() -> None:
    """For the compact view (not --verbose): no start-up notice from Ray's token authentication,
    no INFO lines from Optuna (the view says what the study's trials did)."""
    logging.getLogger("ray._private.authentication.authentication_token_setup").addFilter(
        _DropTokenNotice()
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
