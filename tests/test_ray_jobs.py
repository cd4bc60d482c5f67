"""Ray's Jobs API, for real: a Ray head started with ``ray start --head`` on 127.0.0.1 (with its
job server), a sweep submitted to it with ``ray job submit`` and the project as the job's working
directory (``cluster/job-runtime-env.yaml``), its results checked in the storage folder and its
driver's output in the job's logs; a job stopped with ``ray job stop`` mid-sweep, and the sweep
completed by ``--resume`` in a second job. No process of that Ray listens beyond 127.0.0.1 (a
local sweep's own Ray: tests/test_reliability.py)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import (
    MID_SWEEP_ARGS,
    _terminated_in_snapshot,
    fault_plan,
    mid_sweep,
    wait_for_marker,
)
from ray_head import BIN, RayHead, listening_beyond_loopback, wait_for

from sweeps.fit.faults import VARIABLE

REPO = Path(__file__).resolve().parents[1]
RAY = str(BIN / "ray")


def submit(
    head: RayHead, sweep_args: list[str], wait: bool = True, faults: str | None = None
) -> subprocess.CompletedProcess:
    """``ray job submit`` from the repo root, as docs/cluster.md shows it; ``faults``: the job's
    fault plan (``helpers.fault_plan``), set in its driver's environment."""
    cmd = [RAY, "job", "submit", "--address", head.dashboard_url]
    cmd += ["--runtime-env", "cluster/job-runtime-env.yaml"]
    cmd += [] if wait else ["--no-wait"]
    cmd += ["--", *(["env", f"{VARIABLE}={faults}"] if faults else [])]  # (Ray quotes each)
    cmd += ["python", "sweeps/ae_sweep.py", "--address", "auto", *sweep_args]
    return head.run(cmd, cwd=REPO, timeout=400)


def job_id(submitted: subprocess.CompletedProcess) -> str:
    for line in (submitted.stdout + submitted.stderr).splitlines():
        if "submitted successfully" in line:  # "Job 'raysubmit_...' submitted successfully"
            return line.split("'")[1]
    raise AssertionError(f"no job id in:\n{submitted.stdout}\n{submitted.stderr}")


def job_status(head: RayHead, job: str) -> str:
    """The job's status as ``ray job status`` prints it: "Job '...' succeeded", "... was
    stopped", "... failed", else "Status for job '...': RUNNING" (ray/dashboard/modules/job)."""
    out = head.run([RAY, "job", "status", "--address", head.dashboard_url, job], timeout=60)
    for line in (out.stdout + out.stderr).splitlines():
        for words, status in (
            ("succeeded", "SUCCEEDED"),
            ("was stopped", "STOPPED"),
            ("failed", "FAILED"),
        ):
            if f"Job '{job}' {words}" in line:
                return status
        if f"Status for job '{job}': " in line:
            return line.rsplit(": ", 1)[1].strip()
    raise AssertionError(f"no status for job {job} in:\n{out.stdout}\n{out.stderr}")


def job_logs(head: RayHead, job: str) -> str:
    return head.run([RAY, "job", "logs", "--address", head.dashboard_url, job], timeout=60).stdout


@pytest.mark.slow
@pytest.mark.realdata
def test_a_sweep_runs_as_a_ray_job_and_resumes_after_ray_job_stop(real_data_dir, tmp_path):
    storage = tmp_path / "runs"
    common = ["--storage-path", str(storage), "--wandb-mode", "disabled"]
    with RayHead() as head:
        # 1. a smoke sweep as a job, waited for as a user would (the CLI tails its logs)
        t0 = time.time()
        done = submit(head, ["--smoke-test", "--name", "job_smoke", *common])
        seconds = time.time() - t0
        out = done.stdout + done.stderr
        assert done.returncode == 0, out[-3000:]
        assert "succeeded" in out
        exp = storage / "job_smoke"
        assert f"results in {exp}" in job_logs(head, job_id(done))
        table = pq.read_table(exp / "results.parquet").to_pandas()
        assert table["trial_id"].nunique() == 4
        best = json.loads((exp / "best.json").read_text())
        assert best["test"]["test_mse"] > 0
        sweep = json.loads((exp / "sweep.json").read_text())
        assert sweep["args"]["address"] == "auto"
        # the job ran in an uploaded copy of the project, without the folders that must not travel
        unpacked = "ray/session_latest/runtime_resources/working_dir_files/*/sweeps/ae_sweep.py"
        (script,) = Path(head.tmpdir).glob(unpacked)
        package = script.parents[1]
        assert not [d for d in (".venv", "runs", ".git") if (package / d).exists()]
        wide = listening_beyond_loopback(head.processes())
        assert not wide, f"the Ray head listens beyond 127.0.0.1: {wide}"

        # 2. `ray job stop` mid-sweep, then --resume in a new job completes it
        # Stopped while its driver is paused right after a snapshot, in the folder, that holds a
        # finished trial and an unfinished one (helpers.mid_sweep).
        stopped, markers = storage / "job_stopped", tmp_path / "faults"
        job = job_id(
            submit(
                head,
                [
                    *["--smoke-test", "--num-samples", "12", "--max-epochs", "4"],
                    *MID_SWEEP_ARGS,
                    "--name",
                    "job_stopped",
                    *common,
                ],
                wait=False,
                faults=fault_plan(markers, **mid_sweep()),
            )
        )
        wait_for_marker(markers / "driver-paused.json", "a snapshot with a finished trial")
        assert _terminated_in_snapshot(stopped)
        assert job_status(head, job) == "RUNNING", "the sweep ended before it could be stopped"
        head.run([RAY, "job", "stop", "--address", head.dashboard_url, job], timeout=120)
        wait_for(lambda: job_status(head, job) == "STOPPED", 60, "the job to stop")
        assert not (stopped / "results.parquet").exists()  # it was stopped before its end
        resumed = submit(head, ["--resume", str(stopped), "--wandb-mode", "disabled"])
        out = resumed.stdout + resumed.stderr
        assert resumed.returncode == 0, out[-3000:]
        assert "12 trials" in out, out[-3000:]
        table = pq.read_table(stopped / "results.parquet").to_pandas()
        assert table["trial_id"].nunique() == 12
    print(f"ray job submit to results (smoke sweep): {seconds:.0f} s")
