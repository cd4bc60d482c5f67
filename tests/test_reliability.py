"""Reliability: a sweep survives what happens to long runs on shared and spot machines, keeps
everything it already computed, and says what went wrong.

* a trial's worker killed mid-epoch restarts from its checkpoint, with no gap and no repeat;
* a driver stopped with Ctrl-C resumes to exactly its trials, with the Optuna study, the
  Parquet results, the W&B runs and Ray's records in agreement (SIGKILL: tests/test_sweeps.py);
* a diverging trial ends once, marked DIVERGED with its reason, Optuna told FAIL, the sweep
  carries on and never picks it as best;
* parallel first uses of an uncached dataset download it once, and nobody reads half a file;
* a corrupt or wrong-kind checkpoint is an error naming the file, wherever it is loaded;
* secrets in the environment end up in no file the sweep writes, the local Ray's dashboard
  stays off (and on localhost), and --resume reads only the folder it is given.

The Ray tests are smoke-sized (2,000 images, a few epochs) and share one local Ray.
"""

import argparse
import contextlib
import hashlib
import json
import os
import pickle
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import test_sweeps as ts  # the sweep tests' helpers: reading studies and Tune snapshots
import torch
from optuna.trial import TrialState
from ray import tune

from sweeps import ae_sweep, cli, experiment, ray_cluster, results, resume, runner
from trainables import autoencoder, classifier, core, data, gan
from trainables.errors import UsageError

REPO = Path(__file__).resolve().parents[1]
QUIET = ["--smoke-test", "--wandb-mode", "disabled"]  # W&B is tested in test_sweeps and below


# ---------------------------------------------------------------------------------------------
# Without Ray


def test_searcher_fails_a_diverged_trial_with_its_reason(tmp_path):
    s = ts._searcher(tmp_path)
    reason = "train_mse became nan at epoch 2; the trial diverged (lower the learning rate ...)"
    s.suggest("bad")
    s.on_trial_result("bad", {"val_mse": 0.5, "training_iteration": 1})
    last = {"val_mse": float("nan"), "training_iteration": 2, "diverged": True, "error": reason}
    s.on_trial_result("bad", last)
    s.on_trial_complete("bad", last)
    (trial,) = s._ot_study.get_trials()
    assert trial.state == TrialState.FAIL and trial.user_attrs["fail_reason"] == reason
    assert trial.intermediate_values == {1: 0.5}  # the NaN is not a score


@pytest.mark.filterwarnings("ignore:All-NaN slice")  # numpy, at a rung that holds only the NaN
def test_asha_ignores_the_nan_of_a_diverged_trial():
    from ray.tune.schedulers import TrialScheduler
    from ray.tune.schedulers.async_hyperband import _Bracket

    rung = _Bracket(min_t=1, max_t=4, reduction_factor=2, s=0)
    trial = lambda i: argparse.Namespace(trial_id=str(i))  # noqa: E731
    rung.on_result(trial(0), 1, float("nan"))  # a diverged trial's last result
    assert rung.on_result(trial(1), 1, -0.2) == TrialScheduler.CONTINUE
    assert rung.on_result(trial(2), 1, -0.1) == TrialScheduler.CONTINUE
    assert rung.on_result(trial(3), 1, -0.3) == TrialScheduler.STOP  # compared with 1 and 2 only


class _Trial:
    """What ``finish`` reads of a Tune trial."""

    def __init__(self, trial_id, status, last_result, error_text=None):
        self.trial_id, self.status, self.last_result = trial_id, status, last_result
        self.config = {"lr": 1e6}
        self._error_text = error_text

    def get_error(self):
        return self._error_text


