"""The Slurm template, for real: ``sbatch cluster/slurm.sbatch --smoke-test`` on a one-node Slurm
that the test starts on this machine (tests/slurm_cluster.py), a Ray head started by ``srun``
inside the job, the sweep's driver joining it with ``--address``, and the results checked in the
storage folder. Slurm's and Ray's daemons are stopped afterwards."""

import json
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from ray_head import free_port
from slurm_cluster import SlurmCluster

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.realdata
def test_the_slurm_template_runs_a_sweep(real_data_dir, tmp_path):
    storage = tmp_path / "runs"
    exp = storage / "slurm_smoke"
    ray_dir = Path(tempfile.mkdtemp(prefix="ray-slurm-"))  # short: Ray's socket paths must fit
    env = {
        "PROJECT": str(REPO),
        "STORAGE": str(storage),
        "HEAD_IP": "127.0.0.1",  # one node: Ray stays on the loopback address
        "RAY_PORT": str(free_port()),  # below 10000: clear of the worker ports Ray takes
        "RAY_TMPDIR": str(ray_dir),  # Ray's session files, kept apart from other tests' Ray
    }
    batch = ["--nodes=1", "--cpus-per-task=2", f"--output={tmp_path}/job-%j.log"]
    batch.append(str(REPO / "cluster" / "slurm.sbatch"))
    with SlurmCluster() as slurm:
        t0 = time.time()
        job = slurm.sbatch(
            [*batch, "--smoke-test", "--wandb-mode", "disabled", "--name", "slurm_smoke"],
            env=env,
            cwd=tmp_path,
        )
        state = slurm.wait(job)
        seconds = time.time() - t0
        log = (tmp_path / f"job-{job}.log").read_text()
        assert state == "COMPLETED", f"job {job} {state}:\n{log[-3000:]}"
        # --resume through the template (it then gives the sweep no --storage-path): a finished
        # sweep resumes to the same trials
        again = slurm.sbatch(
            [*batch, "--resume", str(exp), "--wandb-mode", "disabled"], env, tmp_path
        )
        state = slurm.wait(again)
        resumed = (tmp_path / f"job-{again}.log").read_text()
        assert state == "COMPLETED", f"job {again} {state}:\n{resumed[-3000:]}"
        assert f"results in {exp}" in resumed and "4 trials" in resumed
    print(f"sbatch to results: {seconds:.0f} s")
    # the template removed its record of the stopped cluster (a later ray.init() would join it)
    assert not (ray_dir / "ray" / "ray_current_cluster").exists()
    assert "Ray head on localhost (127.0.0.1:" in log
    assert f"results in {exp}" in log
    table = pq.read_table(exp / "results.parquet").to_pandas()
    assert table["trial_id"].nunique() == 4
    best = json.loads((exp / "best.json").read_text())
    assert best["trial_id"] in set(table["trial_id"]) and best["test"]["test_mse"] > 0
    sweep = json.loads((exp / "sweep.json").read_text())
    assert sweep["args"]["address"].startswith("127.0.0.1:")  # it joined the job's Ray
