"""Reliability: a sweep survives what happens to long runs on shared and spot machines, keeps
everything it already computed, and says what went wrong. Each test runs the real thing (Ray,
Tune's restore, Optuna's database, W&B's files); none replaces what it proves.

* a trial's worker killed mid-epoch restarts from its checkpoint, with no gap and no repeat;
* a driver stopped with Ctrl-C resumes to exactly its trials, with the Optuna study, the
  Parquet results, the W&B runs and Ray's records in agreement (SIGKILL: tests/test_sweeps.py),
  and an interrupted folder moved elsewhere resumes there, never touching where it was;
* a diverging trial ends once, marked DIVERGED with its reason, Optuna told FAIL, the sweep
  carries on and never picks it as best, and ASHA's decisions on the other trials are the ones
  it makes without the NaN; a trial that raises is ERROR with its exception in one line;
* parallel first uses of an uncached dataset download it once, and nobody reads half a file;
* a corrupt or wrong-kind checkpoint is an error naming the file, wherever it is loaded;
* secrets in the environment end up in no file the sweep writes, the local Ray serves no
  dashboard, and W&B out of reach turns into offline runs in seconds, not a wait per trial.

The in-process Ray tests are smoke-sized (a few thousand images, a few epochs) and share one
local Ray; the tests of what a user's command does run it in a subprocess.
"""

import argparse
import contextlib
import functools
import hashlib
import io
import ipaddress
import json
import math
import os
import pickle
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import helpers  # the fault tests' helpers: fault injection, Tune snapshots, the study
import optuna
import pyarrow.parquet as pq
import pytest
from optuna.trial import TrialState
from ray import tune
from ray.tune.schedulers import TrialScheduler
from synthetic import synthetic_splits

from sweeps import ae_sweep, runner
from sweeps.fit import faults, wandb_hub
from sweeps.folder import outcome, results, resume, study_storage
from sweeps.folder import storage as experiment
from sweeps.folder.layout import trial_dirname
from sweeps.folder.study_url import file_study_url, loadable, sqlite_path
from sweeps.request import cli
from sweeps.search.asha import ASHA
from trainables import autoencoder, checkpoints, classifier, data, gan, reporting
from trainables.errors import UsageError

REPO = Path(__file__).resolve().parents[1]
QUIET = ["--smoke-test", "--wandb-mode", "disabled"]  # W&B is tested in test_sweeps and below


# ---------------------------------------------------------------------------------------------
# Without Ray


def test_searcher_fails_a_diverged_trial_with_its_reason(tmp_path):
    s = helpers.optuna_searcher(tmp_path)
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
    assert outcome.trial_error(bad) == "why"
    rows = results.trial_rows(bad, history, max_epochs=4, error=outcome.trial_error(bad))
    assert [r["status"] for r in rows] == ["DIVERGED", "DIVERGED"]
    assert not any(r["stopped_early"] for r in rows)  # not ASHA's doing
    assert [r["error"] for r in rows] == ["why", "why"]
    assert "diverged" not in rows[-1]  # the status says it
    ray_error = (
        "Failure # 1 (occurred at 2026-01-01_00-00-00)\n"
        "ray::ImplicitFunc.train() (pid=1, ip=127.0.0.1)\n  File ...\n"
        "trainables.checkpoints.CheckpointError: /x/checkpoint.pt: not a readable checkpoint\n"
    )
    crashed = _Trial("e", "ERROR", {"training_iteration": 1}, ray_error)
    assert outcome.trial_error(crashed).endswith("/x/checkpoint.pt: not a readable checkpoint")
    died = "Failure # 1 (occurred at ...)\nThe actor died unexpectedly.\n\tpid: 1\n"
    assert outcome.trial_error(_Trial("w", "ERROR", {}, died)) == "The actor died unexpectedly."
    assert outcome.trial_error(_Trial("f", "TERMINATED", {"val_mse": 0.1})) is None


def _ae_checkpoint(directory: Path) -> Path:
    state = {"model": autoencoder.ConvAutoencoder(4).state_dict()}
    cfg = autoencoder.AutoencoderConfig(latent_dim=4)
    payload = checkpoints.checkpoint_payload("autoencoder", cfg, {"latent_dim": 4}, 1, [], state)
    return checkpoints.save_checkpoint(payload, directory)


def _damage(kind: str, directory: Path) -> Path:
    """A checkpoint.pt in ``directory`` that is cut short, or of the GAN."""
    if kind == "wrong-kind":
        payload = checkpoints.checkpoint_payload("gan", gan.GANConfig(), {}, 1, [], {})
        return checkpoints.save_checkpoint(payload, directory)
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
            config,
            data=synthetic_splits(test=10),
            reporter=reporting.FolderReporter(bad.parent, resume=True),
        )
    elif where == "tune-restore":  # a trial restored by Tune (a retry, or --resume)
        checkpoint = tune.Checkpoint.from_directory(str(bad.parent))
        monkeypatch.setattr(tune, "get_checkpoint", lambda: checkpoint)
        run = lambda: autoencoder.train_autoencoder(  # noqa: E731
            config, data=synthetic_splits(test=10), reporter=reporting.TuneReporter()
        )
    else:  # the classifier trainable loading its encoder
        run = lambda: classifier.train_classifier(  # noqa: E731
            {"encoder_checkpoint": str(bad), "epochs": 1}, data=synthetic_splits(test=10)
        )
    with pytest.raises(checkpoints.CheckpointError) as e:
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