def test_results_mark_diverged_and_errored_trials_with_their_reason():
    nan = float("nan")
    history = [
        {"training_iteration": 1, "epoch": 1, "val_mse": 0.2},
        {"training_iteration": 2, "epoch": 2, "val_mse": nan, "diverged": True, "error": "why"},
    ]
    bad = _Trial("d", "TERMINATED", history[-1])
    assert results.trial_error(bad) == "why"
    rows = results.trial_rows(bad, history, max_epochs=4, error=results.trial_error(bad))
    assert [r["status"] for r in rows] == ["DIVERGED", "DIVERGED"]
    assert not any(r["stopped_early"] for r in rows)  # not ASHA's doing
    assert [r["error"] for r in rows] == ["why", "why"]
    assert "diverged" not in rows[-1]  # the status says it
    ray_error = (
        "Failure # 1 (occurred at 2026-01-01_00-00-00)\n"
        "ray::ImplicitFunc.train() (pid=1, ip=127.0.0.1)\n  File ...\n"
        "trainables.core.CheckpointError: /x/checkpoint.pt: not a readable checkpoint\n"
    )
    crashed = _Trial("e", "ERROR", {"training_iteration": 1}, ray_error)
    assert results.trial_error(crashed).endswith("/x/checkpoint.pt: not a readable checkpoint")
    died = "Failure # 1 (occurred at ...)\nThe actor died unexpectedly.\n\tpid: 1\n"
    assert results.trial_error(_Trial("w", "ERROR", {}, died)) == "The actor died unexpectedly."
    assert results.trial_error(_Trial("f", "TERMINATED", {"val_mse": 0.1})) is None


def _tiny_splits(n=40) -> data.Splits:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g)
    y = torch.arange(n) % 10
    return data.Splits(x, y, x[:10], y[:10], x[:10], y[:10], source="synthetic")


def _ae_checkpoint(directory: Path) -> Path:
    state = {"model": autoencoder.ConvAutoencoder(4).state_dict()}
    cfg = autoencoder.AutoencoderConfig(latent_dim=4)
    payload = core.checkpoint_payload("autoencoder", cfg, {"latent_dim": 4}, 1, [], state)
    return core.save_checkpoint(payload, directory)


def _damage(kind: str, directory: Path) -> Path:
    """A checkpoint.pt in ``directory`` that is cut short, or of the GAN."""
    if kind == "wrong-kind":
        payload = core.checkpoint_payload("gan", gan.GANConfig(), {}, 1, [], {})
        return core.save_checkpoint(payload, directory)
    file = _ae_checkpoint(directory)
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    return file


@pytest.mark.parametrize("damage", ["truncated", "wrong-kind"])
@pytest.mark.parametrize("where", ["folder-resume", "tune-restore", "encoder"])
def test_a_bad_checkpoint_is_an_error_naming_the_file(where, damage, tmp_path, monkeypatch):
    bad = _damage(damage, tmp_path / "ckpt")
    config = {"epochs": 2, "batch_size": 20, "latent_dim": 4}
    if where == "folder-resume":  # python -m trainables.autoencoder --resume --out DIR
        run = lambda: autoencoder.train_autoencoder(  # noqa: E731
            config, data=_tiny_splits(), reporter=core.FolderReporter(bad.parent, resume=True)
        )
    elif where == "tune-restore":  # a trial restored by Tune (a retry, or --resume)
        checkpoint = tune.Checkpoint.from_directory(str(bad.parent))
        monkeypatch.setattr(tune, "get_checkpoint", lambda: checkpoint)
        run = lambda: autoencoder.train_autoencoder(  # noqa: E731
            config, data=_tiny_splits(), reporter=core.TuneReporter()
        )
    else:  # the classifier trainable loading its encoder
        run = lambda: classifier.train_classifier(  # noqa: E731
            {"encoder_checkpoint": str(bad), "epochs": 1}, data=_tiny_splits()
        )
    with pytest.raises(core.CheckpointError) as e:
        run()
    message = str(e.value)
    assert str(bad) in message and "\n" not in message
    assert ("not a readable checkpoint" if damage == "truncated" else "kind 'gan'") in message


