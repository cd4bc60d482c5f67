"""The Optuna study in a real PostgreSQL server (``--study-storage postgresql://...``): a smoke
sweep; two sweeps sharing the server at once; a driver killed mid-sweep and resumed from the same
database; ``optuna.load_study`` from another process sees every trial with its state; and the
password is written nowhere: not in any file the sweeps wrote, nor in Ray's session folder.

The server is started by the test itself (tests/postgres_server.py: Debian's ``postgresql``,
``initdb`` in a temporary folder, the ``postgres`` user, 127.0.0.1 on a free port, SCRAM
password authentication)."""

import os
import secrets
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import helpers
import optuna
import pyarrow.parquet as pq
import pytest
from optuna.trial import TrialState
from postgres_server import PostgresServer

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "pg-" + secrets.token_hex(12)  # distinctive: grepped for in everything written


@pytest.fixture(scope="module")
def server():
    with PostgresServer(password=PASSWORD) as s:
        s.create_database("studies")
        yield s


def _sweep(storage: Path, name: str, url: str, *extra: str) -> list[str]:
    return [sys.executable, "sweeps/ae_sweep.py", "--smoke-test", "--wandb-mode", "offline"] + [
        "--storage-path",
        str(storage),
        "--name",
        name,
        "--study-storage",
        url,
        *extra,
    ]


def _files_holding(root: Path, needle: bytes) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if needle in path.read_bytes():
                    found.append(str(path))
            except OSError:
                pass
    return found


def _check_study(url: str, exp: Path, name: str, epochs: int) -> None:
    """The study, read by this (another) process, agrees with the sweep's results.parquet."""
    study = optuna.load_study(study_name=name, storage=url)
    table = pq.read_table(exp / "results.parquet").to_pandas()
    live = {t.user_attrs["trial_id"]: t for t in study.trials if t.state != TrialState.FAIL}
    assert set(live) == set(table["trial_id"])
    for trial_id, rows in table.groupby("trial_id"):
        values = dict(zip(rows["training_iteration"], rows["val_mse"], strict=True))
        assert live[trial_id].intermediate_values == pytest.approx(values)
        pruned = bool(rows["stopped_early"].iloc[0])
        assert live[trial_id].state == (TrialState.PRUNED if pruned else TrialState.COMPLETE)


@pytest.mark.slow
@pytest.mark.realdata
def test_two_sweeps_share_a_postgres_study_server_and_the_password_is_nowhere(
    real_data_dir, server, tmp_path
):
    url = server.url("studies")
    ray_dir = Path(tempfile.mkdtemp(prefix="ray-pg-"))  # short: Ray's socket paths must fit
    env = {**os.environ, "RAY_TMPDIR": str(ray_dir)}  # Ray's session logs, grepped below
    procs = [
        subprocess.Popen(
            _sweep(tmp_path, name, url),
            cwd=REPO,
            env={**env, "OMP_NUM_THREADS": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name in ("pg_a", "pg_b")
    ]
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    for proc, out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out[-3000:]
        assert PASSWORD not in out
    for name in ("pg_a", "pg_b"):
        _check_study(url, tmp_path / name, name, 2)
    assert {"pg_a", "pg_b"} <= set(optuna.get_all_study_names(url))
    assert _files_holding(tmp_path, PASSWORD.encode()) == []
    assert list(ray_dir.rglob("*.log")), "Ray wrote no session logs where they were looked for"
    assert _files_holding(ray_dir, PASSWORD.encode()) == []


@pytest.mark.slow
@pytest.mark.realdata
def test_a_killed_driver_resumes_from_the_same_postgres_study(real_data_dir, server, tmp_path):
    url = server.url("studies")
    exp = tmp_path / "pg_kill"
    ray_dir = Path(tempfile.mkdtemp(prefix="ray-pg-"))
    env = {**os.environ, "RAY_TMPDIR": str(ray_dir)}
    cmd = _sweep(tmp_path, "pg_kill", url, "--num-samples", "5", "--max-epochs", "3")
    cmd += helpers.MID_SWEEP_ARGS
    # Killed while the driver is paused right after a snapshot, in the folder, that holds a
    # finished trial and an unfinished one (helpers.mid_sweep): mid-sweep, whatever the timing.
    with open(tmp_path / "first.log", "w") as log:
        driver = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=helpers.fault_env(tmp_path / "faults", env, **helpers.mid_sweep()),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            helpers.wait_for_marker(
                tmp_path / "faults" / "driver-paused.json",
                "a snapshot with a finished trial",
                driver,
                log=tmp_path / "first.log",
            )
        finally:
            os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray it started
            driver.wait(timeout=60)

    # The password is in no file the killed driver left, so --resume asks for it again: from
    # $LATENTSWEEP_STUDY_STORAGE here (the flag given again works the same).
    assert _files_holding(exp, PASSWORD.encode()) == []
    refused = subprocess.run(
        [sys.executable, "sweeps/ae_sweep.py", "--resume", str(exp)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode == 2, refused.stdout[-2000:] + refused.stderr[-2000:]
    assert "LATENTSWEEP_STUDY_STORAGE" in refused.stderr.strip().splitlines()[-1]
    resumed = subprocess.run(
        [sys.executable, "sweeps/ae_sweep.py", "--resume", str(exp), "--wandb-mode", "offline"],
        cwd=REPO,
        env={**env, "LATENTSWEEP_STUDY_STORAGE": url},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    table = pq.read_table(exp / "results.parquet").to_pandas()
    assert table["trial_id"].nunique() == 5
    _check_study(url, exp, "pg_kill", 3)
    assert _files_holding(tmp_path, PASSWORD.encode()) == []
    assert _files_holding(ray_dir, PASSWORD.encode()) == []
