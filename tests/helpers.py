"""What the fault tests share: switching on the sweep's fault-injection points
(``sweeps/faults.py``) and waiting on their markers, and reading back what a stopped sweep left:
Tune's experiment snapshot, the trials' result files, the Optuna study.

A fault test holds the sweep at the state it means to interrupt (a trial after epoch e, the
driver after a snapshot): the code under test writes a marker once it is held there, the test
waits for that marker (bounded, with a message saying what never happened), then kills, sends
Ctrl-C or says go. No sleep decides anything, and no file is read while it still changes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from sweeps import faults
from sweeps.layout import trial_dirname

REPO = Path(__file__).resolve().parents[1]
MARKER_DEADLINE_S = 300.0  # a marker that takes longer is a failure, not a slow machine


# ---------------------------------------------------------------------------------------------
# Fault injection


def fault_plan(folder: Path, **plan) -> str:
    """The value of ``LATENTSWEEP_FAULTS`` for ``plan`` (``sweeps/faults.py``), its markers in
    ``folder`` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    return json.dumps({"dir": str(folder), **plan})


def fault_env(folder: Path, env: dict | None = None, **plan) -> dict[str, str]:
    """``env`` (default: this process's) with the fault plan set, for a sweep in a subprocess."""
    return {**(os.environ if env is None else env), faults.VARIABLE: fault_plan(folder, **plan)}


def wait_for_marker(
    marker: Path,
    what: str,
    process: subprocess.Popen | None = None,
    alive=None,
    log: Path | None = None,
) -> dict:
    """The marker the code under test writes (whole, by rename) once it is held where the test
    asked; fails with ``what`` (and the end of ``log``, the sweep's output) if it never comes, or
    if ``process`` (the sweep) ends first, or ``alive()`` (a thread running it) turns false."""
    deadline = time.monotonic() + MARKER_DEADLINE_S
    while not marker.exists():
        why = None
        if process is not None and process.poll() is not None:
            why = f"the sweep ended (status {process.returncode}) before {what}"
        elif alive is not None and not alive():
            why = f"the sweep ended before {what}"
        elif time.monotonic() > deadline:
            why = f"{what} did not happen within {MARKER_DEADLINE_S:.0f} s ({marker})"
        if why:
            tail = f"; the sweep's output ends:\n{log.read_text()[-3000:]}" if log else ""
            pytest.fail(why + tail)
        time.sleep(0.05)
    return json.loads(marker.read_text())


def ctrl_c_after_a_trial(cmd: list[str], exp: Path, log: Path, cwd=REPO, env=None) -> int:
    """Run the sweep ``cmd`` as a new process group, send it SIGINT (Ctrl-C) while its driver is
    paused right after a snapshot that is in ``exp`` and holds a finished trial and an unfinished
    one, and return its exit status (whatever Ray it started is killed afterwards). Code without
    the fault-injection points (an old commit's checkout, ``cwd``) is interrupted the old way:
    once a snapshot read shows a finished trial."""
    if not (Path(cwd) / "sweeps" / "faults.py").is_file():
        return _ctrl_c_by_polling(cmd, exp, log, cwd, env)
    markers = log.parent / f"{log.stem}-faults"
    pause = {"at": "snapshot", "terminated": 1, "running": 1}
    env = fault_env(markers, env, pause=pause)
    with open(log, "w") as out:
        driver = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_for_marker(
                markers / "driver-paused.json", "a snapshot with a finished trial", driver, log=log
            )
            driver.send_signal(signal.SIGINT)  # Ctrl-C: Tune's handler also ends the pause
            return driver.wait(timeout=180)
        finally:
            with contextlib.suppress(ProcessLookupError):  # the local Ray it started, if left
                os.killpg(driver.pid, signal.SIGKILL)


def _ctrl_c_by_polling(cmd: list[str], exp: Path, log: Path, cwd, env) -> int:
    """For code that predates ``sweeps/faults.py``: SIGINT once a read of Tune's newest snapshot
    shows a finished trial (a read that can race Tune's writes: used only there)."""
    with open(log, "w") as out:
        driver = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.time() + 240
            while time.time() < deadline and driver.poll() is None:
                if len(_terminated_in_snapshot(exp)) >= 1:
                    break
                time.sleep(0.3)
            assert driver.poll() is None, "the sweep ended before it could be interrupted"
            driver.send_signal(signal.SIGINT)  # Ctrl-C
            return driver.wait(timeout=120)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(driver.pid, signal.SIGKILL)


