"""Fault injection for the fault tests: points in a real sweep where a test holds a trial or
pauses the driver, so that it can kill (or Ctrl-C) at exactly the state it means to, with no
timing window. Off unless the environment variable ``LATENTSWEEP_FAULTS`` holds a plan (JSON);
a sweep without it runs none of this (``trial_points`` returns the trainable itself,
``callbacks`` returns no callback).

The plan::

    {"dir": "/tmp/faults",                    # where the markers and go-files below live
     "hold": [{"trial": 0, "epoch": 2}],       # trial side, any number of holds
     "pause": {"at": "snapshot", "terminated": 1, "restorable": 0, "running": 0,   # driver side
               "release": [{"trial": 0, "epoch": 2}]}}

* ``hold``: trial ``trial`` (the order in which Tune created the trials, from 0: the driver's
  callback writes each trial's number to ``dir/trial-<trial id>`` when Tune starts it) stops
  right after ``tune.report`` for its epoch ``epoch`` returns, once per sweep. By then Tune has
  registered that epoch's checkpoint (Tune's function trainable returns from ``report`` only at
  the driver's next call to the worker, made after the checkpoint's save was processed). It
  writes ``dir/held-trial<k>-epoch<e>.json`` (``pid``: the worker's process, ``trial_id``) and
  waits for ``dir/go-trial<k>-epoch<e>`` (or to be killed).
* ``pause``: the driver stops, once, at the first moment when the newest experiment snapshot
  Tune wrote is whole in the experiment folder and holds at least ``terminated`` TERMINATED
  trials, ``restorable`` unfinished trials with a checkpoint and ``running`` unfinished trials:
  ``"at": "snapshot"`` right after that snapshot; ``"at": "result"`` in the first result after
  it (of a trial the snapshot holds unfinished, which goes on) that the searcher has already
  told the Optuna study, so the study is ahead of the snapshot. It writes
  ``dir/driver-paused.json`` (``pid``, the snapshot's trials; with ``result``, the trial and
  epoch) and waits for ``dir/driver-go``, a Ctrl-C (Tune's SIGINT handler having run), or to be
  killed. ``release`` names holds the driver lets go (it writes their go-files) as soon as such
  a snapshot is whole in the folder, before it pauses: a test holds a trial unfinished, with a
  checkpoint, until a snapshot records it so, and the state it pauses in then comes whatever
  the timing.

Every wait gives up after ``DEADLINE_S`` and the sweep goes on: a test that never says go fails
on its own assertions, it does not hang. The plan is parsed once per process (per value of the
variable); the workers get the trial side inside the trainable, from the driver's plan.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from ray import tune

from sweeps.folder import outcome
from sweeps.folder.storage import Folder
from trainables.reporting import TuneReporter

VARIABLE = "LATENTSWEEP_FAULTS"
DEADLINE_S = 600.0  # the longest any injection point waits for a test's go
UPLOAD_S = 20.0  # how long the driver waits for Tune to copy a snapshot into the folder
POLL_S = 0.02
TRACE_FILE = "trace.log"


@functools.cache
def _parse(raw: str) -> dict[str, Any]:
    return json.loads(raw) if raw.strip() else {}


def plan() -> dict[str, Any]:
    """The plan in ``LATENTSWEEP_FAULTS``, or {} (parsed once per value)."""
    return _parse(os.environ.get(VARIABLE, ""))


def _write(path: Path, data: dict[str, Any] | str) -> None:
    """Whole or not at all: a reader never sees half a marker."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(data if isinstance(data, str) else json.dumps(data))
    os.replace(tmp, path)


def trace(message: str) -> None:
    """One line in ``dir/trace.log`` (with the time and the process): what each injection point
    saw and decided, for a fault test that fails to show why (``tests/helpers.py`` prints it)."""
    folder = plan().get("dir")
    if folder:
        with open(Path(folder) / TRACE_FILE, "a") as f:
            f.write(f"{time.time():.3f} pid {os.getpid()} {message}\n")