@pytest.mark.parametrize(
    "state",
    ["tuner.pkl", "experiment_state-2026-01-02_00-00-00.json", "searcher-state-2026-01-02.pkl"],
)
def test_resume_names_a_truncated_tune_state_file(state, tmp_path):
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "tuner.pkl").write_bytes(pickle.dumps({"tuner": "state"}))
    for day in ("01", "02"):  # Tune reads the newest of each
        (exp / f"experiment_state-2026-01-{day}_00-00-00.json").write_text('{"trial_data": []}')
        (exp / f"searcher-state-2026-01-{day}.pkl").write_bytes(pickle.dumps({"day": day}))
    resume.check_restorable(experiment.Folder(exp))  # whole: fine
    (exp / state).write_bytes((exp / state).read_bytes()[:-4])
    with pytest.raises(UsageError, match=f"{exp / state} is truncated or corrupt"):
        resume.check_restorable(experiment.Folder(exp))


# One process of many starting at once on a node without the dataset. torchvision's download is
# replaced by a copy of the real files that stops halfway through the last file for a second
# (and says so in the file HALFWAY): the moment a process that looks without waiting for the
# download lock would find all four files there and read one cut short.
DOWNLOADER = r"""
import hashlib, os, sys, time, types
from pathlib import Path
from trainables import data

source, tmp, when = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
LAST = "t10k-images-idx3-ubyte"  # written last, read first

class SlowFashionMNIST:
    def __init__(self, root, train, download):
        with open(tmp / "calls.txt", "a") as f:
            f.write(f"{os.getpid()} {train}\n")
        raw = Path(root) / "FashionMNIST" / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        prefix = "train" if train else "t10k"
        for stem in (f"{prefix}-labels-idx1-ubyte", f"{prefix}-images-idx3-ubyte"):
            src = data._find(source, stem)
            blob = src.read_bytes()
            with open(raw / src.name, "wb") as f:
                f.write(blob[: len(blob) // 2])
                f.flush()
                if stem == LAST:
                    (tmp / "HALFWAY").touch()
                    time.sleep(1.0)
                f.write(blob[len(blob) // 2 :])

fake = types.ModuleType("torchvision.datasets")  # stands in for torchvision (and its imports)
fake.FashionMNIST = SlowFashionMNIST
sys.modules["torchvision"] = types.ModuleType("torchvision")
sys.modules["torchvision.datasets"] = fake
data.DEBIAN_DIR = Path("/nonexistent")

(tmp / f"ready-{os.getpid()}").touch()
wait_for = tmp / ("HALFWAY" if when == "halfway" else "GO")
deadline = time.time() + 120
while not wait_for.exists() and time.time() < deadline:
    time.sleep(0.005)
directory = data.resolve_data_dir()
digest = hashlib.sha256()
for split in ("test", "train"):
    x, y = data.read_split(directory, split)
    digest.update(x.tobytes())
    digest.update(y.tobytes())
print(directory, digest.hexdigest())
"""


