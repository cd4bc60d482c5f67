"""Cluster: sweeps as they run on a Ray cluster, with the cluster and the object store on this
machine.

- A sweep with ``--storage-path s3://...`` against an S3 server on 127.0.0.1 (moto) writes
  everything to the bucket and nothing to its working directory; stopped with Ctrl-C (SIGINT)
  and resumed with ``--resume s3://...`` as on another machine (the driver's copy of the study
  deleted), it finishes from what is in the bucket.
- A real multi-node Ray cluster (a head with no CPUs and two one-CPU worker raylets, all on
  127.0.0.1): ``sweeps/ae_sweep.py --address`` spreads its trials over both workers, which have
  no dataset (the driver ships it through the object store), warns that its local storage path
  is only shared because every node is on this machine, and every trial's results reach the
  experiment folder; ``--study-storage`` puts the study in the database it names.
- A trial given no GPU runs on the CPU even where torch sees a GPU; one given a GPU uses it.

The sweeps run as subprocesses, as they would on a head node. About 2-3 minutes on 2 CPU cores.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import helpers
import optuna
import pyarrow.parquet as pq
import pytest
import torch
from optuna.trial import TrialState

from sweeps.folder import storage as experiment
from sweeps.folder.layout import trial_dirname
from sweeps.folder.study_url import loadable
from trainables import autoencoder, checkpoints, devices

REPO = Path(__file__).resolve().parents[1]
AE_SWEEP = str(REPO / "sweeps" / "ae_sweep.py")
TRAINABLE = autoencoder.TRAINABLE.__name__  # trial folders: <trainable>_<trial id>
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def run_sweep(argv: list[str], cwd: Path, env: dict[str, str], log: Path, timeout: float = 300):
    """Run sweeps/ae_sweep.py to its end; its output goes to ``log`` (shown if it fails)."""
    with open(log, "w") as out:
        proc = subprocess.run(
            [sys.executable, AE_SWEEP, *argv],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )
    output = log.read_text()
    assert proc.returncode == 0, output[-5000:]
    return output


def read_checkpoint(data: bytes) -> dict:
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


# ---------------------------------------------------------------------------------------------
# S3 (moto on 127.0.0.1)


@pytest.fixture
def s3(monkeypatch, tmp_path):
    """A bucket ``sweeps`` on a moto S3 server; the AWS_* variables of this process (and so of
    the sweeps it starts) hold fake credentials, and no real AWS config is read."""
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    fake = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)
    for key, value in fake.items():
        monkeypatch.setenv(key, value)
    werkzeug = logging.getLogger("werkzeug")
    level = werkzeug.level
    werkzeug.setLevel(logging.ERROR)  # the server logs one line per request otherwise
    server = moto_server.ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        client = boto3.client("s3", endpoint_url=f"http://{host}:{port}")
        client.create_bucket(Bucket="sweeps")
        yield client, f"endpoint_override={host}:{port}&scheme=http&region=us-east-1"
    finally:
        server.stop()
        werkzeug.setLevel(level)


def keys_under(client, prefix: str) -> set[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket="sweeps", Prefix=prefix)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def terminated_in_snapshot(client, prefix: str) -> int:
    """Trials that Tune's newest experiment snapshot in the bucket records as TERMINATED."""
    states = sorted(k for k in keys_under(client, prefix) if "/experiment_state-" in k)
    if not states:
        return 0
    snapshot = json.loads(client.get_object(Bucket="sweeps", Key=states[-1])["Body"].read())
    return sum(json.loads(t)["status"] == "TERMINATED" for t, _ in snapshot["trial_data"])


