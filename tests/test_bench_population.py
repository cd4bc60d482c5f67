"""bench/population_live.py end to end at a tiny size: one seed's pair of real GAN sweeps (PBT
and PB2 from the same random population), every run's figures read back from its folder, the
paired summary, the figure; then --resume runs nothing that is done."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.realdata
def test_bench_population_runs_a_pair_per_seed_and_summarises_it(real_data_dir, tmp_path):
    out, figure = tmp_path / "pop.json", tmp_path / "pop.png"
    cmd = [sys.executable, "bench/population_live.py", "--seeds", "1", "--population", "4"]
    cmd += ["--epochs", "5", "--interval", "1", "--subset", "2000", "--runs", str(tmp_path / "r")]
    cmd += ["--json", str(out), "--figure", str(figure)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert sorted((r["method"], r["seed"]) for r in result["runs"]) == [("pb2", 0), ("pbt", 0)]
    for run in result["runs"]:
        best = json.loads((Path(run["folder"]) / "best.json").read_text())
        assert run["test_fid"] == best["test"]["test_fid"] > 0
        sweep = json.loads((Path(run["folder"]) / "sweep.json").read_text())
        assert sweep["args"]["seed"] == 0 and sweep["args"]["scheduler"] == run["method"]
        # about 4 trials x 5 epochs: a clone redoes epochs from an older checkpoint of its
        # donor, or skips some from a newer one
        assert 12 <= run["trial_epochs"] <= 28 and len(run["anytime"]) == run["trial_epochs"]
        curve = [y for _, y in run["anytime"]]
        assert curve == sorted(curve, reverse=True)  # best so far: never worse
        assert curve[-1] <= run["best_val_fid"]
    (pair,) = result["summary"]["per_seed"]
    assert pair["pb2_test_fid"] - pair["pbt_test_fid"] == pytest.approx(
        result["summary"]["test_fid"]["median_diff_pb2_minus_pbt"]
    )
    assert figure.stat().st_size > 10_000

    again = subprocess.run(
        cmd + ["--resume"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert " seed 0: " not in again.stdout  # no run's line: nothing was run again
    assert json.loads(out.read_text())["runs"] == result["runs"]