def _wait(done, deadline_s: float = DEADLINE_S) -> bool:
    deadline = time.monotonic() + deadline_s
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_S)
    return True


# --- the trial side ----------------------------------------------------------------------------


def trial_points(train):
    """``train`` (a ``train_<model>`` function), holding where the plan says; without holds in
    the plan, ``train`` itself."""
    holds, folder = plan().get("hold"), plan().get("dir")
    if not holds:
        return train

    @functools.wraps(train)  # Tune names trial folders after the trainable
    def trainable(config: dict[str, Any], reporter=None, **kwargs: Any) -> None:
        train(config, reporter=reporter or HoldingReporter(folder, holds), **kwargs)

    return trainable


class HoldingReporter(TuneReporter):
    """Tune's reporter, then a hold where the plan says (``trial_points``)."""

    def __init__(self, folder: str, holds: list[dict[str, int]]) -> None:
        super().__init__()
        self.folder, self.holds = Path(folder), holds

    def report(self, metrics: dict[str, Any], payload: dict[str, Any]) -> None:
        super().report(metrics, payload)
        trial_id = tune.get_context().get_trial_id()
        number = self.folder / f"trial-{trial_id}"
        index = int(number.read_text()) if number.is_file() else None
        epoch = int(payload["epoch"])
        trace(f"trial {index} ({trial_id}) reported epoch {epoch}")
        for hold in self.holds:
            if (hold["trial"], hold["epoch"]) == (index, epoch):
                name = f"trial{index}-epoch{epoch}"
                try:  # once per sweep: not again in a worker that restarted the trial
                    os.close(os.open(self.folder / f".claim-{name}", os.O_CREAT | os.O_EXCL))
                except FileExistsError:
                    continue
                held = {"pid": os.getpid(), "trial_id": trial_id, "epoch": epoch}
                _write(self.folder / f"held-{name}.json", held)
                trace(f"held {name}")
                went = _wait((self.folder / f"go-{name}").exists)
                trace(f"{name} goes on ({'told' if went else 'deadline'})")


# --- the driver side ---------------------------------------------------------------------------


def callbacks(experiment_uri: str) -> list[tune.Callback]:
    """The Tune callbacks the plan needs for the sweep in ``experiment_uri``: none without a
    plan."""
    return [FaultPoints(experiment_uri)] if plan() else []


