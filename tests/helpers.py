"""What the fault tests share: switching on the sweep's fault-injection points
(``sweeps/fit/faults.py``) and waiting on their markers, and reading back what a stopped sweep left:
Tune's experiment snapshot, the trials' result files, the Optuna study.

A fault test holds the sweep at the state it means to interrupt (a trial after epoch e, the
driver after a snapshot): the code under test writes a marker once it is held there, the test
waits for that marker (bounded, with a message saying what never happened), then kills, sends
Ctrl-C or says go. No sleep decides anything, and no file is read while it still changes.

Also what several test files read: a sweep's own console lines, the searcher without Ray, the
offline W&B runs."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import psutil
import pytest
from optuna.trial import TrialState
from ray import tune
from wandb.proto import wandb_internal_pb2

from sweeps.fit import faults
from sweeps.folder.layout import trial_dirname
from sweeps.folder.study_url import file_study_url, loadable
from sweeps.search.searcher import TrialStateOptunaSearch

REPO = Path(__file__).resolve().parents[1]
MARKER_DEADLINE_S = 300.0  # a marker that takes longer is a failure, not a slow machine


# ---------------------------------------------------------------------------------------------
# Fault injection


def fault_plan(folder: Path, **plan) -> str:
    """The value of ``LATENTSWEEP_FAULTS`` for ``plan`` (``sweeps/fit/faults.py``), its markers in
    ``folder`` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    return json.dumps({"dir": str(folder), **plan})


def fault_env(folder: Path, env: dict | None = None, **plan) -> dict[str, str]:
    """``env`` (default: this process's) with the fault plan set, for a sweep in a subprocess."""
    return {**(os.environ if env is None else env), faults.VARIABLE: fault_plan(folder, **plan)}


# Mid-sweep, whatever the timing: trial 1 is held right after its first epoch (its checkpoint
# registered) until a snapshot, whole in the folder, holds a finished trial and trial 1 unfinished
# with that checkpoint; the driver then lets it go and pauses (sweeps/fit/faults.py). The sweep needs
# ASHA's first rung at epoch 2 or later (``MID_SWEEP_ARGS``), so that nothing stops trial 1 at
# epoch 1 before it is held; its other trials run on and finish meanwhile.
HELD = {"trial": 1, "epoch": 1}
MID_SWEEP_ARGS = ["--grace-period", "2"]
# Paused at a result (``mid_sweep(at="result")``), the driver stops at the released trial's next
# result, or an earlier one of another trial the snapshot holds unfinished. That result must not
# be one ASHA stops the trial on: Tune tells the searcher of a stopped trial's last result only
# when the trial ends, so the study would not be ahead of the snapshot. ASHA's first rung is
# therefore at epoch 3, after the released trial's next epoch.
AHEAD_ARGS = ["--grace-period", "3", "--max-epochs", "4"]


def mid_sweep(at: str = "snapshot", **rule: int) -> dict:
    """The fault plan (``fault_plan``'s keywords) that pauses the driver ``at`` a snapshot, or
    at the first result after it, once the snapshot holds a finished trial and a held one that
    Tune would restore from its checkpoint (``rule`` adds to that)."""
    pause = {"at": at, "terminated": 1, "restorable": 1, "running": 1, **rule, "release": [HELD]}
    return {"hold": [HELD], "pause": pause}


def wait_for_markers(
    folder: Path,
    pattern: str,
    count: int,
    what: str,
    process: subprocess.Popen | None = None,
    alive=None,
    log: Path | None = None,
) -> list[Path]:
    """The markers in ``folder`` named by ``pattern`` (a glob) once there are ``count`` of them
    (the code under test writes each whole, by rename, once it is held where the test asked);
    fails with ``what`` (and the end of ``log``, the sweep's output) if they never come, or if
    ``process`` (the sweep) ends first, or ``alive()`` (a thread running it) turns false."""
    deadline = time.monotonic() + MARKER_DEADLINE_S
    while len(found := sorted(folder.glob(pattern))) < count:
        why = None
        if process is not None and process.poll() is not None:
            why = f"the sweep ended (status {process.returncode}) before {what}"
        elif alive is not None and not alive():
            why = f"the sweep ended before {what}"
        elif time.monotonic() > deadline:
            why = (
                f"{what} did not happen within {MARKER_DEADLINE_S:.0f} s ({len(found)} of "
                f"{count} {folder / pattern})"
            )
        if why:
            tail = f"; the sweep's output ends:\n{log.read_text()[-3000:]}" if log else ""
            traced = folder / faults.TRACE_FILE
            if traced.is_file():  # what the injection points saw and decided
                tail += f"\nthe fault points' trace ends:\n{traced.read_text()[-6000:]}"
            pytest.fail(why + tail)
        time.sleep(0.05)
    return found