@pytest.mark.slow
@pytest.mark.realdata
def test_parallel_first_use_downloads_once_and_nobody_reads_half_a_file(real_data_dir, tmp_path):
    cache = tmp_path / "cache"
    env = {**os.environ, "LATENTSWEEP_CACHE": str(cache)}
    env.pop("LATENTSWEEP_DATA", None)
    # Two processes race for the download; two more look while the last file is half written.
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", DOWNLOADER, str(real_data_dir), str(tmp_path), when],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for when in ("now", "now", "halfway", "halfway")
    ]
    deadline = time.time() + 120
    while len(list(tmp_path.glob("ready-*"))) < len(procs) and time.time() < deadline:
        time.sleep(0.05)
    (tmp_path / "GO").touch()  # all imports done: start together
    outputs = [p.communicate(timeout=180) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    assert (tmp_path / "HALFWAY").exists()
    downloads = (tmp_path / "calls.txt").read_text().splitlines()
    assert len(downloads) == 2 and len({line.split()[0] for line in downloads}) == 1, downloads
    digest = hashlib.sha256()
    for split in ("test", "train"):
        x, y = data.read_split(real_data_dir, split)
        digest.update(x.tobytes())
        digest.update(y.tobytes())
    assert {out.split()[-1] for out, _ in outputs} == {digest.hexdigest()}
    assert {out.split()[0] for out, _ in outputs} == {str(cache)}
    assert not list(cache.glob(".download-*"))  # the staging folder is gone


def test_local_ray_keeps_its_dashboard_off_and_on_localhost(monkeypatch):
    calls = []
    monkeypatch.setattr(ray_cluster.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray_cluster.ray, "init", lambda **kwargs: calls.append(kwargs))
    assert ray_cluster.start_ray(argparse.Namespace(address=None, num_cpus=2))
    (kwargs,) = calls
    assert kwargs["include_dashboard"] is False and kwargs["dashboard_host"] == "127.0.0.1"


class _Restored(Exception):
    pass


def test_resume_reads_only_the_folder_it_was_given(tmp_path, monkeypatch):
    """sweep.json records where the sweep ran; --resume must not follow it anywhere else."""
    exp = tmp_path / "moved" / "ae_sweep"
    elsewhere = "s3://somebody-elses-bucket/runs"
    record = {
        "model": "autoencoder",
        "experiment_dir": f"{elsewhere}/ae_sweep",
        "study_file": None,
        "args": {"storage_path": elsewhere, "name": "ae_sweep", "smoke_test": True},
    }
    experiment.Folder(exp).write_json("sweep.json", record)
    (exp / "tuner.pkl").write_bytes(pickle.dumps({}))
    restored = []

    def restore(path, **kwargs):
        restored.append(path)
        raise _Restored

    monkeypatch.setattr(runner, "load_splits", lambda *a, **k: _tiny_splits())
    monkeypatch.setattr(ray_cluster, "start_ray", lambda settings: False)
    monkeypatch.setattr(ray_cluster, "cluster_node_resources", lambda: (0.0, 2.0))
    monkeypatch.setattr(ray_cluster, "warn_if_node_local", lambda exp: None, raising=False)
    monkeypatch.setattr(runner.tune, "with_parameters", lambda f, **kw: f)
    monkeypatch.setattr(runner.tune.Tuner, "restore", restore)
    with pytest.raises(_Restored):
        ae_sweep.main(["--resume", str(exp), "--wandb-mode", "disabled"])
    assert restored == [str(exp)]
    assert json.loads((exp / "sweep.json").read_text())["args"]["storage_path"] == elsewhere


# ---------------------------------------------------------------------------------------------
# Real sweeps through Ray Tune (smoke-sized)


@pytest.fixture(scope="module")
def local_ray(real_data_dir):
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


def _results(exp: Path, trial_dir: Path | None = None) -> list[dict]:
    """Every row Ray Tune wrote to result.json, of one trial folder or of all."""
    files = [trial_dir / "result.json"] if trial_dir else sorted(exp.glob("*/result.json"))
    return [json.loads(line) for f in files for line in f.read_text().splitlines() if line]


@pytest.mark.slow
@pytest.mark.realdata
def test_a_trial_whose_worker_is_killed_resumes_from_its_checkpoint(
    local_ray, tmp_path, monkeypatch
):
    exp = tmp_path / "killed"
    killed = []
    # Tune copies result.json into the experiment folder with each snapshot: take one at every
    # step, so the killer below sees epoch 2 at once.
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "0")

    def kill_after_epoch_2():  # SIGKILL the trial's worker process while it trains epoch 3
        deadline = time.time() + 240
        while time.time() < deadline and not killed:
            with contextlib.suppress(OSError, ValueError):
                for row in _results(exp):
                    if row["training_iteration"] == 2:
                        os.kill(row["pid"], signal.SIGKILL)
                        killed.append(row["pid"])
            time.sleep(0.05)

    killer = threading.Thread(target=kill_after_epoch_2, daemon=True)
    killer.start()
    summary = ae_sweep.main(
        [*QUIET, "--storage-path", str(tmp_path), "--name", "killed", "--num-samples", "1"]
        + ["--max-epochs", "4", "--grace-period", "4", "--max-concurrent", "1"]
        + ["--subset", "12000"]  # an epoch long enough (about a second) to be killed inside
    )
    killer.join(timeout=5)
    assert killed, "the worker was never killed"
    assert summary["complete"] and summary["errored"] == 0 and summary["trials"] == 1

    (trial_dir,) = exp.glob("train_autoencoder_*")
    rows = _results(exp, trial_dir)
    assert [r["training_iteration"] for r in rows] == [1, 2, 3, 4]  # no gap, no repeat
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert rows[1]["pid"] == killed[0] and rows[2]["pid"] != killed[0]  # a new worker went on
    assert rows[2]["iterations_since_restore"] == 1  # ... from the epoch-2 checkpoint
    latest = sorted(trial_dir.glob("checkpoint_*"))[-1]
    assert [h["epoch"] for h in core.load_checkpoint(latest)["history"]] == [1, 2, 3, 4]
    table = pq.read_table(exp / "results.parquet").to_pandas()
    assert list(table["epoch"]) == [1, 2, 3, 4] and set(table["status"]) == {"TERMINATED"}
    (ot,) = ts.study_of(exp).trials
    assert ot.state == TrialState.COMPLETE and sorted(ot.intermediate_values) == [1, 2, 3, 4]
    assert ot.value == pytest.approx(rows[-1]["val_mse"])