class FaultPoints(tune.Callback):
    """Numbers the trials for ``hold`` and pauses the driver for ``pause`` (the module's
    docstring). Pickled with the Tuner (``tuner.pkl``) without the plan: a resumed sweep runs
    the plan of its own environment, if any."""

    def __init__(self, experiment_uri: str) -> None:
        self.experiment_uri = experiment_uri
        self._trials: list | None = None
        self._snapshot: dict[str, dict[str, Any]] | None = None  # the newest one Tune wrote
        self._fresh = False  # a snapshot was written in this step
        self._in_folder: bool | None = None  # whether that snapshot reached the folder
        self._paused = False

    def __getstate__(self) -> dict:
        return {"experiment_uri": self.experiment_uri}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["experiment_uri"])

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._trials = trials
        if plan().get("dir"):
            _write(Path(plan()["dir"]) / f"trial-{trial.trial_id}", str(trials.index(trial)))
            trace(f"trial {trials.index(trial)} ({trial.trial_id}) started")

    def on_step_begin(self, iteration, trials, **info) -> None:
        self._trials = trials

    def get_state(self) -> None:
        """Tune calls this while it writes an experiment snapshot: note what it holds."""
        if self._trials is not None and plan().get("pause"):
            self._snapshot = {
                t.trial_id: {
                    "status": t.status,
                    "epoch": outcome.epochs(t),
                    "checkpoint": t.checkpoint is not None,
                }
                for t in self._trials
            }
            self._fresh, self._in_folder = True, None
            states = ", ".join(
                f"{k} {v['status']} e{v['epoch']}{'+ckpt' if v['checkpoint'] else ''}"
                for k, v in self._snapshot.items()
            )
            trace(f"snapshot: {states}")
        return None

    def on_step_end(self, iteration, trials, **info) -> None:
        fresh, self._fresh = self._fresh, False
        if fresh and plan().get("pause"):
            self._maybe_pause(trials, pause=plan()["pause"].get("at") == "snapshot")

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        # Tune calls this after the scheduler and the searcher: a result that goes on (not
        # done) is already in the Optuna study.
        if (plan().get("pause") or {}).get("at") == "result" and not result.get("done"):
            self._maybe_pause(trials, trial, int(result.get("training_iteration") or 0))

    def _matches(self, rule: dict[str, Any], trial) -> bool:
        trials = (self._snapshot or {}).values()
        unfinished = [t for t in trials if t["status"] not in outcome.ENDED]
        return bool(
            self._snapshot
            and sum(t["status"] == "TERMINATED" for t in trials) >= rule.get("terminated", 0)
            and sum(t["checkpoint"] for t in unfinished) >= rule.get("restorable", 0)
            and len(unfinished) >= rule.get("running", 0)
            and (
                trial is None
                or self._snapshot.get(trial.trial_id, {}).get("status", "TERMINATED")
                not in outcome.ENDED
            )
        )

    def _maybe_pause(self, trials, trial=None, epoch: int | None = None, pause=True) -> None:
        """Release the plan's holds and (with ``pause``) pause, if the newest snapshot matches
        the plan and is whole in the folder."""
        if self._paused or not self._matches(plan()["pause"], trial):
            return
        if self._in_folder is None:  # checked once per snapshot
            self._in_folder = _snapshot_in(self.experiment_uri, trials)
            trace(f"the snapshot matches; in the folder: {self._in_folder}")
        if not self._in_folder:
            return  # Tune skipped copying this snapshot: a later one will do
        folder = Path(plan()["dir"])
        if not getattr(self, "_released", False):  # once: later matches find them released
            for hold in plan()["pause"].get("release", []):
                _write(folder / f"go-trial{hold['trial']}-epoch{hold['epoch']}", "")
                trace(f"released trial {hold['trial']} epoch {hold['epoch']}")
            self._released = True
        if not pause:
            return
        self._paused = True
        trace(
            f"paused ({'at ' + trial.trial_id + f' epoch {epoch}' if trial else 'at the snapshot'})"
        )
        paused = {"pid": os.getpid(), "snapshot": self._snapshot}
        if trial is not None:
            paused.update(trial_id=trial.trial_id, epoch=epoch)
        handler = signal.getsignal(signal.SIGINT)
        _write(folder / "driver-paused.json", paused)
        # Go on when told, or at a Ctrl-C: Tune's SIGINT handler, once run, puts back the one
        # it replaced, and Tune then stops the sweep as after any Ctrl-C.
        _wait(
            lambda: (
                (folder / "driver-go").exists() or signal.getsignal(signal.SIGINT) is not handler
            )
        )


def _snapshot_in(experiment_uri: str, trials) -> bool:
    """Whether every file of the snapshot Tune last wrote (its state files, staged on the
    driver: the folder holding the trials' own staging folders) is in the experiment folder
    (local, s3:// or gs://), byte for byte. Tune copies them there in a background thread, and
    skips the copy when the previous one is still running: then the folder keeps an older
    snapshot until the next."""
    try:
        trial = next(t for t in trials if t.local_path)
    except (StopIteration, RuntimeError):  # (RuntimeError: a trial without its folder yet)
        return False
    staged, folder = Path(trial.local_path).parent, Folder(experiment_uri)

    def copied() -> bool:
        files = [f for f in staged.iterdir() if f.is_file() and not f.name.startswith(".")]
        try:
            return all(folder.read_bytes(f.name) == f.read_bytes() for f in files)
        except (OSError, ValueError):  # not there yet
            return False

    return _wait(copied, UPLOAD_S)