def _study_with_one_trial(url: str) -> optuna.storages.BaseStorage:
    """A sweep's study storage as the runner opens it, holding one finished trial."""
    storage = study_storage.open_study_storage(url, "s")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.create_study(storage=storage, study_name="s").add_trial(
        optuna.trial.create_trial(value=0.5)
    )
    return storage


def _opened(storage) -> Path:
    """The study file a sweep's storage opened."""
    if isinstance(storage, study_storage.SweepJournalStorage):
        return Path(storage._backend._file_path)
    return sqlite_path(storage.url)


@pytest.mark.parametrize("file", ["optuna.journal", "optuna.db"])
def test_a_moved_study_is_opened_where_resume_found_it(file, tmp_path):
    """Tune pickles the searcher, and so the study's storage with its URL or path, and Optuna's
    storages reopen that when unpickled. Unpickled during --resume, the sweep's storage opens
    the study the resume found instead: nothing is opened (or created) at the old path. Both
    kinds: the journal a sweep keeps now, and the SQLite file of a folder written before it."""
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    pickled = pickle.dumps(_study_with_one_trial(file_study_url(old / file)))
    shutil.move(old, new)
    old.mkdir()  # the old folder exists again, empty: an old URL would create a study there
    try:
        study_storage.resume_study_at(file_study_url(new / file))
        restored = pickle.loads(pickled)
    finally:
        study_storage.resume_study_at(None)
    assert _opened(restored) == new / file
    assert [t.value for t in optuna.load_study(study_name="s", storage=restored).trials] == [0.5]
    assert list(old.iterdir()) == []
    # Outside a resume it is the storage as pickled (a study file of the user's own).
    (new / file).rename(old / file)
    assert _opened(pickle.loads(pickled)) == old / file


def test_a_pickled_journal_is_its_path_whatever_the_study_holds(tmp_path):
    """Tune writes the searcher, with the study's storage, into every searcher-state-*.pkl:
    Optuna's JournalStorage would pickle an offset for every line it has read, so the pickle
    would grow with the sweep. The sweep's journal pickles as its path alone."""
    storage = _study_with_one_trial(file_study_url(tmp_path / "optuna.journal"))
    small = len(pickle.dumps(storage))
    study = optuna.load_study(study_name="s", storage=storage)
    for i in range(200):
        study.add_trial(optuna.trial.create_trial(value=float(i)))
    assert len(pickle.dumps(storage)) == small < 500
    assert (
        len(optuna.load_study(study_name="s", storage=pickle.loads(pickle.dumps(storage))).trials)
        == 201
    )


def test_a_journal_whose_writer_was_killed_is_repaired_before_a_resume_writes(tmp_path):
    """What a driver killed inside Optuna's append can leave: its lock (a symlink, dangling once
    the folder moved: Optuna's lock would spin on it forever) and a last line cut short (which
    makes Optuna refuse the whole journal once another line follows). repair_journal, which
    --resume runs before Tune unpickles the searcher, removes the one and cuts the other."""
    path = tmp_path / "optuna.journal"
    _study_with_one_trial(file_study_url(path))
    whole = path.read_bytes()
    with open(path, "ab") as f:
        f.write(b'{"op_code": 5, "worker_id": "x", "trial_id": 0, "par')  # cut short
    lock = Path(f"{path}.lock")
    lock.symlink_to(tmp_path / "gone" / "optuna.journal")  # dangling
    study_storage.repair_journal(path)
    assert not lock.is_symlink() and path.read_bytes() == whole
    study = optuna.load_study(study_name="s", storage=study_storage.SweepJournalStorage(path))
    study.add_trial(optuna.trial.create_trial(value=0.25))  # the next append is read back whole
    reread = optuna.load_study(study_name="s", storage=loadable(file_study_url(path)))
    assert [t.value for t in reread.trials] == [0.5, 0.25]
    study_storage.repair_journal(path)  # a whole journal without a lock: left as it is
    assert len(path.read_bytes()) > len(whole)