def wait_for_marker(
    marker: Path,
    what: str,
    process: subprocess.Popen | None = None,
    alive=None,
    log: Path | None = None,
) -> dict:
    """The one marker ``marker`` (``wait_for_markers``), read."""
    wait_for_markers(marker.parent, marker.name, 1, what, process, alive, log)
    return json.loads(marker.read_text())


# Where the fault-injection points have lived: sweeps/faults.py until 7f43e02 grouped sweeps/
# into subpackages, sweeps/fit/faults.py since.
FAULT_MODULES = ("sweeps/fit/faults.py", "sweeps/faults.py")


def has_fault_points(code: Path) -> bool:
    """Whether the project's code at ``code`` (a checkout) has the fault-injection points."""
    return any((Path(code) / module).is_file() for module in FAULT_MODULES)


def ctrl_c_after_a_trial(cmd: list[str], exp: Path, log: Path, cwd=REPO, env=None) -> int:
    """Run the sweep ``cmd`` as a new process group, send it SIGINT (Ctrl-C) while its driver is
    paused right after a snapshot that is in ``exp`` and holds a finished trial and an unfinished
    one, and return its exit status (whatever Ray it started is killed afterwards). Code without
    the fault-injection points (an old commit's checkout, ``cwd``) is interrupted the old way:
    once a snapshot read shows a finished trial. ``cmd`` gets ``MID_SWEEP_ARGS``."""
    if not has_fault_points(cwd):
        return _ctrl_c_by_polling(cmd, exp, log, cwd, env)
    cmd = [*cmd, *MID_SWEEP_ARGS]
    markers = log.parent / f"{log.stem}-faults"
    env = fault_env(markers, env, **mid_sweep())
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
    """For code that predates ``sweeps/fit/faults.py``: SIGINT once a read of Tune's newest snapshot
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


def study_url_of(exp: Path) -> str:
    """The URL of the study file in the sweep folder ``exp`` (sweep.json's study_file)."""
    record = json.loads((exp / "sweep.json").read_text())
    return file_study_url(exp / (record.get("study_file") or "optuna.db"))  # before the field


def study_of(exp: Path) -> optuna.Study:
    """The sweep's Optuna study, read back from its file in the folder as a user would."""
    sweep = json.loads((exp / "sweep.json").read_text())
    return optuna.load_study(study_name=sweep["study_name"], storage=loadable(study_url_of(exp)))


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
    """Tune trial id -> the last epoch the Optuna study holds for it (reading writes nothing)."""
    return {
        t.user_attrs["trial_id"]: max(t.intermediate_values)
        for t in study_of(exp).trials
        if "trial_id" in t.user_attrs and t.intermediate_values
    }


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


# ---------------------------------------------------------------------------------------------
# What a sweep printed, its searcher without Ray, its offline W&B runs


# A line a trial's worker printed, which Ray forwards to the driver's console with this prefix
# (colour codes first on a terminal): a worker killed at shutdown may print a SystemExit traceback.
WORKER_LINE = re.compile(r"^(\x1b\[\d+m)?\(\w+ pid=\d+")


def sweeps_own_lines(text: str) -> list[str]:
    """The non-blank lines of a sweep's console output that the sweep's driver printed itself,
    without the lines Ray forwards from the trials' workers."""
    return [line for line in text.splitlines() if line.strip() and not WORKER_LINE.match(line)]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "; " in err[0], err
    return err[0]


def optuna_searcher(tmp_path, max_epochs=3):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/optuna.db")
    searcher = TrialStateOptunaSearch(
        max_epochs=max_epochs, study_name="s", storage=storage, seed=0
    )
    space = {"lr": tune.loguniform(1e-4, 1e-2), "optimizer": tune.choice(["adam", "sgd"])}
    searcher.set_search_properties("val_mse", "min", space)
    return searcher


def report_epochs(searcher, trial_id, values, complete=True, error=False):
    searcher.suggest(trial_id)
    results = [{"val_mse": v, "training_iteration": i} for i, v in enumerate(values, 1)]
    for r in results[:-1]:
        searcher.on_trial_result(trial_id, r)
    if complete:  # Tune hands the last result (the one ASHA stopped on) only to on_trial_complete
        searcher.on_trial_complete(trial_id, None if error else results[-1], error=error)
    else:
        searcher.on_trial_result(trial_id, results[-1])


def wandb_records(run_file: Path):
    """The protobuf ``Record`` messages of an offline W&B run file (run-<id>.wandb): W&B's
    LevelDB-style log, a 7-byte header then 32 KiB blocks of records (crc32, length, type)."""
    data = run_file.read_bytes()
    assert data[:4] == b":W&B", f"{run_file} is not a W&B run file"
    pos, buf = 7, b""
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a record header is padding
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:
            break
        buf += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST: a whole record
            yield wandb_internal_pb2.Record.FromString(buf)
            buf = b""


def wandb_history(run_file: Path) -> tuple[str, list[dict]]:
    """The run id and the logged rows of an offline W&B run file."""
    run_id, rows = None, []
    for record in wandb_records(run_file):
        if record.HasField("run"):
            run_id = record.run.run_id
        elif record.HasField("history"):
            items = record.history.item
            rows.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in items})
    return run_id, rows


