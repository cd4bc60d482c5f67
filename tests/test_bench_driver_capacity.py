"""bench/driver_capacity.py end to end at a tiny size: our sweep reporting every third epoch and
plain Ray Tune, with trainables that train nothing. Every epoch is counted, the results are the
reports (two per trial of 6 epochs at --report-every 3, six for plain), and both capacities are
in the json. About a minute on 2 CPUs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.realdata
def test_bench_driver_capacity_counts_reports_and_epochs(tmp_path):
    out = tmp_path / "capacity.json"
    argv = ["--trials", "3", "--epochs", "6", "--rounds", "1", "--max-concurrent", "2"]
    argv += ["--cpus-per-trial", "0.5", "--subset", "512", "--arms", "ours-every-3", "plain"]
    proc = subprocess.run(
        [sys.executable, "bench/driver_capacity.py", *argv, "--json", str(out)],
        cwd=REPO,
        env=dict(os.environ, OMP_NUM_THREADS="1", WANDB_MODE="offline"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (round_,) = json.loads(out.read_text())["rounds"]
    every3, plain = round_["ours-every-3"], round_["plain"]
    assert (every3["results"], every3["epochs"]) == (6, 18)  # epochs 3 and 6 of each trial
    assert (plain["results"], plain["epochs"]) == (18, 18)
    for arm in (every3, plain):
        assert arm["capacity_epochs_per_s"] >= arm["capacity_results_per_s"] > 0