def test_the_sweeps_journal_is_read_at_once_and_synced_once_a_second(tmp_path, monkeypatch):
    """SweepJournalFile: each line is in the file for any reader as soon as it is appended, but
    synced to disk at most once a period (SYNC_EVERY_S, a second; Optuna's own backend syncs
    every line), and once more when the sweep ends (close_study_file)."""
    synced = []
    fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), fsync(fd))[1])
    # the sync period is the injection point: an hour, so no second sync can fall in the test
    monkeypatch.setattr(study_storage.SweepJournalFile, "SYNC_EVERY_S", 3600.0)
    path = tmp_path / "optuna.journal"
    storage = study_storage.SweepJournalStorage(path)
    study = optuna.create_study(study_name="s", storage=storage)
    for i in range(60):
        study.add_trial(optuna.trial.create_trial(value=float(i)))
        reader = optuna.load_study(study_name="s", storage=loadable(file_study_url(path)))
        assert len(reader.trials) == i + 1
    assert len(synced) == 1  # the first append's, of 61
    study_storage.close_study_file(
        experiment.Folder(tmp_path), {"study_storage": file_study_url(path)}
    )
    assert len(synced) == 2
    # The searcher's writes in one call (a new trial and its parameters) share one hold of the
    # lock (held), which other writers still wait for; readers see each line at once.
    lock = optuna.storages.journal.JournalFileSymlinkLock
    acquire, holds = lock.acquire, []
    monkeypatch.setattr(lock, "acquire", lambda self: (holds.append(1), acquire(self))[1])
    with storage.held():
        for i in range(5):
            study.add_trial(optuna.trial.create_trial(value=float(i)))
        assert Path(f"{path}.lock").is_symlink()
        reader = optuna.load_study(study_name="s", storage=loadable(file_study_url(path)))
        assert len(reader.trials) == 65
    assert holds == [1] and not Path(f"{path}.lock").exists()


def test_a_journal_is_not_unpickled_onto_another_study(tmp_path):
    """Unpickled during a resume, the sweep's journal opens the journal the resume found, never
    a database URL, and never a file that is not there (which would start an empty study)."""
    path = tmp_path / "optuna.journal"
    pickled = pickle.dumps(_study_with_one_trial(file_study_url(path)))
    try:
        study_storage.resume_study_at("postgresql://u@127.0.0.1:5/db")
        with pytest.raises(UsageError, match="study is a journal file"):
            pickle.loads(pickled)
        study_storage.resume_study_at(file_study_url(tmp_path / "moved" / "optuna.journal"))
        with pytest.raises(UsageError, match="optuna.journal is missing"):
            pickle.loads(pickled)
    finally:
        study_storage.resume_study_at(None)
    assert not (tmp_path / "moved").exists()


def test_resume_refuses_another_study_storage_for_a_study_kept_in_the_folder(tmp_path):
    exp = tmp_path / "exp"
    exp.mkdir()
    url = file_study_url(exp / "optuna.journal")
    record = {"model": "autoencoder", "args": {}, "study_file": "optuna.journal"}
    experiment.Folder(exp).write_json("sweep.json", {**record, "study_storage": url})
    storage = _study_with_one_trial(url)
    (exp / "tuner.pkl").write_bytes(pickle.dumps({"search_alg": storage}))
    resume.check_restorable(experiment.Folder(exp))  # as it ran: fine
    given = argparse.Namespace(study_storage="postgresql://u:secret@127.0.0.1:5/db")
    with pytest.raises(UsageError, match=r"study is optuna.journal in the folder, not .*\*\*\*"):
        resume.check_restorable(experiment.Folder(exp), given)


def test_resume_refuses_a_moved_folder_whose_pickles_pin_the_study_to_the_old_path(tmp_path):
    """A folder written before the study's storage could be pointed elsewhere (its pickles hold
    Optuna's own RDBStorage) resumes where it ran; moved, it is one line before Ray starts."""
    ran_at, exp = tmp_path / "ran_at", tmp_path / "moved"
    exp.mkdir()
    record = {"model": "autoencoder", "args": {}, "study_file": "optuna.db"}
    record["study_storage"] = f"sqlite:///{ran_at / 'optuna.db'}"
    experiment.Folder(exp).write_json("sweep.json", record)
    _study_with_one_trial(f"sqlite:///{exp / 'optuna.db'}")
    own = optuna.storages.RDBStorage(f"sqlite:///{exp / 'optuna.db'}")
    (exp / "tuner.pkl").write_bytes(pickle.dumps({"search_alg": own}))
    with pytest.raises(UsageError, match=f"move the folder back to {ran_at} to resume it"):
        resume.check_restorable(experiment.Folder(exp))
    record["study_storage"] = f"sqlite:///{exp / 'optuna.db'}"  # resumed where it ran: fine
    experiment.Folder(exp).write_json("sweep.json", record)
    resume.check_restorable(experiment.Folder(exp))
    (exp / "optuna.db").unlink()
    with pytest.raises(UsageError, match=f"its Optuna study {exp / 'optuna.db'} is missing"):
        resume.check_restorable(experiment.Folder(exp))


def test_the_wandb_probe_answers_in_seconds_and_follows_the_proxy(monkeypatch, tmp_path):
    """sweep_wandb_mode: online only if one TCP connection to the W&B server (or to the proxy
    the environment names for it) opens; else offline, with the line saying why and how to
    upload the runs. Real sockets on 127.0.0.1: one that listens, and port 9 that refuses."""
    server = socket.create_server(("127.0.0.1", 0))
    try:
        listening = f"http://127.0.0.1:{server.getsockname()[1]}"
        for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv("WANDB_MODE", raising=False)
        monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
        monkeypatch.setenv("WANDB_BASE_URL", listening)
        assert wandb_hub.sweep_wandb_mode(None, tmp_path) == ("online", None)
        monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
        start = time.monotonic()
        mode, line = wandb_hub.sweep_wandb_mode(None, tmp_path)
        assert time.monotonic() - start < wandb_hub.PROBE_TIMEOUT_S
        assert mode == "offline" and "\n" not in line and "127.0.0.1:9: Connection refused" in line
        assert line.endswith(f"wandb sync {tmp_path}/wandb/offline-run-*")
        assert wandb_hub.sweep_wandb_mode("offline", tmp_path) == ("offline", None)  # no probe
        monkeypatch.setenv("http_proxy", listening)  # the server is reached through a proxy
        assert wandb_hub.sweep_wandb_mode(None, tmp_path) == ("online", None)
        monkeypatch.setenv("no_proxy", "127.0.0.1")  # ... unless the proxy is bypassed for it
        assert wandb_hub.sweep_wandb_mode(None, tmp_path)[0] == "offline"
    finally:
        server.close()


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