@pytest.mark.slow
@pytest.mark.realdata
def test_a_diverging_trial_ends_once_and_the_sweep_carries_on(local_ray, tmp_path, capsys):
    # Adam at lr 1e6 makes the autoencoder's loss NaN in its first epoch; 5e-4 trains.
    space = {"optimizer": "adam", "lr": tune.choice([1e6, 5e-4]), "latent_dim": 16}
    parser = cli.build_parser(ae_sweep.SWEEP)
    argv = [*QUIET, "--storage-path", str(tmp_path), "--name", "nan", "--num-samples", "4"]
    argv += ["--max-epochs", "2", "--grace-period", "2", "--seed", "1", "--subset", "1000"]
    settings = cli.parse_settings(ae_sweep.SWEEP, parser, argv)
    summary = runner.run(ae_sweep.SWEEP, settings, space)
    exp = tmp_path / "nan"
    out = capsys.readouterr().out

    table = pq.read_table(exp / "results.parquet").to_pandas()
    last = table.groupby("trial_id").last()
    bad = last[last["config/lr"] == 1e6]
    good = last[last["config/lr"] != 1e6]
    assert len(bad) and len(good), "the seed no longer samples both learning rates"
    assert summary["complete"] and summary["errored"] == 0
    assert summary["diverged"] == len(bad) and summary["trials"] == 4
    assert set(bad["status"]) == {"DIVERGED"} and not bad["stopped_early"].any()
    assert bad["error"].str.contains("became nan at epoch 1; the trial diverged").all()
    assert set(good["status"]) == {"TERMINATED"} and good["error"].isna().all()
    for trial_id in bad.index:  # ended at once, never retried from its checkpoint
        rows = _results(exp, exp / f"train_autoencoder_{trial_id}")
        assert len(rows) == 1 and rows[0]["diverged"] is True
        assert not (exp / f"train_autoencoder_{trial_id}" / "error.txt").exists()
        assert f"trial {trial_id} diverged: " in out
    assert f"{len(bad)} diverged" in out

    study = ts.study_of(exp)
    by_id = {t.user_attrs["trial_id"]: t for t in study.trials}
    assert set(by_id) == set(last.index)
    for trial_id in bad.index:
        assert by_id[trial_id].state == TrialState.FAIL
        assert "the trial diverged" in by_id[trial_id].user_attrs["fail_reason"]
    best = json.loads((exp / "best.json").read_text())
    assert best["trial_id"] in set(good.index) and best["config"]["lr"] == 5e-4