def wandb_run_end(run_file: Path) -> dict:
    """What an offline W&B run file says beyond its rows: id, entity, tags, the summary's last
    values and the artifacts it logged (name, type)."""
    out = {"id": None, "entity": None, "tags": (), "summary": {}, "artifacts": []}
    for record in wandb_records(run_file):
        if record.HasField("run"):
            out.update(id=record.run.run_id, entity=record.run.entity, tags=tuple(record.run.tags))
        elif record.HasField("summary"):
            for item in record.summary.update:
                out["summary"][item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif record.HasField("artifact"):
            out["artifacts"].append((record.artifact.name, record.artifact.type))
    return out


def check_wandb_runs(exp: Path, table, metrics: list[str]) -> None:
    """One offline W&B run per trial, holding the trial's every epoch as results.parquet does."""
    runs = {}
    for run_file in (exp / "wandb").glob("offline-run-*/run-*.wandb"):
        run_id, rows = wandb_history(run_file)
        runs.setdefault(run_id, []).extend(rows)
    assert set(runs) == set(table["trial_id"])
    for trial_id, rows in table.groupby("trial_id"):
        logged = {r["training_iteration"]: r for r in runs[trial_id]}
        assert sorted(logged) == sorted(rows["training_iteration"]), trial_id
        for _, row in rows.iterrows():
            for m in metrics:
                assert logged[row["training_iteration"]][m] == pytest.approx(row[m]), (trial_id, m)


def mean_image_mse(splits) -> float:
    """Per-pixel MSE on the validation images of predicting the mean training image (a
    ``trainables.data.Splits``): what a model that learned nothing scores."""
    train = splits.train_x.double() / 255
    val = splits.val_x.double() / 255
    return ((val - train.mean(0)) ** 2).mean().item()


# ---------------------------------------------------------------------------------------------
# Population Based Training's decisions, without Ray running


def pbt_checked_epochs(scheduler, config: dict, epochs=(1, 2, 3, 4)) -> list[int]:
    """The epoch of ``scheduler``'s last check (Ray's ``last_perturbation_time``) after each of
    ``epochs``' results of one running trial of ``config``: PBT's or PB2's, as Tune calls it,
    every result answered CONTINUE (one trial has nobody to clone)."""
    import argparse

    from ray.tune.experiment import Trial
    from ray.tune.schedulers import TrialScheduler

    scheduler.set_search_properties("val_mse", "min")
    trial = Trial("train_autoencoder", config=config, stub=True)
    trial.set_status(Trial.RUNNING)
    scheduler.on_trial_add(argparse.Namespace(search_alg=None), trial)
    controller, checked = argparse.Namespace(get_trials=lambda: [trial]), []
    for epoch in epochs:
        result = {"training_iteration": epoch, "val_mse": 1.0 / epoch}
        assert scheduler.on_trial_result(controller, trial, result) == TrialScheduler.CONTINUE
        checked.append(scheduler._trial_state[trial].last_perturbation_time)
    return checked


# ---------------------------------------------------------------------------------------------
# optuna-dashboard, for real


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def dashboard_serving(url: str):
    """optuna-dashboard on 127.0.0.1 serving the study storage at ``url``: yields ``get(path)``,
    its HTTP API's JSON at ``path``; checks that it listens on the loopback address only, and
    stops it at the end."""
    port = free_port()
    dashboard = subprocess.Popen(
        [str(Path(sys.executable).parent / "optuna-dashboard"), "--host", "127.0.0.1"]
        + ["--port", str(port), "--quiet", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )

    def get(path: str):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return json.loads(response.read())

    try:
        deadline = time.time() + 60
        while True:
            try:
                get("/api/studies")
                break
            except OSError:
                assert dashboard.poll() is None, dashboard.stdout.read().decode()[-2000:]
                assert time.time() < deadline, "optuna-dashboard did not answer in 60 s"
                time.sleep(0.5)
        listening = {
            c.laddr.ip
            for c in psutil.Process(dashboard.pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        }
        assert listening == {"127.0.0.1"}
        yield get
    finally:
        dashboard.terminate()
        dashboard.wait(timeout=30)