# Ray started exactly as a sweep starts it (sweeps/ray_cluster.start_ray, from a sweep's own
# settings), in its own process: each of its processes with the addresses it listens on, and the
# dashboard URL Ray reports.
RAY_OF_A_SWEEP = r"""
import contextlib, json, psutil, ray
from ray._private import ray_constants, worker
from sweeps import ae_sweep
from sweeps.request import cli
from sweeps.cluster import ray_cluster

settings = cli.parse_settings(ae_sweep.SWEEP, cli.build_parser(ae_sweep.SWEEP), ["--num-cpus", "1"])
assert ray_cluster.start_ray(settings) and not settings.address
me = psutil.Process()
processes = []
for p in [me, *me.children(recursive=True)]:
    with contextlib.suppress(psutil.Error):
        listening = [
            [c.laddr.ip, c.laddr.port]
            for c in p.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        ]
        processes.append([p.cmdline(), listening])
print(json.dumps({
    "url": worker.get_dashboard_url(),
    "processes": processes,
    "gcs_port": int(ray.get_runtime_context().gcs_address.rsplit(":", 1)[1]),
    "dashboard_port": ray_constants.DEFAULT_DASHBOARD_PORT,
}))
ray.shutdown()
"""


@pytest.mark.slow
def test_the_local_ray_of_a_sweep_serves_no_dashboard():
    """A sweep's local Ray has its dashboard off: Ray reports no dashboard URL and nothing
    listens on the dashboard's port, on any address. Ray 2.60 still starts its dashboard
    process (minimal without ray[default]), without its web frontend and told 127.0.0.1. And
    every server of that Ray (GCS, raylet, agents, workers) listens on 127.0.0.1 only
    (sweeps/cluster/private_api.py: Ray's default is every interface, under the external IP)."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    proc = subprocess.run(
        [sys.executable, "-c", RAY_OF_A_SWEEP],
        cwd=REPO,
        env=env,  # without the tests' own loopback switch (conftest.py): start_ray's alone
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["url"] == ""
    ports = {port for _, listening in seen["processes"] for _, port in listening}
    assert seen["gcs_port"] in ports  # the listing sees the session's servers ...
    assert seen["dashboard_port"] not in ports  # ... and none of them is the dashboard
    dashboards = [
        (cmd, listening)
        for cmd, listening in seen["processes"]
        if any(arg.endswith("dashboard/dashboard.py") for arg in cmd)
    ]
    assert dashboards, "no dashboard process found: the listing is not seeing the session"
    for cmd, _ in dashboards:
        assert {"--disable-frontend", "--host=127.0.0.1"} <= set(cmd), cmd
    wide = [
        (cmd[:2], ip, port)
        for cmd, listening in seen["processes"]
        for ip, port in listening
        if not ipaddress.ip_address(ip.removeprefix("::ffff:")).is_loopback
    ]
    assert wide == [], f"a local sweep's Ray listens beyond 127.0.0.1: {wide}"


# ---------------------------------------------------------------------------------------------
# Real sweeps through Ray Tune (smoke-sized)


def _trial_dir(trial_id: str) -> str:
    """The folder name of an autoencoder sweep's trial (``sweeps/folder/layout.py``)."""
    return trial_dirname(autoencoder.TRAINABLE.__name__, trial_id)


def _results(exp: Path, trial_dir: Path | None = None) -> list[dict]:
    """Every row Ray Tune wrote to result.json, of one trial folder or of all."""
    files = [trial_dir / "result.json"] if trial_dir else sorted(exp.glob("*/result.json"))
    return [json.loads(line) for f in files for line in f.read_text().splitlines() if line]


