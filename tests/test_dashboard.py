"""optuna-dashboard, for real, on a smoke sweep's study: started on 127.0.0.1 as the sweep's summary
prints it, its HTTP API lists every trial of the study with its state (PRUNED included) and its
intermediate values, and it stops when asked."""

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import psutil
import pytest

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.slow
@pytest.mark.realdata
def test_optuna_dashboard_serves_every_trial_of_a_sweep(real_data_dir, tmp_path):
    sweep = subprocess.run(
        [sys.executable, "sweeps/ae_sweep.py", "--smoke-test", "--wandb-mode", "disabled"]
        + ["--storage-path", str(tmp_path), "--name", "dash"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert sweep.returncode == 0, sweep.stdout[-2000:] + sweep.stderr[-2000:]
    url = f"sqlite:///{tmp_path / 'dash' / 'optuna.db'}"
    assert f"optuna-dashboard --host 127.0.0.1 {url}" in sweep.stdout  # the printed next step

    study = optuna.load_study(study_name="dash", storage=url)
    assert any(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    port = _free_port()
    dashboard = subprocess.Popen(
        [str(Path(sys.executable).parent / "optuna-dashboard"), "--host", "127.0.0.1"]
        + ["--port", str(port), "--quiet", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while True:
            try:
                studies = _get(f"{base}/api/studies")["study_summaries"]
                break
            except OSError:
                assert dashboard.poll() is None, dashboard.stdout.read().decode()[-2000:]
                assert time.time() < deadline, "optuna-dashboard did not answer in 60 s"
                time.sleep(0.5)
        (summary,) = [s for s in studies if s["study_name"] == "dash"]
        detail = _get(f"{base}/api/studies/{summary['study_id']}")
        served = {t["number"]: t for t in detail["trials"]}
        assert set(served) == {t.number for t in study.trials}
        for trial in study.trials:
            shown = served[trial.number]
            assert shown["state"].upper() == trial.state.name
            values = {v["step"]: v["value"] for v in shown["intermediate_values"]}
            assert values == pytest.approx(trial.intermediate_values)
        # It listens on the loopback address only.
        listening = {
            c.laddr.ip
            for c in psutil.Process(dashboard.pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        }
        assert listening == {"127.0.0.1"}
    finally:
        dashboard.terminate()
        dashboard.wait(timeout=30)
    assert dashboard.returncode is not None