@pytest.mark.slow
@pytest.mark.realdata
def test_resume_after_ctrl_c_keeps_every_result_and_agrees_with_ray(local_ray, tmp_path):
    exp = tmp_path / "interrupted"
    cmd = [sys.executable, "sweeps/ae_sweep.py", "--smoke-test", "--wandb-mode", "offline"]
    cmd += ["--storage-path", str(tmp_path)]
    cmd += ["--name", "interrupted", "--num-samples", "5", "--max-epochs", "3"]
    cmd += ["--subset", "12000"]  # epochs long enough to see a snapshot (1 s: conftest) mid-sweep
    code = ts.ctrl_c_after_a_trial(cmd, exp, tmp_path / "first.log")
    first = (tmp_path / "first.log").read_text()
    assert code == 130, first
    assert f"--resume {exp}" in first  # the driver said how to continue
    finished = ts._terminated_in_snapshot(exp)
    assert finished and ts._finished_trials(exp) < 5
    before = {name: (exp / name / "result.json").read_text() for name in finished}

    summary = ae_sweep.main(["--resume", str(exp), "--wandb-mode", "offline"])
    assert summary["complete"] and summary["trials"] == 5 and summary["errored"] == 0
    for name, text in before.items():  # finished trials kept, not run again
        assert (exp / name / "result.json").read_text() == text

    table = pq.read_table(exp / "results.parquet").to_pandas()
    assert not table.duplicated(["trial_id", "training_iteration"]).any()
    ts.check_study_matches(exp, table, "val_mse", 3)  # ids, every epoch's value, PRUNED/COMPLETE
    ts.check_wandb_runs(exp, table, ["val_mse"])  # the W&B runs too, across the two drivers
    analysis = tune.ExperimentAnalysis(str(exp))
    ray_last = {t.trial_id: t.last_result["val_mse"] for t in analysis.trials}
    parquet_last = table.sort_values("training_iteration").groupby("trial_id")["val_mse"].last()
    assert ray_last == pytest.approx(parquet_last.to_dict())
    study = {
        t.user_attrs["trial_id"]: t for t in ts.study_of(exp).trials if t.state != TrialState.FAIL
    }
    assert {k: t.value for k, t in study.items()} == pytest.approx(ray_last)


def _planted_secrets() -> dict[str, str]:
    return {
        "WANDB_API_KEY": secrets.token_hex(20),
        "AWS_ACCESS_KEY_ID": "AKIA" + secrets.token_hex(8).upper(),
        "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(30),
    }


def _files_containing(root: Path, needles: list[str]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            with contextlib.suppress(OSError):
                blob = path.read_bytes()
                hits += [f"{path}: {n[:6]}..." for n in needles if n.encode() in blob]
    return hits


@pytest.mark.slow
@pytest.mark.realdata
def test_secrets_in_the_environment_are_written_nowhere(real_data_dir, tmp_path):
    planted = _planted_secrets()
    ray_tmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths
    env = {**os.environ, **planted, "RAY_TMPDIR": str(ray_tmp)}
    env.pop("WANDB_MODE", None)
    cmd = [sys.executable, "sweeps/ae_sweep.py", "--smoke-test", "--wandb-mode", "offline"]
    cmd += ["--storage-path", str(tmp_path), "--num-samples", "2", "--max-epochs", "1"]
    cmd += ["--grace-period", "1"]
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        exp = tmp_path / "ae_sweep_smoke"
        for name in ("results.parquet", "best.json", "sweep.json", "optuna.db"):
            assert (exp / name).is_file()
        assert list((exp / "wandb").glob("offline-run-*/run-*.wandb"))
        assert list(ray_tmp.glob("ray/session_*/logs/*"))
        needles = list(planted.values())
        assert _files_containing(exp, needles) == []
        assert _files_containing(ray_tmp, needles) == []
        assert not any(n in proc.stdout + proc.stderr for n in needles)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