@pytest.mark.slow
@pytest.mark.realdata
def test_a_trial_whose_worker_is_killed_resumes_from_its_checkpoint(
    local_ray, tmp_path, monkeypatch
):
    """Every epoch once and one COMPLETE Optuna trial: this needs no exact replay, so it holds on
    a GPU too (docs/reliability.md)."""
    exp, markers = tmp_path / "killed", tmp_path / "faults"
    # The trial holds right after reporting epoch 2 (sweeps/fit/faults.py), and its worker is killed
    # there, in the epoch after it. Tune's report returns only at the driver's next call to the
    # worker, which comes once Tune has registered epoch 2's checkpoint (its "save" of the
    # result): a kill between the result and the save would restore epoch 1's and train epoch 2
    # twice (a race CI lost once, when this test killed on reading Tune's files).
    plan = helpers.fault_plan(markers, hold=[{"trial": 0, "epoch": 2}])
    monkeypatch.setenv(faults.VARIABLE, plan)
    killed, failed = [], []

    def kill_when_held():  # SIGKILL the trial's worker process, held after epoch 2
        try:
            held = helpers.wait_for_marker(
                markers / "held-trial0-epoch2.json",
                "trial 0 held after epoch 2",
                alive=sweep_on.is_set,
            )
            os.kill(held["pid"], signal.SIGKILL)
            killed.extend([held["pid"], held["trial_id"]])
        except BaseException as e:  # pytest.fail in this thread: reported by the test below
            failed.append(str(e))

    sweep_on = threading.Event()
    sweep_on.set()
    killer = threading.Thread(target=kill_when_held, daemon=True)
    killer.start()
    try:
        summary = ae_sweep.main(
            [*QUIET, "--storage-path", str(tmp_path), "--name", "killed", "--num-samples", "1"]
            + ["--max-epochs", "4", "--grace-period", "4", "--max-concurrent", "1"]
        )
    finally:
        sweep_on.clear()
        killer.join(timeout=60)
    assert killed, f"the worker was never killed: {failed}"
    assert summary["complete"] and summary["errored"] == 0 and summary["trials"] == 1

    trial_dir = exp / _trial_dir(killed[1])
    assert list(exp.glob(_trial_dir("*"))) == [trial_dir]  # the sweep's one trial, held
    rows = _results(exp, trial_dir)
    assert [r["training_iteration"] for r in rows] == [1, 2, 3, 4]  # no gap, no repeat
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert rows[1]["pid"] == killed[0] and rows[2]["pid"] != killed[0]  # a new worker went on
    assert rows[2]["iterations_since_restore"] == 1  # ... from the epoch-2 checkpoint
    latest = sorted(trial_dir.glob("checkpoint_*"))[-1]
    assert [h["epoch"] for h in checkpoints.load_checkpoint(latest)["history"]] == [1, 2, 3, 4]
    table = pq.read_table(exp / "results.parquet").to_pandas()
    assert list(table["epoch"]) == [1, 2, 3, 4] and set(table["status"]) == {"TERMINATED"}
    (ot,) = helpers.study_of(exp).trials
    assert ot.state == TrialState.COMPLETE and sorted(ot.intermediate_values) == [1, 2, 3, 4]
    assert ot.value == pytest.approx(rows[-1]["val_mse"])


# One sweep with every kind of trial, shared by the next two tests. Adam at lr 1e6 makes the
# autoencoder's loss NaN in its first epoch (diverged); a trial at 2e-3 raises in its second epoch
# (errored: see _fails_in_epoch_2); 1e-5 trains, slowly, so ASHA (grace 1, rungs at epochs 1 and 2)
# stops some of those while their rungs hold a diverged trial's NaN. The seed samples all three.
DIVERGES, RAISES, TRAINS = 1e6, 2e-3, 1e-5
FAULTY_SPACE = {
    "optimizer": "adam",
    "lr": tune.choice([DIVERGES, TRAINS, RAISES]),
    "latent_dim": 16,
}
FAULTY_ARGS = ["--num-samples", "6", "--max-epochs", "3", "--grace-period", "1", "--seed", "8"]
FAULTY_ARGS += ["--subset", "1000", "--max-failures", "0"]
PLANTED = f"RuntimeError: planted failure in epoch 2 of a trial with lr={RAISES:g}"


def _fails_in_epoch_2(train):
    """``train`` (the autoencoder's trainable) unchanged, except that a trial at lr RAISES raises
    in its second epoch, once it has trained it (before reporting it). It runs in Ray's workers:
    a nested function, so Ray ships it by value."""

    class FailingReporter(reporting.TuneReporter):
        def report(self, metrics, payload):
            if metrics["epoch"] == 2:
                raise RuntimeError(PLANTED.removeprefix("RuntimeError: "))
            super().report(metrics, payload)

    @functools.wraps(train)  # Tune names trial folders after the trainable
    def trainable(config, data=None, reporter=None):
        if config["lr"] == RAISES:
            reporter = FailingReporter()
        train(config, data=data, reporter=reporter)

    return trainable


class _RecordingASHA(TrialScheduler):
    """The sweep's own scheduler (the one its strategy built, same settings, same code), to which
    every question Tune asks goes; this only keeps each decision it makes with the rungs it made
    it against. Tune runs it in the driver: this process."""

    decisions: list[tuple[str, dict, list, str]] = []

    def __init__(self, scheduler: TrialScheduler) -> None:
        object.__setattr__(self, "_scheduler", scheduler)

    def __getattribute__(self, name: str):
        if name in ("on_trial_result", "decisions", "_scheduler"):
            return object.__getattribute__(self, name)
        return getattr(object.__getattribute__(self, "_scheduler"), name)

    def __setattr__(self, name: str, value) -> None:
        setattr(self._scheduler, name, value)

    def on_trial_result(self, tune_controller, trial, result):
        rungs = [(m, dict(r)) for m, r in self._scheduler.rungs]
        action = self._scheduler.on_trial_result(tune_controller, trial, result)
        self.decisions.append((trial.trial_id, dict(result), rungs, action))
        return action