@pytest.mark.slow
@pytest.mark.realdata
def test_s3_sweep_writes_only_to_the_bucket_and_resumes_from_it(s3, real_data_dir, tmp_path):
    client, query = s3
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    cache = tmp_path / "cache"  # where the driver keeps an s3 sweep's SQLite study
    env = dict(os.environ, LATENTSWEEP_DATA=str(real_data_dir), LATENTSWEEP_CACHE=str(cache))
    exp_uri = f"s3://sweeps/runs/s3_sweep?{query}"
    argv = ["--smoke-test", "--storage-path", f"s3://sweeps/runs?{query}", "--name", "s3_sweep"]
    argv += ["--num-samples", "6", "--max-epochs", "3", "--num-cpus", "2"]
    argv += ["--wandb-mode", "disabled", *helpers.MID_SWEEP_ARGS]

    # Ctrl-C once a trial has finished (the driver paused right after a snapshot in the bucket
    # that holds a finished trial and an unfinished one: helpers.mid_sweep): Tune saves its state
    # to the bucket and the sweep ends.
    with open(tmp_path / "first.log", "w") as log:
        driver = subprocess.Popen(
            [sys.executable, AE_SWEEP, *argv],
            cwd=cwd,
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
            assert terminated_in_snapshot(client, "runs/s3_sweep/") >= 1  # in the bucket
            driver.send_signal(signal.SIGINT)  # Ctrl-C: Tune's handler also ends the pause
            exit_code = driver.wait(timeout=180)  # 130: interrupted, as after Ctrl-C
            assert exit_code == 130, (tmp_path / "first.log").read_text()[-3000:]
        finally:
            with contextlib.suppress(ProcessLookupError):  # the driver and the Ray it started
                os.killpg(driver.pid, signal.SIGKILL)
    assert "stopped before all 6 trials finished" in (tmp_path / "first.log").read_text()
    before = keys_under(client, "runs/s3_sweep/")
    assert "runs/s3_sweep/optuna.journal" in before and "runs/s3_sweep/best.json" not in before

    # Resume as on another machine: the driver's own copy of the study is gone.
    shutil.rmtree(cache)
    output = run_sweep(["--resume", exp_uri, "--num-cpus", "2"], cwd, env, tmp_path / "resume.log")
    assert "results in s3://sweeps/runs/s3_sweep" in output

    assert not list(cwd.iterdir()), "the sweep wrote into its working directory"
    keys = keys_under(client, "runs/s3_sweep/")
    exp = experiment.Folder(exp_uri)
    table = pq.read_table(io.BytesIO(exp.read_bytes("results.parquet"))).to_pandas()
    trial_ids = set(table["trial_id"])
    assert len(trial_ids) == 6 and set(table["status"]) == {"TERMINATED"}, output[-5000:]
    assert not table.duplicated(["trial_id", "training_iteration"]).any()
    best = exp.read_json("best.json")
    assert best["trial_id"] in trial_ids
    # Every trial's metrics are in the bucket; the pruner (--keep-checkpoints best, through
    # pyarrow's S3 file system) left checkpoints to the best trial only.
    for trial_id in trial_ids:
        trial = f"runs/s3_sweep/{trial_dirname(TRAINABLE, trial_id)}/"
        assert trial + "result.json" in keys
        checkpoints = sorted(
            k for k in keys if k.startswith(trial + "checkpoint_") and k.endswith("/checkpoint.pt")
        )
        if trial_id == best["trial_id"]:
            assert checkpoints, f"no checkpoint of the best trial {trial_id} in the bucket"
            latest = read_checkpoint(exp.read_bytes(checkpoints[-1].removeprefix("runs/s3_sweep/")))
            assert latest["trained_on"]["device"] == "cpu"
        else:
            assert not checkpoints, f"trial {trial_id} ended and is not the best: {checkpoints}"

    assert best["checkpoint"].startswith("s3://sweeps/runs/s3_sweep/best/checkpoint.pt?")
    assert read_checkpoint(exp.read_bytes("best/checkpoint.pt"))["kind"] == "autoencoder"
    assert len(exp.read_json("sweep.json")["resumes"]) == 1

    # The study, fetched back from the bucket, continued: one finished Optuna trial per trial.
    (tmp_path / "optuna.journal").write_bytes(exp.read_bytes("optuna.journal"))
    study = optuna.load_study(
        study_name="s3_sweep", storage=loadable(f"journal:///{tmp_path}/optuna.journal")
    )
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert {t.user_attrs["trial_id"] for t in finished} == trial_ids

    # The report reads the sweep where it is, through pyarrow's S3 file system: its files are
    # copied beside the report (default: ./<name>-report), and the bucket is left as it was.
    where = tmp_path / "report-cwd"
    where.mkdir()
    fast = ["--max-test-images", "1000", "--tsne-samples", "150"]
    report = subprocess.run(
        [sys.executable, str(REPO / "analysis" / "report.py"), exp_uri, *fast],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert report.returncode == 0, report.stderr[-3000:]
    out = where / "s3_sweep-report"
    assert (out / "sweep" / "sweep.json").is_file() and (out / "sweep" / "optuna.journal").is_file()
    for name in ("index.html", "optimization_history.png", "learning_curves.png"):
        assert (out / name).is_file(), (name, report.stdout[-2000:])
    assert (out / "reconstructions.png").is_file(), report.stdout[-2000:]  # the best checkpoint
    assert keys_under(client, "runs/s3_sweep/") == keys  # the report only read the bucket
    missing = subprocess.run(
        [sys.executable, str(REPO / "analysis" / "report.py"), f"s3://sweeps/runs/none?{query}"],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2 and "is not a sweep folder (no sweep.json)" in missing.stderr


# ---------------------------------------------------------------------------------------------
# A multi-node Ray cluster on this machine


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Head (0 CPUs: no trial runs there) and two worker raylets with 1 CPU each, all listening
    on 127.0.0.1; the second worker also declares one (fake) GPU. The workers' LATENTSWEEP_DATA
    points nowhere, so a trial that read FashionMNIST from disk there would fail."""
    import ray
    from ray.cluster_utils import Cluster

    no_data = str(tmp_path_factory.mktemp("no-data") / "missing")
    # Ray writes the cluster's address to <temp>/ray/ray_current_cluster, and any ray.init()
    # without an address on this machine would join the cluster named there: keep it private.
    # (Short: Ray's socket paths under it must stay below 108 characters.)
    temp = tempfile.mkdtemp(prefix="lsw-ray-")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_TMPDIR", temp)
        # Ray turns a 127.0.0.1 address into the machine's public IP unless it is told that this
        # is a loopback-only cluster (the switch is named after Windows/macOS, where it is so).
        mp.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # for the sweep subprocesses
        mp.setattr(ray._private.ray_constants, "ENABLE_RAY_CLUSTER", False)  # for this process
        node = dict(node_ip_address=LOOPBACK, object_store_memory=100 * 2**20)
        head = dict(num_cpus=0, gcs_server_port=free_port(), include_dashboard=False)
        cluster = Cluster(initialize_head=True, head_node_args={**node, **head})
        try:
            workers = [
                cluster.add_node(
                    **node, num_cpus=1, num_gpus=gpus, env_vars={"LATENTSWEEP_DATA": no_data}
                )
                for gpus in (0, 1)
            ]
            cluster.wait_for_nodes()
            yield SimpleNamespace(
                address=cluster.address, workers=[w.node_id for w in workers], no_data=no_data
            )
        finally:
            cluster.shutdown()
            shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.realdata
def test_sweep_spreads_trials_over_the_worker_nodes(cluster, real_data_dir, tmp_path):
    storage, study = tmp_path / "runs", f"sqlite:///{tmp_path}/study.db"
    argv = ["--smoke-test", "--address", cluster.address, "--storage-path", str(storage)]
    argv += ["--cpus-per-trial", "1", "--gpus-per-trial", "0", "--study-storage", study]
    # every trial's checkpoints kept: each records the node it trained on (trained_on)
    argv += ["--wandb-mode", "disabled", "--keep-checkpoints", "all"]
    env = dict(os.environ, LATENTSWEEP_DATA=str(real_data_dir))  # the driver has the data
    output = run_sweep(argv, tmp_path, env, tmp_path / "sweep.log")

    # On one machine the local folder is shared by every node; on real machines it would not be.
    warnings = [line for line in output.splitlines() if line.startswith("warning: ")]
    assert any("is a local path, but the Ray cluster has 3 nodes" in w for w in warnings), output
    assert any("s3://" in w for w in warnings)

    exp = storage / "ae_sweep_smoke"
    table = pq.read_table(exp / "results.parquet").to_pandas()
    trial_ids = set(table["trial_id"])
    assert len(trial_ids) == 4 and set(table["status"]) == {"TERMINATED"}, output[-5000:]
    assert "trained_on" not in table.columns  # a record of the checkpoint, not a metric
    best = json.loads((exp / "best.json").read_text())
    assert best["trial_id"] in trial_ids and (exp / "best" / "checkpoint.pt").is_file()

    trained_on = {}
    for trial_id in trial_ids:
        trial_dir = exp / trial_dirname(TRAINABLE, trial_id)
        assert (trial_dir / "result.json").read_text().strip()
        latest = sorted(trial_dir.glob("checkpoint_*/checkpoint.pt"))[-1]
        trained_on[trial_id] = checkpoints.load_checkpoint(latest)["trained_on"]
    nodes = {t["node_id"] for t in trained_on.values()}
    assert nodes <= set(cluster.workers), "a trial ran on the head, which has no CPUs"
    assert len(nodes) == 2, f"all trials ran on one node: {trained_on}"
    assert {t["device"] for t in trained_on.values()} == {"cpu"}  # --gpus-per-trial 0
    assert all(t["gpu_ids"] == [] for t in trained_on.values())

    # --study-storage: the study is in the database named, not in the experiment folder.
    assert json.loads((exp / "sweep.json").read_text())["study_file"] is None
    assert not (exp / "optuna.db").exists() and not (exp / "optuna.journal").exists()
    ot_trials = optuna.load_study(study_name="ae_sweep_smoke", storage=study).trials
    assert {t.user_attrs["trial_id"] for t in ot_trials} == trial_ids


@pytest.mark.slow
def test_trials_follow_their_gpu_grant_on_worker_nodes_without_data(cluster):
    """On the node with a GPU, torch is made to see one, as on a real GPU node: a task given no
    GPU must still get the CPU from device 'auto', one given the GPU gets cuda. And the workers
    really lack the data (what the sweep above relies on to show trials never read it)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=0, max_calls=1)  # max_calls: the patched worker process exits after
    def device() -> tuple[str, str | None]:
        torch.cuda.is_available = lambda: True
        return str(devices.resolve_device("auto")), os.environ.get("CUDA_VISIBLE_DEVICES")

    @ray.remote(num_cpus=0)
    def data_dir() -> str | None:
        return os.environ.get("LATENTSWEEP_DATA")

    def on(node_id: str) -> NodeAffinitySchedulingStrategy:
        return NodeAffinitySchedulingStrategy(node_id, soft=False)

    gpu_node = cluster.workers[1]
    ray.init(address=cluster.address, logging_level="WARNING")
    try:
        without_gpu = ray.get(device.options(num_gpus=0, scheduling_strategy=on(gpu_node)).remote())
        with_gpu = ray.get(device.options(num_gpus=1, scheduling_strategy=on(gpu_node)).remote())
        data_dirs = ray.get(
            [data_dir.options(scheduling_strategy=on(n)).remote() for n in cluster.workers]
        )
    finally:
        ray.shutdown()
    assert without_gpu[0] == "cpu"
    assert with_gpu == ("cuda", "0")
    assert devices.ray_gpu_ids() is None  # outside Ray, 'auto' means any GPU torch sees
    assert data_dirs == [cluster.no_data] * 2 and not Path(cluster.no_data).exists()
