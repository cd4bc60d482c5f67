"""GPU placement on a many-node cluster, with logical GPUs: Ray grants the GPUs a raylet
declares whether or not they exist, so a local ``ray.cluster_utils.Cluster`` (a head with no
CPUs, two worker raylets declaring 2 GPUs each, all on 127.0.0.1) shows where Ray puts the
trials of the real sweep entry point (``sweeps/ae_sweep.py --address``, as a subprocess):

- ``--gpus-per-trial 0.25`` and ``0.5``: as many trials run at once as the GPUs allow (CPUs and
  ``--max-concurrent`` allow more: each trial holds after its first epoch until that many are
  held, so the count does not hang on how fast Ray starts the workers), never more than
  1/share of them on one GPU of one node, read from the trials' own records: Tune's result
  rows (when each trial trained) and the
  ``trained_on`` of their checkpoints (node, GPU ids, ``CUDA_VISIBLE_DEVICES``, torch device);
  each trial's ``CUDA_VISIBLE_DEVICES`` names exactly the GPU Ray granted it; torch sees no CUDA
  here, so the trials train on the CPU, and the summary says so in one line;
- a node that leaves mid-sweep (a third worker, its raylet stopped while its trials train)
  costs only the epochs in progress: its trials resume from their checkpoints on the other
  nodes, every epoch reported once, and the sweep ends with every trial's results.

The experiment folder is a local folder that every raylet sees because they all run on this
machine; on real machines it would have to be S3/GCS/NFS (docs/cluster.md). About 1.5-2.5
minutes on 2 CPU cores.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import helpers
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[1]
AE_SWEEP = str(REPO / "sweeps" / "ae_sweep.py")
LOOPBACK = "127.0.0.1"
WORKERS, GPUS_PER_WORKER, CPUS_PER_WORKER = 2, 2, 8
TRIAL_CPUS = 0.5  # CPUs allow 2 * 8 / 0.5 = 32 trials at once: the GPUs are what binds

# Tune's result timestamps are whole seconds (floored): a trial's interval as read back is
# shifted earlier than the real one by up to 1 s, so two intervals may seem to overlap by up to
# 1 s when one really began as the other ended. Each is trimmed by half that at both ends.
SLACK_S = 0.5

pytestmark = [pytest.mark.slow, pytest.mark.realdata]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


NODE = dict(node_ip_address=LOOPBACK, object_store_memory=100 * 2**20)


@pytest.fixture(scope="module")
def gpu_cluster(tmp_path_factory):
    """Head with no CPUs and ``WORKERS`` worker raylets of ``CPUS_PER_WORKER`` CPUs and
    ``GPUS_PER_WORKER`` (logical) GPUs each, all on 127.0.0.1, in a private Ray temp folder."""
    import ray
    from ray.cluster_utils import Cluster

    temp = tempfile.mkdtemp(prefix="lsw-gpu-")  # short: Ray's socket paths stay < 108 chars
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_TMPDIR", temp)  # no other ray.init() on this machine joins this cluster
        mp.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only, for the sweeps
        mp.setattr(ray._private.ray_constants, "ENABLE_RAY_CLUSTER", False)  # and for us
        head = dict(num_cpus=0, gcs_server_port=free_port(), include_dashboard=False)
        cluster = Cluster(initialize_head=True, head_node_args={**NODE, **head})
        try:
            workers = [
                cluster.add_node(**NODE, num_cpus=CPUS_PER_WORKER, num_gpus=GPUS_PER_WORKER)
                for _ in range(WORKERS)
            ]
            cluster.wait_for_nodes()
            yield SimpleNamespace(
                cluster=cluster, address=cluster.address, workers=[w.node_id for w in workers]
            )
        finally:
            cluster.shutdown()
            shutil.rmtree(temp, ignore_errors=True)


def sweep_argv(
    address: str, storage: Path, share: float, trials: int, epochs: int, subset: int = 512
) -> list[str]:
    argv = ["--smoke-test", "--address", address, "--storage-path", str(storage)]
    argv += ["--gpus-per-trial", str(share), "--cpus-per-trial", str(TRIAL_CPUS)]
    argv += ["--num-samples", str(trials), "--max-concurrent", str(trials)]
    # No early stopping (grace period = every epoch) and every trial's checkpoint kept: each
    # trial then trains the same epochs and leaves its trained_on behind.
    argv += ["--max-epochs", str(epochs), "--grace-period", str(epochs)]
    argv += ["--subset", str(subset), "--val-size", "256", "--keep-checkpoints", "all"]
    return argv + ["--wandb-mode", "disabled"]


def start_sweep(
    argv: list[str], cwd: Path, data_dir: Path, log: Path, env: dict | None = None
) -> subprocess.Popen:
    env = dict(env or os.environ, LATENTSWEEP_DATA=str(data_dir), OMP_NUM_THREADS="1")
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, AE_SWEEP, *argv],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def finish_sweep(proc: subprocess.Popen, log: Path, timeout: float = 240) -> str:
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log.read_text()
    assert proc.returncode == 0, output[-5000:]
    return output


def results_of(trial_dir: Path) -> list[dict]:
    """Every result Tune recorded for the trial, in order (restores append to the file)."""
    lines = (trial_dir / "result.json").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def latest_checkpoint(trial_dir: Path) -> dict:
    from trainables import checkpoints

    return checkpoints.load_checkpoint(sorted(trial_dir.glob("checkpoint_*/checkpoint.pt"))[-1])


def interval(results: list[dict]) -> tuple[float, float]:
    """When the trial trained (from its first step to its last result), trimmed by SLACK_S."""
    end = results[-1]["timestamp"]
    return end - results[-1]["time_total_s"] + SLACK_S, end - SLACK_S


def peak_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one moment (one that ends as another begins: not both)."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    open_now = peak = 0
    for _, step in events:  # at equal times -1 sorts first: ended before the next began
        open_now += step
        peak = max(peak, open_now)
    return peak


@pytest.mark.parametrize("share", [0.25, 0.5])
def test_fractional_gpu_trials_fill_the_gpus_and_never_overfill_one(
    gpu_cluster, real_data_dir, tmp_path, share
):
    per_gpu = round(1 / share)
    capacity = WORKERS * GPUS_PER_WORKER * per_gpu  # 16 at 0.25, 8 at 0.5
    assert capacity < WORKERS * CPUS_PER_WORKER / TRIAL_CPUS  # the CPUs would allow more
    trials, epochs = capacity + 4, 5  # more trials than fit: some must wait for a GPU share
    storage, log = tmp_path / "runs", tmp_path / "sweep.log"
    argv = sweep_argv(gpu_cluster.address, storage, share, trials, epochs)
    # Every trial holds after its first epoch (sweeps/fit/faults.py) until `capacity` of them
    # are held at once: the GPUs filled, whatever the pace at which Ray starts the workers.
    markers = tmp_path / "faults"
    holds = [{"trial": k, "epoch": 1} for k in range(trials)]
    proc = start_sweep(
        argv, tmp_path, real_data_dir, log, env=helpers.fault_env(markers, hold=holds)
    )
    try:
        held = helpers.wait_for_markers(
            markers, "held-trial*-epoch1.json", capacity, f"{capacity} trials held", proc, log=log
        )
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        for k in range(trials):  # those not held yet go straight on when they get there
            (markers / f"go-trial{k}-epoch1").touch()
    assert len(held) == capacity, held  # as many at once as the GPUs allow, no more
    output = finish_sweep(proc, log)

    exp = storage / "ae_sweep_smoke"
    table = pq.read_table(exp / "results.parquet").to_pandas()
    assert table["trial_id"].nunique() == trials, output[-5000:]
    assert set(table["status"]) == {"TERMINATED"} and len(table) == trials * epochs
    assert json.loads((exp / "sweep.json").read_text())["resources_per_trial"]["gpu"] == share

    spans, by_gpu = [], collections.defaultdict(list)
    for trial_dir in sorted(exp.glob("train_autoencoder_*")):
        results = results_of(trial_dir)
        assert [r["epoch"] for r in results] == list(range(1, epochs + 1)), trial_dir.name
        # One run in one worker, never restored: where its latest checkpoint was trained is
        # where the whole interval was spent.
        assert [r["iterations_since_restore"] for r in results] == list(range(1, epochs + 1))
        assert len({r["pid"] for r in results}) == 1, trial_dir.name
        trained_on = latest_checkpoint(trial_dir)["trained_on"]
        assert trained_on["node_id"] in gpu_cluster.workers, "a trial ran on the CPU-less head"
        # One GPU id per fractional share, and the worker sees exactly that GPU.
        assert len(trained_on["gpu_ids"]) == 1, trained_on
        assert trained_on["gpu_ids"][0] in [str(g) for g in range(GPUS_PER_WORKER)], trained_on
        assert trained_on["cuda_visible_devices"] == trained_on["gpu_ids"][0], trained_on
        assert trained_on["device"] == "cpu", "torch sees no CUDA here: the CPU it must be"
        span = interval(results)
        spans.append(span)
        by_gpu[(trained_on["node_id"], trained_on["gpu_ids"][0])].append((trial_dir.name, span))
    assert len(spans) == trials

    # Every GPU of every worker was used, by at most 1/share trials at any moment ...
    expected_gpus = {(n, str(g)) for n in gpu_cluster.workers for g in range(GPUS_PER_WORKER)}
    assert set(by_gpu) == expected_gpus, sorted(by_gpu)
    for gpu, held in by_gpu.items():
        assert peak_overlap([s for _, s in held]) <= per_gpu, (gpu, held)
    # ... and together never more than the GPUs allow (that they filled them: the hold above).
    assert peak_overlap(spans) <= capacity, sorted(spans)

    # Granted GPUs, trained on the CPU: the summary says so in one line.
    notes = [line for line in output.splitlines() if "trained on the CPU" in line]
    assert len(notes) == 1, output[-3000:]
    assert notes[0].startswith("ae_sweep: note: trials were granted GPUs but trained on the CPU")
    best = json.loads((exp / "best.json").read_text())
    assert best["trained_on"]["device"] == "cpu" and len(best["trained_on"]["gpu_ids"]) == 1


def trials_training_on(exp: Path, node_id: str, epochs: range) -> dict[str, int]:
    """Trials whose latest checkpoint was written on ``node_id`` at one of ``epochs``, with
    that epoch."""
    found = {}
    for trial_dir in exp.glob("train_autoencoder_*"):
        try:
            payload = latest_checkpoint(trial_dir)
        except Exception:  # none yet, or one being copied in right now
            continue
        if payload["trained_on"]["node_id"] == node_id and payload["epoch"] in epochs:
            found[trial_dir.name] = payload["epoch"]
    return found


def test_a_node_that_leaves_costs_only_the_epochs_in_progress(gpu_cluster, real_data_dir, tmp_path):
    """A third worker with 2 GPUs joins; 6 trials of one GPU each need all 6 GPUs, so 2 of
    them train there. Its raylet is stopped (SIGTERM, then SIGKILL: ``Cluster.remove_node``)
    once one of them has checkpointed its third epoch: those trials resume from their latest
    checkpoints on the other workers, when a GPU is free there.

    Tune registers a trial's checkpoint only after a ``save`` round trip with the trial's actor
    that follows the result: a node lost in between (likely here, where the raylet is stopped
    the moment a checkpoint appears) also costs that last reported epoch, which the trial then
    trains again. So: at most the epoch in progress and the last reported one."""
    cluster = gpu_cluster.cluster
    leaving = cluster.add_node(**NODE, num_cpus=CPUS_PER_WORKER, num_gpus=GPUS_PER_WORKER)
    cluster.wait_for_nodes()
    staying = set(gpu_cluster.workers)
    trials, epochs = WORKERS * GPUS_PER_WORKER + GPUS_PER_WORKER, 8
    storage, log = tmp_path / "runs", tmp_path / "sweep.log"
    exp = storage / "ae_sweep_smoke"
    argv = sweep_argv(gpu_cluster.address, storage, 1, trials, epochs, subset=1024)
    proc = start_sweep(argv, tmp_path, real_data_dir, log)
    removed = False
    try:
        deadline, moved = time.time() + 150, {}
        while time.time() < deadline and proc.poll() is None and not moved:
            moved = trials_training_on(exp, leaving.node_id, range(3, epochs - 3))
            time.sleep(0.1)
        assert moved, "no trial checkpointed on the third node: " + log.read_text()[-3000:]
        cluster.remove_node(leaving)  # its workers die with the raylet, mid-epoch
        removed = True
        output = finish_sweep(proc, log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if not removed:
            cluster.remove_node(leaving)

    table = pq.read_table(exp / "results.parquet").to_pandas()
    assert table["trial_id"].nunique() == trials, output[-5000:]
    # Every epoch of every trial, the restored ones' too (Ray's own result loggers lost those
    # reported since Tune's last sync of the trial's result.json: sweeps/runner.py)
    assert set(table["status"]) == {"TERMINATED"} and len(table) == trials * epochs
    assert "Trial task failed" in output and "its node has died" in output  # as Ray saw it

    restored = {}
    for trial_dir in sorted(exp.glob("train_autoencoder_*")):
        results = results_of(trial_dir)
        starts = [i for i, r in enumerate(results) if r["iterations_since_restore"] == 1]
        runs = [results[a:b] for a, b in zip(starts, [*starts[1:], len(results)], strict=True)]
        assert len(runs) <= 2, (trial_dir.name, starts)  # one restore at most
        # Each run reports consecutive epochs; a restored run begins where the first one's
        # results end, or one epoch before (the last, unregistered one): never at epoch 1.
        for run in runs:
            got = [r["epoch"] for r in run]
            assert got == list(range(got[0], got[0] + len(got))), (trial_dir.name, got)
        assert runs[0][0]["epoch"] == 1 and runs[-1][-1]["epoch"] == epochs, trial_dir.name
        if len(runs) == 2:
            first, second = runs
            assert second[0]["epoch"] in (first[-1]["epoch"], first[-1]["epoch"] + 1), (
                trial_dir.name,
                [r["epoch"] for r in results],
            )
            assert {r["pid"] for r in first}.isdisjoint(r["pid"] for r in second)
            restored[trial_dir.name] = second[0]["epoch"]
        # The final checkpoint: every epoch once in its history, one trial's work from epoch 1.
        payload = latest_checkpoint(trial_dir)
        assert payload["epoch"] == epochs
        assert [h["epoch"] for h in payload["history"]] == list(range(1, epochs + 1))
        assert payload["lineage"] == [
            {"trial_id": trial_dir.name.rpartition("_")[2], "first_epoch": 1, "last_epoch": epochs}
        ]
        assert payload["trained_on"]["node_id"] in staying  # where every trial ended
    # The trials seen checkpointing on the node that left resumed on another node, from the
    # checkpoint they had there (at the epoch seen, or the one before while Tune had not yet
    # registered it), not from scratch; no trial of the other nodes was restored (at most the
    # leaving node's 2 GPUs' worth were).
    for name, epoch in moved.items():
        assert name in restored and restored[name] >= epoch >= 3, (moved, restored)
    assert len(restored) <= GPUS_PER_WORKER, (moved, restored)
    assert "trained on the CPU" in output  # the note, as in any sweep granted GPUs here