_asha_scheduler = ASHA.scheduler


def _recording_scheduler(strategy, settings, perturbations):
    return _RecordingASHA(_asha_scheduler(strategy, settings, perturbations))


@pytest.fixture(scope="module")
def faulty_sweep(local_ray, tmp_path_factory):
    """(settings, summary, what it printed, its folder) of the sweep described above."""
    storage = tmp_path_factory.mktemp("faulty")
    argv = [*QUIET, "--storage-path", str(storage), "--name", "faulty", *FAULTY_ARGS]
    settings = cli.parse_settings(ae_sweep.SWEEP, cli.build_parser(ae_sweep.SWEEP), argv)
    _RecordingASHA.decisions.clear()
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.setattr(autoencoder, "TRAINABLE", _fails_in_epoch_2(autoencoder.TRAINABLE))
        mp.setattr(ASHA, "scheduler", _recording_scheduler)
        summary = runner.run(ae_sweep.SWEEP, settings, FAULTY_SPACE)
    print(out.getvalue())  # shown if a test fails
    return settings, summary, out.getvalue(), storage / "faulty"


def _last_rows(exp: Path):
    table = pq.read_table(exp / "results.parquet").to_pandas()
    return table, table.sort_values("training_iteration").groupby("trial_id").last()


def _replayed(settings, trial_id: str, result: dict, rungs: list) -> str:
    """What the sweep's scheduler decides on ``result`` when its rungs hold ``rungs``: a fresh
    one from the strategy, given that state, asked the same question."""
    asha = ASHA().scheduler(settings, {})
    asha.set_search_properties(ae_sweep.METRIC, ae_sweep.MODE)
    trial = argparse.Namespace(trial_id=trial_id)
    asha.on_trial_add(None, trial)
    asha.rungs = [(m, dict(r)) for m, r in rungs]
    return asha.on_trial_result(None, trial, result)


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.filterwarnings("ignore:All-NaN slice")  # numpy, at a rung that holds only the NaN
def test_a_diverging_trial_ends_once_and_the_sweep_carries_on(faulty_sweep):
    settings, summary, out, exp = faulty_sweep
    table, last = _last_rows(exp)
    bad = last[last["config/lr"] == DIVERGES]
    good = last[last["config/lr"] == TRAINS]
    assert len(bad) and len(good) and (last["config/lr"] == RAISES).any(), "reseed the sweep"
    assert summary["complete"] and summary["trials"] == 6 and summary["diverged"] == len(bad)
    assert set(bad["status"]) == {"DIVERGED"} and not bad["stopped_early"].any()
    assert bad["error"].str.contains("became nan at epoch 1; the trial diverged").all()
    assert set(good["status"]) == {"TERMINATED"} and good["error"].isna().all()
    for trial_id in bad.index:  # ended at once, never retried from its checkpoint
        rows = _results(exp, exp / _trial_dir(trial_id))
        assert len(rows) == 1 and rows[0]["diverged"] is True
        assert not (exp / _trial_dir(trial_id) / "error.txt").exists()
        assert f"trial {trial_id} diverged: " in out
    assert f"{len(bad)} diverged" in out

    study = helpers.study_of(exp)
    by_id = {t.user_attrs["trial_id"]: t for t in study.trials}
    assert set(by_id) == set(last.index)
    for trial_id in bad.index:
        assert by_id[trial_id].state == TrialState.FAIL
        assert "the trial diverged" in by_id[trial_id].user_attrs["fail_reason"]
        assert by_id[trial_id].intermediate_values == {}  # the NaN is not a score
    best = json.loads((exp / "best.json").read_text())
    assert best["trial_id"] in set(good.index) and best["config"]["lr"] == TRAINS

    # ASHA ignores the NaN: each of its decisions on the other trials is the one it makes on the
    # same rungs without the diverged trials' entries, and some were made with a NaN there.
    assert good["stopped_early"].any(), "ASHA stopped no trial: its rungs were not exercised"
    decisions = [d for d in _RecordingASHA.decisions if d[0] not in set(bad.index)]
    with_nan = 0
    for trial_id, result, rungs, action in decisions:
        assert _replayed(settings, trial_id, result, rungs) == action  # the replay is faithful
        clean = [(m, {k: v for k, v in r.items() if not math.isnan(v)}) for m, r in rungs]
        assert _replayed(settings, trial_id, result, clean) == action, (trial_id, result)
        with_nan += any(
            m <= result["training_iteration"] and any(math.isnan(v) for v in r.values())
            for m, r in rungs
        )
    assert with_nan, "no trial was judged at a rung holding a NaN"
    stopped = {  # STOP before the last epoch: ASHA's own stops (at the last, Tune's end)
        trial_id
        for trial_id, result, _, action in decisions
        if action == TrialScheduler.STOP and result["training_iteration"] < settings.max_epochs
    }
    others = last[last["config/lr"] != DIVERGES]
    assert stopped == set(others.index[others["stopped_early"]])