# ---------------------------------------------------------------------------------------------
# What a stopped sweep left: Tune's snapshot, result files, the study


def study_of(exp: Path) -> optuna.Study:
    """The sweep's Optuna study, read back from its SQLite file as analysis would."""
    sweep = json.loads((exp / "sweep.json").read_text())
    return optuna.load_study(study_name=sweep["study_name"], storage=f"sqlite:///{exp}/optuna.db")


def check_study_matches(exp: Path, table, metric: str, max_epochs: int):
    """Each Tune trial is one Optuna trial: PRUNED (with every epoch's value) when ASHA stopped it,
    COMPLETE otherwise."""
    study = study_of(exp)
    by_id = {t.user_attrs["trial_id"]: t for t in study.trials if t.state != TrialState.FAIL}
    assert set(by_id) == set(table["trial_id"])
    for trial_id, rows in table.groupby("trial_id"):
        ot = by_id[trial_id]
        values = dict(zip(rows["training_iteration"], rows[metric], strict=True))
        assert ot.intermediate_values == pytest.approx(values)
        if rows["stopped_early"].iloc[0]:
            assert ot.state == TrialState.PRUNED and len(values) < max_epochs
        else:
            assert ot.state == TrialState.COMPLETE and len(values) == max_epochs


def _finished_trials(exp: Path) -> int:
    """Trials whose last result says done (ran all epochs or ASHA stopped them)."""
    done = 0
    for f in exp.glob("*/result.json"):
        lines = f.read_text().splitlines()
        done += bool(lines and json.loads(lines[-1]).get("done"))
    return done


def _newest_snapshot(exp: Path) -> Path:
    return max(exp.glob("experiment_state-*.json"), key=lambda p: p.name)  # as Tune picks it


def _terminated_in_snapshot(exp: Path) -> list[str]:
    """Trial folders that Tune's newest experiment snapshot records as TERMINATED."""
    try:
        trials = [
            json.loads(t) for t, _ in json.loads(_newest_snapshot(exp).read_text())["trial_data"]
        ]
    except (ValueError, OSError):  # not written yet (or, read while running, caught mid-copy)
        return []
    return [
        trial_dirname(t["trainable_name"], t["trial_id"])
        for t in trials
        if t["status"] == "TERMINATED"
    ]


def _snapshot_trials(exp: Path) -> dict:
    """The trials of Tune's newest experiment snapshot, by id, as Tune restores them: (status
    in the snapshot, the Trial with the checkpoint it would restore from)."""
    from ray.tune.experiment import Trial

    trials = {}
    for state, metadata in json.loads(_newest_snapshot(exp).read_text())["trial_data"]:
        trial = Trial.from_json_state(state, stub=True)
        trial.restore_run_metadata(metadata)
        trials[trial.trial_id] = (json.loads(state)["status"], trial)
    return trials


def _epochs_in_study(exp: Path) -> dict[str, int]:
    """Tune trial id -> the last epoch the Optuna study holds for it (read-only)."""
    db = sqlite3.connect(f"file:{exp / 'optuna.db'}?mode=ro", uri=True, timeout=1)
    try:
        rows = db.execute(
            "SELECT a.value_json, MAX(v.step) FROM trial_user_attributes a JOIN "
            "trial_intermediate_values v ON v.trial_id = a.trial_id WHERE a.key = 'trial_id' "
            "GROUP BY a.value_json"
        ).fetchall()
    finally:
        db.close()
    return {json.loads(trial_id): int(step) for trial_id, step in rows}


def _restored_checkpoints(snapshot: dict) -> dict[str, str]:
    """Of ``_snapshot_trials``: the trials a resume restores from a checkpoint, and its path."""
    return {
        t: trial.checkpoint.path
        for t, (status, trial) in snapshot.items()
        if trial.checkpoint and status != "TERMINATED"
    }


def _ahead_of_snapshot(exp: Path, snapshot: dict | None = None) -> dict[str, int]:
    """Unfinished trials of the newest snapshot (or of ``snapshot``, ``_snapshot_trials``'s) for
    which the study holds a later epoch than the snapshot's last result: Tune will run those
    epochs again. Trial id -> the snapshot's epoch."""
    epochs = {
        t: int((trial.last_result or {}).get("training_iteration") or 0)
        for t, (status, trial) in (snapshot or _snapshot_trials(exp)).items()
        if status not in ("TERMINATED", "ERROR")
    }
    study = _epochs_in_study(exp)
    return {t: e for t, e in epochs.items() if study.get(t, 0) > e}