@pytest.mark.slow
@pytest.mark.realdata
def test_a_trial_that_raises_is_an_error_with_its_exception_and_the_sweep_carries_on(faulty_sweep):
    _, summary, out, exp = faulty_sweep
    table, last = _last_rows(exp)
    raised = last[last["config/lr"] == RAISES]
    assert len(raised) and summary["errored"] == len(raised) and summary["complete"]
    for trial_id, rows in table[table["config/lr"] == RAISES].groupby("trial_id"):
        assert list(rows["epoch"]) == [1]  # epoch 1 reported; epoch 2 raised
        assert set(rows["status"]) == {"ERROR"} and set(rows["error"]) == {PLANTED}
        assert not rows["stopped_early"].any()
        assert f"ae_sweep: trial {trial_id} errored: {PLANTED}" in out.splitlines()
        assert (exp / _trial_dir(trial_id) / "error.txt").is_file()
        assert len(_results(exp, exp / _trial_dir(trial_id))) == 1  # not retried
    assert f"{len(raised)} errored" in out
    others = last[last["config/lr"] != RAISES]
    assert set(others["status"]) <= {"TERMINATED", "DIVERGED"}  # the others carried on

    by_id = {t.user_attrs["trial_id"]: t for t in helpers.study_of(exp).trials}
    for trial_id, row in raised.iterrows():
        ot = by_id[trial_id]
        assert ot.state == TrialState.FAIL and ot.user_attrs["fail_reason"] == "the trial errored"
        assert ot.intermediate_values == pytest.approx({1: row["val_mse"]})
    assert json.loads((exp / "best.json").read_text())["trial_id"] not in set(raised.index)


def test_the_ctrl_c_helper_uses_this_codes_fault_points():
    """Else ``interrupted`` below would fall back to Ctrl-C on a poll of Tune's snapshot, whose
    moment is a timing window (it did from 7f43e02, which moved sweeps/faults.py, to 6354ed7)."""
    assert helpers.has_fault_points(Path(__file__).resolve().parents[1])


@pytest.fixture(scope="module")
def interrupted(real_data_dir, tmp_path_factory):
    """A smoke sweep (offline W&B) stopped with Ctrl-C while its driver is paused right after a
    snapshot, in the folder, that holds a finished trial and an unfinished one (sweeps/fit/faults.py):
    (its folder, a copy of it made at once, the exit status, what the driver printed)."""
    root = tmp_path_factory.mktemp("interrupted")
    exp = root / "runs" / "interrupted"
    cmd = [sys.executable, "sweeps/ae_sweep.py", "--smoke-test", "--wandb-mode", "offline"]
    cmd += ["--storage-path", str(exp.parent), "--name", "interrupted", "--num-samples", "5"]
    cmd += ["--max-epochs", "3"]
    env = {**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "1"}  # a snapshot every second: short waits
    code = helpers.ctrl_c_after_a_trial(cmd, exp, root / "first.log", env=env)
    copy = root / "copy" / "interrupted"
    shutil.copytree(exp, copy, symlinks=True)  # copy2: contents and modification times
    return exp, copy, code, (root / "first.log").read_text()


def _tree(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` with its modification time, and each file's content hash."""
    state = {}
    for path in sorted(root.rglob("*")):
        stat = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        state[str(path.relative_to(root))] = (stat.st_mtime_ns, digest)
    return state


@pytest.mark.slow
@pytest.mark.realdata
def test_resume_after_ctrl_c_keeps_every_result_and_agrees_with_ray(local_ray, interrupted):
    exp, _, code, first = interrupted
    assert code == 130, first
    assert f"--resume {exp}" in first  # the driver said how to continue
    finished = helpers._terminated_in_snapshot(exp)
    assert finished and helpers._finished_trials(exp) < 5
    before = {name: (exp / name / "result.json").read_text() for name in finished}

    summary = ae_sweep.main(["--resume", str(exp), "--wandb-mode", "offline"])
    assert summary["complete"] and summary["trials"] == 5 and summary["errored"] == 0
    for name, text in before.items():  # finished trials kept, not run again
        assert (exp / name / "result.json").read_text() == text

    table = pq.read_table(exp / "results.parquet").to_pandas()
    assert not table.duplicated(["trial_id", "training_iteration"]).any()
    helpers.check_study_matches(
        exp, table, "val_mse", 3
    )  # ids, every epoch's value, PRUNED/COMPLETE
    helpers.check_wandb_runs(exp, table, ["val_mse"])  # the W&B runs too, across the two drivers
    analysis = tune.ExperimentAnalysis(str(exp))
    ray_last = {t.trial_id: t.last_result["val_mse"] for t in analysis.trials}
    parquet_last = table.sort_values("training_iteration").groupby("trial_id")["val_mse"].last()
    assert ray_last == pytest.approx(parquet_last.to_dict())
    study = {
        t.user_attrs["trial_id"]: t
        for t in helpers.study_of(exp).trials
        if t.state != TrialState.FAIL
    }
    assert {k: t.value for k, t in study.items()} == pytest.approx(ray_last)


@pytest.mark.slow
@pytest.mark.realdata
def test_resume_reads_only_the_folder_it_was_given(local_ray, interrupted, tmp_path):
    """The interrupted folder, moved (and renamed) elsewhere, resumes there, although sweep.json,
    the Optuna study's URL that Tune pickled and Tune's own state all name the old place; the
    old place (where the original stays, as after `cp -r`) is not touched."""
    exp, copy, code, first = interrupted
    assert code == 130, first
    moved = tmp_path / "elsewhere" / "renamed"
    shutil.copytree(copy, moved, symlinks=True)
    record = json.loads((moved / "sweep.json").read_text())
    assert record["experiment_dir"] == str(exp)
    assert record["study_storage"] == f"journal:///{exp / 'optuna.journal'}"
    assert str(exp).encode() in (moved / "tuner.pkl").read_bytes()  # the study's pickled path
    old_place = _tree(exp.parent)

    summary = ae_sweep.main(["--resume", str(moved), "--wandb-mode", "offline"])
    assert summary["complete"] and summary["trials"] == 5 and summary["errored"] == 0
    assert _tree(exp.parent) == old_place  # nothing there was written, created or removed

    table = pq.read_table(moved / "results.parquet").to_pandas()
    assert table["trial_id"].nunique() == 5
    assert not table.duplicated(["trial_id", "training_iteration"]).any()
    for trial_id in table["trial_id"].unique():  # every trial, old and new, wrote in the new place
        assert (moved / _trial_dir(trial_id) / "result.json").is_file()
    helpers.check_study_matches(
        moved, table, "val_mse", 3
    )  # the study in moved/optuna.journal agrees
    helpers.check_wandb_runs(moved, table, ["val_mse"])  # and the W&B runs in moved/wandb
    record = json.loads((moved / "sweep.json").read_text())
    assert record["experiment_dir"] == str(moved)
    assert record["study_storage"] == f"journal:///{moved / 'optuna.journal'}"
    assert record["resumes"][-1]["experiment_dir_before"] == str(exp)
    best = json.loads((moved / "best.json").read_text())
    assert best["study_storage"] == record["study_storage"]
    assert best["checkpoint"] == str(moved / "best" / "checkpoint.pt")


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
        for name in ("results.parquet", "best.json", "sweep.json", "optuna.journal"):
            assert (exp / name).is_file()
        assert list((exp / "wandb").glob("offline-run-*/run-*.wandb"))
        assert list(ray_tmp.glob("ray/session_*/logs/*"))
        needles = list(planted.values())
        assert _files_containing(exp, needles) == []
        assert _files_containing(ray_tmp, needles) == []
        assert not any(n in proc.stdout + proc.stderr for n in needles)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.realdata
def test_wandb_out_of_reach_logs_offline_without_holding_the_sweep_up(real_data_dir, tmp_path):
    """With an API key set, a sweep logs online; when the server refuses connections (a firewall,
    a compute node without internet), the sweep finds out once, in seconds, logs offline for the
    whole sweep and says so in one line with the `wandb sync` command. Without that each
    trial's wandb.init waited for its timeout in turn (a 14 s smoke sweep took 6 minutes)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    cmd = [sys.executable, "sweeps/ae_sweep.py", "--smoke-test", "--num-samples", "2"]
    cmd += ["--storage-path", str(tmp_path)]

    def sweep(name: str, *flags: str, **more_env: str) -> tuple[str, float]:
        start = time.monotonic()
        proc = subprocess.run(
            [*cmd, "--name", name, *flags],
            cwd=REPO,
            env={**env, **more_env},
            capture_output=True,
            text=True,
            timeout=600,
        )
        wall = time.monotonic() - start
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        own = helpers.sweeps_own_lines(proc.stderr)  # not a worker's SystemExit at shutdown
        assert not any("Traceback" in line for line in own), proc.stderr[-3000:]
        return proc.stdout, wall

    _, disabled = sweep("disabled", "--wandb-mode", "disabled")
    key = secrets.token_hex(20)
    out, unreachable = sweep("unreachable", WANDB_API_KEY=key, WANDB_BASE_URL="http://127.0.0.1:9")
    exp = tmp_path / "unreachable"
    said = [line for line in out.splitlines() if "W&B: cannot reach" in line]
    assert len(said) == 1, out[-3000:]
    assert "http://127.0.0.1:9" in said[0] and "Connection refused" in said[0]
    assert said[0].endswith(f"wandb sync {exp}/wandb/offline-run-*")
    assert json.loads((exp / "sweep.json").read_text())["wandb"]["mode"] == "offline"
    print(f"wall: W&B disabled {disabled:.1f} s, W&B out of reach {unreachable:.1f} s")
    # Offline W&B costs seconds (its service, the runs' start and finish), and two sweeps'
    # walls on 2 busy CPUs differ by several more; a wait for wandb.init's timeout per trial
    # costs minutes (a 14 s smoke sweep took 6 without the probe: the docstring).
    assert unreachable < disabled + 60, (disabled, unreachable)
    table = pq.read_table(exp / "results.parquet").to_pandas()
    helpers.check_wandb_runs(exp, table, ["train_mse", "val_mse"])  # every trial, every epoch
    assert _files_containing(exp, [key]) == []
