"""Sweeps: the three scripts run for real (smoke-sized) on FashionMNIST through Ray Tune, Optuna,
ASHA and offline W&B; a sweep killed mid-run resumes to exactly its trials; bad flags fail in one
line with exit code 2 before Ray starts; the Optuna bookkeeping and the storage helper are also
pinned without Ray."""

import argparse
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from helpers import (
    AHEAD_ARGS,
    _ahead_of_snapshot,
    _finished_trials,
    _restored_checkpoints,
    _snapshot_trials,
    _terminated_in_snapshot,
    check_study_matches,
    check_wandb_runs,
    fault_env,
    mid_sweep,
    one_error_line,
    optuna_searcher,
    report_epochs,
    study_of,
    wait_for_marker,
    wandb_history,
    wandb_records,
    wandb_run_end,
)
from optuna.trial import TrialState
from ray import tune

from sweeps import ae_sweep, classifier_sweep, gan_sweep
from sweeps.fit.wandb_hub import resolve_wandb_mode
from sweeps.folder import results
from sweeps.folder.results import rows_to_table
from sweeps.folder.storage import Folder, check_writable
from sweeps.request.encoder import resolve_encoder
from sweeps.search.schedulers import RevisingASHAScheduler
from sweeps.search.searcher import TrialStateOptunaSearch
from trainables import checkpoints, gan

REPO = Path(__file__).resolve().parents[1]
SMOKE = ["--smoke-test", "--wandb-mode", "offline"]


# ---------------------------------------------------------------------------------------------
# Without Ray: the searcher's Optuna bookkeeping, the storage helper, bad flags


def test_searcher_tells_optuna_pruned_fail_and_complete(tmp_path):
    s = optuna_searcher(tmp_path)
    report_epochs(s, "full", [0.3, 0.2, 0.1])
    report_epochs(s, "asha", [0.5, 0.4])  # stopped at epoch 2 of 3
    report_epochs(s, "nan", [0.5, float("nan")])
    report_epochs(s, "boom", [0.5], error=True)
    trials = {t.user_attrs["trial_id"]: t for t in s._ot_study.get_trials()}
    assert trials["full"].state == TrialState.COMPLETE and trials["full"].value == 0.1
    assert trials["full"].intermediate_values == {1: 0.3, 2: 0.2, 3: 0.1}
    assert trials["asha"].state == TrialState.PRUNED
    assert trials["asha"].intermediate_values == {1: 0.5, 2: 0.4}
    assert trials["asha"].value == 0.4  # Optuna keeps a pruned trial's last intermediate value
    assert trials["nan"].state == TrialState.FAIL
    assert "not a finite number" in trials["nan"].user_attrs["fail_reason"]
    assert trials["boom"].state == TrialState.FAIL


def test_searcher_restore_fails_orphans_and_reopens_resumed_errored_trials(tmp_path):
    s = optuna_searcher(tmp_path)
    report_epochs(s, "done", [0.3, 0.2, 0.1])
    report_epochs(s, "crashed", [0.5, 0.4], complete=False)
    s.on_trial_complete("crashed", error=True)
    report_epochs(s, "running", [0.6], complete=False)
    s.save(tmp_path / "searcher.pkl")  # Tune's snapshot
    s.suggest("orphan")  # asked for after the snapshot, then the driver dies

    r = TrialStateOptunaSearch(max_epochs=3)
    r.restore(tmp_path / "searcher.pkl")
    by_id = {t.user_attrs["trial_id"]: t for t in r._ot_study.get_trials()}
    assert by_id["orphan"].state == TrialState.FAIL
    assert "snapshot" in by_id["orphan"].user_attrs["fail_reason"]
    # Tune resumes "running" from its checkpoint and "crashed" (resume_errored) from its own.
    r.on_trial_result("running", {"val_mse": 0.55, "training_iteration": 2})
    r.on_trial_complete("running", {"val_mse": 0.5, "training_iteration": 3})
    r.on_trial_result("crashed", {"val_mse": 0.3, "training_iteration": 3})
    r.on_trial_complete("crashed", {"val_mse": 0.3, "training_iteration": 3})
    trials = r._ot_study.get_trials()
    running = [t for t in trials if t.user_attrs["trial_id"] == "running"]
    assert [t.state for t in running] == [TrialState.COMPLETE]
    assert running[0].intermediate_values == {1: 0.6, 2: 0.55, 3: 0.5}
    crashed = [t for t in trials if t.user_attrs["trial_id"] == "crashed"]  # by number
    assert [t.state for t in crashed] == [TrialState.FAIL, TrialState.COMPLETE]
    retry = crashed[1]
    assert retry.user_attrs["retry_of"] == crashed[0].number
    assert retry.params == crashed[0].params and retry.value == 0.3
    assert retry.intermediate_values == {1: 0.5, 2: 0.4, 3: 0.3}


def test_searcher_retries_trials_tune_rewinds_to_an_older_checkpoint(tmp_path):
    """The driver dies after trials reported epochs that Tune's snapshot does not hold: Tune runs
    those epochs again, and the study must end up with the values of the run Tune kept."""
    s = optuna_searcher(tmp_path)
    report_epochs(s, "scratch", [0.5], complete=False)
    report_epochs(s, "ckpt", [0.5], complete=False)
    report_epochs(s, "ended", [0.5], complete=False)
    s.save(tmp_path / "searcher.pkl")  # Tune's snapshot; then more epochs before the driver dies
    s.on_trial_result("scratch", {"val_mse": 0.4, "training_iteration": 2})
    s.on_trial_result("ckpt", {"val_mse": 0.4, "training_iteration": 2})
    s.on_trial_complete("ended", {"val_mse": 0.4, "training_iteration": 2})  # ASHA: PRUNED

    r = TrialStateOptunaSearch(max_epochs=3)
    r.restore(tmp_path / "searcher.pkl")
    # "scratch" had no checkpoint: it starts over and ASHA stops it at epoch 1 (a new value).
    r.on_trial_complete("scratch", {"val_mse": 0.45, "training_iteration": 1})
    # "ckpt" goes on from its epoch-1 checkpoint; "ended" too, and now runs to the end.
    for trial_id in ("ckpt", "ended"):
        r.on_trial_result(trial_id, {"val_mse": 0.35, "training_iteration": 2})
        r.on_trial_complete(trial_id, {"val_mse": 0.3, "training_iteration": 3})
    by_id: dict[str, list] = {}
    for t in r._ot_study.get_trials():
        by_id.setdefault(t.user_attrs["trial_id"], []).append(t)
    first, retry = by_id["scratch"]
    assert first.state == TrialState.FAIL and "rewound" in first.user_attrs["fail_reason"]
    assert retry.state == TrialState.PRUNED and retry.intermediate_values == {1: 0.45}
    assert retry.user_attrs["retry_of"] == first.number and retry.params == first.params
    first, retry = by_id["ckpt"]
    assert first.state == TrialState.FAIL and first.intermediate_values == {1: 0.5, 2: 0.4}
    assert retry.state == TrialState.COMPLETE and retry.value == 0.3
    assert retry.intermediate_values == {1: 0.5, 2: 0.35, 3: 0.3}
    first, retry = by_id["ended"]  # a finished Optuna trial cannot be changed: it stays PRUNED
    assert first.state == TrialState.PRUNED and first.intermediate_values == {1: 0.5, 2: 0.4}
    assert retry.state == TrialState.COMPLETE and retry.user_attrs["retry_of"] == first.number
    assert retry.intermediate_values == {1: 0.5, 2: 0.35, 3: 0.3}

    # Without a restore, a trial that reports its last epoch again (the final result) is not
    # rewound, and neither is one that ASHA stops on an epoch it never reported.
    report_epochs(r, "plain", [0.3, 0.2, 0.1], complete=False)
    r.on_trial_complete("plain", {"val_mse": 0.1, "training_iteration": 3})
    report_epochs(r, "asha", [0.3, 0.2])
    states = {t.user_attrs["trial_id"]: [] for t in r._ot_study.get_trials()}
    for t in r._ot_study.get_trials():
        states[t.user_attrs["trial_id"]].append(t.state)
    assert states["plain"] == [TrialState.COMPLETE] and states["asha"] == [TrialState.PRUNED]


@pytest.mark.parametrize("revise", [True, False])
def test_revising_asha_judges_a_trial_as_if_it_reached_its_rung_last(revise):
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    cls = RevisingASHAScheduler if revise else ASHAScheduler
    asha = cls(time_attr="training_iteration", max_t=9, grace_period=1, reduction_factor=3)
    asha.set_search_properties("val_mse", "min")
    trials = {name: argparse.Namespace(trial_id=name) for name in "abcd"}
    for t in trials.values():
        asha.on_trial_add(None, t)

    def result(name, epoch, mse):
        return asha.on_trial_result(
            None, trials[name], {"training_iteration": epoch, "val_mse": mse}
        )

    # "a" is the worst but reaches rung 1 (epoch 1) first: nothing to compare with, it goes on.
    assert result("a", 1, 0.9) == TrialScheduler.CONTINUE
    for name, mse in (("b", 0.2), ("c", 0.3)):
        assert result(name, 1, mse) == TrialScheduler.CONTINUE
    # Now "a" would not pass rung 1 (it is not in the top third of b, c): revised, it stops.
    assert result("a", 2, 0.8) == (TrialScheduler.STOP if revise else TrialScheduler.CONTINUE)
    assert result("b", 2, 0.15) == TrialScheduler.CONTINUE  # the best of its rung goes on
    assert result("d", 1, float("nan")) == TrialScheduler.CONTINUE  # a NaN is not a score...
    assert result("b", 3, 0.1) == TrialScheduler.CONTINUE  # ...and moves no cutoff


class _PrunerTrials:
    """Trials as the pruner sees them (id, status, last result), each saving checkpoints into
    its own folder under ``root``, and the pruner's hooks called in Tune's order."""

    def __init__(self, pruner, root: Path):
        self.pruner, self.root, self.trials = pruner, root, {}

    def save(self, trial_id: str, epoch: int, value: float, metric: str = "val_mse"):
        trial = self.trials.setdefault(
            trial_id, argparse.Namespace(trial_id=trial_id, status="RUNNING", last_result={})
        )
        path = self.root / trial_id / f"checkpoint_{epoch:06d}"
        path.mkdir(parents=True)
        trial.last_result = {metric: value, "training_iteration": epoch + 1}
        trial.checkpoint = tune.Checkpoint(str(path))
        self.pruner.on_checkpoint(0, [], trial, trial.checkpoint)

    def end(self, trial_id: str, status: str = "TERMINATED"):
        trial = self.trials[trial_id]
        trial.status = status
        hook = self.pruner.on_trial_error if status == "ERROR" else self.pruner.on_trial_complete
        hook(0, [], trial)

    def snapshots(self, n: int):
        for _ in range(n):
            self.pruner.get_state()

    def kept(self, trial_id: str) -> list[int]:
        return sorted(int(p.name[-6:]) for p in (self.root / trial_id).glob("checkpoint_*"))


def test_checkpoint_pruner_keeps_what_a_snapshot_names_until_newer_snapshots_replace_it(tmp_path):
    from sweeps.fit.checkpoint_pruner import CheckpointPruner

    t = _PrunerTrials(CheckpointPruner("val_mse", "min"), tmp_path)
    t.save("t", 0, 0.5)
    t.snapshots(1)  # a snapshot names checkpoint 0 (the latest then)
    t.save("t", 1, 0.4)
    t.save("t", 2, 0.45)
    assert t.kept("t") == [0, 1, 2]  # 0: named by the snapshot; 1: the best; 2: the latest
    t.save("t", 3, float("nan"))  # a NaN is never the best
    assert t.kept("t") == [0, 1, 3]
    t.snapshots(CheckpointPruner.SNAPSHOTS)  # newer snapshots name checkpoint 3
    assert t.kept("t") == [1, 3]
    t.save("t", 4, 0.2)
    t.save("t", 5, 0.3)
    assert t.kept("t") == [3, 4, 5]  # 3 is still named by the last snapshots
    t.end("t")
    t.snapshots(1)  # Tune's final snapshot, then the end of the experiment
    t.pruner.on_experiment_end(list(t.trials.values()))
    assert t.kept("t") == [4, 5]  # the best trial: its best and latest

    maximise = _PrunerTrials(CheckpointPruner("val_acc", "max"), tmp_path / "acc")
    for epoch, acc in enumerate([0.5, 0.9, 0.7]):
        maximise.save("m", epoch, acc, metric="val_acc")
    assert maximise.kept("m") == [1, 2]


@pytest.mark.parametrize("keep", ["best", "all"])
def test_checkpoint_pruner_leaves_ended_trials_their_metrics_but_the_best_its_checkpoints(
    tmp_path, keep
):
    """Ended trials lose their checkpoints (keep=best) once no recent snapshot shows them
    running; the best so far keeps its own until another beats it; an errored trial keeps its
    latest (--resume retries it); a trial still running keeps everything it had."""
    from sweeps.fit.checkpoint_pruner import CheckpointPruner

    n = CheckpointPruner.SNAPSHOTS
    t = _PrunerTrials(CheckpointPruner("val_mse", "min", keep=keep), tmp_path)
    for trial_id in "abcde":
        t.save(trial_id, 0, 0.5)
        t.save(trial_id, 1, 0.3 if trial_id != "b" else 0.6)
    t.snapshots(1)  # names every trial's epoch-1 checkpoint
    t.end("a")  # the best so far
    t.end("b")  # worse than a
    t.end("d", status="ERROR")
    t.save("e", 2, float("nan"))
    t.trials["e"].last_result["diverged"] = True
    t.end("e")  # diverged: never the best
    # Still named by the snapshot, as running: best, latest (and that one) for now.
    assert [t.kept(x) for x in "abde"] == [[1], [0, 1], [1], [1, 2]]
    t.snapshots(n)
    pruned = [] if keep == "best" else [1]
    assert t.kept("a") == [1]  # the best's best and latest (one checkpoint here)
    assert t.kept("b") == ([] if keep == "best" else [0, 1])
    assert t.kept("d") == [1]  # errored: its latest, for --resume
    assert t.kept("e") == ([] if keep == "best" else [1, 2])
    assert t.kept("c") == [1]  # running: its best and latest, named by the snapshots
    t.save("c", 2, 0.1)
    t.end("c")  # beats a: a ended, so it is pruned; c is named by the snapshots yet
    assert t.kept("a") == pruned and t.kept("c") == [1, 2]
    t.snapshots(1)  # Tune's final snapshot, then the end of the experiment
    t.pruner.on_experiment_end(list(t.trials.values()))
    assert t.kept("c") == [2]  # its best and latest, now one
    assert t.kept("a") == pruned

    # A resumed sweep's pruner knows nothing of what ended before: at the end it prunes those.
    again = _PrunerTrials(CheckpointPruner("val_mse", "min", keep=keep), tmp_path / "resumed")
    for trial_id, mse in (("x", 0.2), ("y", 0.1)):
        again.save(trial_id, 0, mse)
    resumed = CheckpointPruner("val_mse", "min", keep=keep)
    for trial in again.trials.values():
        trial.status = "TERMINATED"
    resumed.on_experiment_end(list(again.trials.values()))
    assert again.kept("y") == [0] and again.kept("x") == ([] if keep == "best" else [0])


def test_a_pruner_pickled_before_keep_checkpoints_keeps_every_trials_checkpoints(tmp_path):
    """tuner.pkl of an older folder holds a pruner without ``keep``: resumed, it keeps what it
    always kept (each trial's best and latest)."""
    from ray import cloudpickle

    from sweeps.fit.checkpoint_pruner import CheckpointPruner

    old = CheckpointPruner("val_mse", "min")
    for name in ("keep", "_live", "_ended", "_settled", "_best"):
        del old.__dict__[name]
    restored = cloudpickle.loads(cloudpickle.dumps(old))
    assert restored.keep == "all"
    t = _PrunerTrials(restored, tmp_path)
    t.save("a", 0, 0.1)
    t.save("b", 0, 0.2)
    t.end("a")
    t.end("b")
    t.pruner.on_experiment_end(list(t.trials.values()))
    assert t.kept("a") == [0] and t.kept("b") == [0]


def test_folder_writes_through_pyarrow_to_s3(tmp_path, monkeypatch):
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    for key, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="sweeps")
        exp = Folder(
            f"s3://sweeps/runs?endpoint_override={host}:{port}&scheme=http&region=us-east-1"
        ).child("ae")
        assert exp.local is None and not exp.exists("sweep.json")
        check_writable(exp)
        assert exp.write_json("sweep.json", {"a": 1}).startswith("s3://sweeps/runs/ae/sweep.json?")
        assert exp.read_json("sweep.json") == {"a": 1} and exp.exists("sweep.json")
        (tmp_path / "checkpoint.pt").write_bytes(b"weights")
        exp.copy_in(pafs.LocalFileSystem(), str(tmp_path / "checkpoint.pt"), "best/c.pt")
        exp.write_parquet("results.parquet", rows_to_table([{"trial_id": "t", "x": 1.0}]))
        objects = boto3.client("s3", endpoint_url=endpoint).list_objects_v2(Bucket="sweeps")
        keys = {o["Key"] for o in objects["Contents"]}
        assert {"runs/ae/sweep.json", "runs/ae/best/c.pt", "runs/ae/results.parquet"} <= keys
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--num-samples", "0"], "--num-samples 0 must be at least 1"),
        (["--gpus-per-trial", "-1"], "--gpus-per-trial -1.0 is negative"),
        (["--gpus-per-trial", "1000"], "largest node has"),
        (["--space", "huge"], "unknown --space 'huge'; choose one of report, wide"),
        (["--lr-range", "1e-2", "1e-4"], "is reversed or empty; give the lower bound first"),
        (["--grace-period", "9", "--max-epochs", "3"], "--grace-period 9 must be between"),
        (["--num-samples", "two"], "invalid int value"),
        (["--address", "127.0.0.1:1"], "cannot reach Ray at --address 127.0.0.1:1"),
        (["--address", "ray://127.0.0.1:1"], "cannot reach Ray"),
        (["--resume", "."], "no sweep.json there"),
        (["--resume", "x", "--max-epochs", "3"], "--max-epochs cannot change when resuming"),
    ],
)
def test_bad_flags_fail_in_one_line_before_ray_starts(argv, expected, tmp_path, capsys):
    if "--resume" not in argv:
        argv = [*argv, "--storage-path", str(tmp_path)]
    with pytest.raises(SystemExit) as e:
        ae_sweep.main(argv)
    assert e.value.code == 2
    assert expected in one_error_line(capsys)
    assert not list(tmp_path.iterdir())  # nothing was written


def test_unwritable_storage_and_online_wandb_without_key(tmp_path, capsys, monkeypatch):
    (tmp_path / "a_file").write_text("")
    with pytest.raises(SystemExit) as e:
        ae_sweep.main(["--storage-path", str(tmp_path / "a_file" / "runs")])
    assert e.value.code == 2 and "cannot write to storage path" in one_error_line(capsys)

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no_netrc"))
    with pytest.raises(SystemExit) as e:
        ae_sweep.main(["--storage-path", str(tmp_path / "runs"), "--wandb-mode", "online"])
    assert e.value.code == 2 and "needs an API key" in one_error_line(capsys)
    monkeypatch.delenv("WANDB_MODE")
    assert resolve_wandb_mode(None) == "offline"  # no key: offline by default
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert resolve_wandb_mode(None) == "online"


def test_classifier_needs_a_checkpoint_with_an_encoder(tmp_path, capsys):
    cases = [
        ([], "give exactly one of --encoder-checkpoint and --encoder-from"),
        (["--encoder-checkpoint", str(tmp_path / "nope.pt")], "does not exist"),
        (["--encoder-from", str(tmp_path)], "no best.json"),
    ]
    checkpoints.save_checkpoint(
        checkpoints.checkpoint_payload("gan", gan.GANConfig(), {}, 1, [], {}), tmp_path
    )
    no_encoder = (
        "kind 'gan', whose model has no encoder; pass a checkpoint of one of: autoencoder, vae"
    )
    cases.append((["--encoder-checkpoint", str(tmp_path)], no_encoder))
    for argv, expected in cases:
        with pytest.raises(SystemExit) as e:
            classifier_sweep.main([*argv, "--storage-path", str(tmp_path / "runs")])
        assert e.value.code == 2 and expected in one_error_line(capsys), argv


@pytest.mark.slow
def test_script_prints_one_line_and_exits_2():
    proc = subprocess.run(
        [sys.executable, "sweeps/ae_sweep.py", "--num-samples", "-3"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: --num-samples -3 must be at least 1; "
        "pass the number of trials to run, e.g. --num-samples 20"
    )


# ---------------------------------------------------------------------------------------------
# Real sweeps (smoke-sized) through Ray Tune


@pytest.fixture(scope="module")
def ae_run(local_ray, tmp_path_factory):
    """The autoencoder sweep, smoke-sized with 5 trials of up to 3 epochs so ASHA (grace 1,
    reduction factor 2) stops some; shared by the tests that read what it wrote."""
    storage = tmp_path_factory.mktemp("runs")
    summary = ae_sweep.main(
        [*SMOKE, "--storage-path", str(storage), "--num-samples", "5", "--max-epochs", "3"]
        + ["--wandb-entity", "lab", "--wandb-log-checkpoint", "best"]
    )
    return summary, storage / "ae_sweep_smoke"


def check_sweep_folder(exp: Path, summary: dict, metric: str, mode: str, metrics: list[str]):
    """What every sweep writes, read back as analysis would."""
    sweep = json.loads((exp / "sweep.json").read_text())
    assert sweep["metric"] == metric and sweep["mode"] == mode
    assert sweep["study_storage"] == f"journal:///{exp}/optuna.journal"
    assert sweep["study_file"] == "optuna.journal"
    assert summary["complete"] and summary["errored"] == 0
    assert summary["trials"] == sweep["num_samples"]

    table = pq.read_table(exp / "results.parquet").to_pandas()
    fixed = ["trial_id", "status", "stopped_early", "epoch", "training_iteration"]
    assert list(table.columns[:5]) == fixed
    assert set(metrics) <= set(table.columns)
    assert {"config/" + k for k in sweep["search_space"]} <= set(table.columns)
    assert set(table["status"]) == {"TERMINATED"}
    assert not table.duplicated(["trial_id", "training_iteration"]).any()
    assert table["trial_id"].nunique() == sweep["num_samples"]

    best = json.loads((exp / "best.json").read_text())
    last = table.sort_values("training_iteration").groupby("trial_id").last()
    expected = last[metric].min() if mode == "min" else last[metric].max()
    assert best["val"][metric] == pytest.approx(expected)
    assert best["trial_id"] == (last[metric].idxmin() if mode == "min" else last[metric].idxmax())
    assert best["checkpoint"] == str(exp / "best" / "checkpoint.pt")
    assert checkpoints.load_checkpoint(best["checkpoint"])["kind"] == sweep["model"]
    assert (
        best["study_name"] == sweep["study_name"]
        and best["config"]["epochs"] == sweep["max_epochs"]
    )

    check_wandb_runs(exp, table, metrics)
    check_checkpoints_kept(exp, table, metric, mode, best["trial_id"])
    # Tune's TensorBoard files: in every trial folder with --tensorboard, in none without
    events = {p.parent.name for p in exp.glob("*/events.out.tfevents.*")}
    trial_dirs = {p.parent.name for p in exp.glob("*/result.json")}
    assert events == (trial_dirs if sweep["args"]["tensorboard"] else set())
    return table, best


def check_checkpoints_kept(
    exp: Path, table, metric: str, mode: str, best_trial: str, keep: str = "best"
) -> None:
    """The sweep's best trial (with --keep-checkpoints all, every trial) keeps two checkpoints at
    most: its latest epoch's and its best epoch's (every epoch writes one: checkpoint_000000 is
    epoch 1); with the default, every other (ended) trial keeps none."""
    for trial_id, rows in table.groupby("trial_id"):
        (trial_dir,) = exp.glob(f"*_{trial_id}")
        rows = rows.sort_values("training_iteration").dropna(subset=[metric])
        best = rows[metric].idxmin() if mode == "min" else rows[metric].idxmax()
        epochs = {int(rows["training_iteration"].max()), int(rows.loc[best, "training_iteration"])}
        if keep == "best" and trial_id != best_trial:
            epochs = set()
        kept = {p.name for p in trial_dir.glob("checkpoint_*")}
        assert kept == {f"checkpoint_{e - 1:06d}" for e in epochs}, (trial_id, kept, epochs)


@pytest.mark.slow
@pytest.mark.realdata
def test_ae_sweep_writes_everything_and_optuna_sees_asha(ae_run):
    summary, exp = ae_run
    table, best = check_sweep_folder(
        exp, summary, "val_mse", "min", ["train_mse", "val_mse", "time_total_s"]
    )
    assert table["stopped_early"].any(), "ASHA stopped no trial; the smoke budget is too small"
    assert summary["stopped_early"] == table.groupby("trial_id")["stopped_early"].first().sum()
    check_study_matches(exp, table, "val_mse", 3)
    assert set(best["test"]) == {"test_mse"} and math.isfinite(best["test"]["test_mse"])
    assert best["config"]["latent_dim"] == 16 and best["config"]["subset"] == 8000


@pytest.mark.slow
@pytest.mark.realdata
def test_classifier_sweep_on_the_ae_sweeps_best_encoder(ae_run, tmp_path):
    _, ae_exp = ae_run
    encoder = resolve_encoder(None, str(ae_exp))  # what --encoder-from resolves to
    assert encoder == str(ae_exp / "best" / "checkpoint.pt")
    summary = classifier_sweep.main(
        [*SMOKE, "--storage-path", str(tmp_path), "--encoder-checkpoint", encoder]
        + ["--tensorboard"]  # Tune's TensorBoard files too (check_sweep_folder)
    )
    exp = tmp_path / "classifier_sweep_smoke"
    table, best = check_sweep_folder(
        exp, summary, "val_acc", "max", ["train_loss", "val_loss", "val_acc"]
    )
    check_study_matches(exp, table, "val_acc", 2)
    assert set(table["config/encoder_checkpoint"]) == {encoder}
    assert 0 <= best["test"]["test_acc"] <= 1 and len(best["test"]["confusion_matrix"]) == 10


@pytest.mark.slow
@pytest.mark.realdata
def test_gan_sweep_reports_fid_at_every_rung(local_ray, tmp_path):
    """FID-FM is computed at the first epoch, at each ASHA rung (multiples of the grace period)
    and at the last epoch; the epochs between repeat the last value, with its epoch."""
    from trainables import fid

    try:
        fid.load_reference()
    except fid.FIDError as e:
        pytest.skip(f"FID-FM reference weights unavailable: {e}")
    argv = [*SMOKE, "--storage-path", str(tmp_path), "--num-samples", "3"]
    argv += ["--grace-period", "3", "--max-epochs", "4"]  # rungs at epoch 3 (and 6: past the end)
    summary = gan_sweep.main(argv)
    exp = tmp_path / "gan_sweep_smoke"
    table, best = check_sweep_folder(exp, summary, "fid", "min", ["d_loss", "g_loss", "fid"])
    assert table["fid"].notna().all()
    fresh = table["epoch"].isin([1, 3, 4])
    assert (table.loc[fresh, "fid_epoch"] == table.loc[fresh, "epoch"]).all()
    assert (table.loc[table["epoch"] == 2, "fid_epoch"] == 1).all()
    assert (table["epoch"] == 2).any()  # the stale epoch was run at all
    check_study_matches(exp, table, "fid", 4)
    assert math.isfinite(best["test"]["test_fid"])


@pytest.mark.slow
@pytest.mark.realdata
def test_resume_after_the_driver_is_killed(local_ray, tmp_path, monkeypatch):
    """SIGKILL the driver at a moment when a trial has reported an epoch that Tune's last
    snapshot does not hold, with snapshots at the sweeps' own period (3 s while a snapshot is
    cheap: Tune's "auto" with a 3 s floor; conftest's 1 s is removed here); then --resume. Every checkpoint the snapshot names is still there, each trial
    Tune runs again from an older epoch gets a retry in the study, finished trials are not run
    again, and the study and the results agree."""
    monkeypatch.delenv("TUNE_GLOBAL_CHECKPOINT_S")  # the killed driver and the resume
    exp, markers = tmp_path / "resumed", tmp_path / "faults"
    cmd = [sys.executable, "sweeps/ae_sweep.py", "--smoke-test", "--storage-path", str(tmp_path)]
    cmd += ["--name", "resumed", "--num-samples", "6", *AHEAD_ARGS]
    cmd += ["--wandb-mode", "disabled"]  # W&B is checked above; here it would only cost time
    # The driver pauses (sweeps/fit/faults.py) once the newest snapshot, whole in the folder, holds a
    # finished trial (not to be run again) and a trial it will restore from a checkpoint (which
    # must be there: trial 1, held after epoch 1 until then), at the first result after it that
    # the searcher has told the study, of a trial the snapshot holds unfinished (Tune runs that
    # epoch again): killed there, all three hold, whatever the timing.
    with open(tmp_path / "first.log", "w") as log:
        driver = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=fault_env(markers, **mid_sweep(at="result")),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            paused = wait_for_marker(
                markers / "driver-paused.json",
                "a result ahead of the snapshot",
                driver,
                log=tmp_path / "first.log",
            )
            os.kill(driver.pid, signal.SIGKILL)  # the driver dies mid-sweep ...
        finally:
            with contextlib.suppress(ProcessLookupError):  # ... and the local Ray it started
                os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    finished = _terminated_in_snapshot(exp)
    assert finished and _finished_trials(exp) < 6
    results_before = {name: (exp / name / "result.json").read_text() for name in finished}

    # What --resume will restore from is all there: every checkpoint the snapshot names for a
    # trial it restores (not the finished ones, which --keep-checkpoints best may have pruned).
    named = _restored_checkpoints(_snapshot_trials(exp))
    assert named
    for trial_id, path in named.items():
        assert (Path(path) / checkpoints.CHECKPOINT_FILE).is_file(), (trial_id, path)
    held = {}  # Tune trial id -> its Optuna trial when the driver died
    for ot in study_of(exp).trials:  # every whole line the killed driver appended
        held.setdefault(ot.user_attrs.get("trial_id"), ot)
    # The trials Tune will run again from an older epoch than the study holds for them.
    ahead = _ahead_of_snapshot(exp)
    assert ahead, "the driver was killed when no trial was ahead of Tune's snapshot"
    assert paused["trial_id"] in ahead, (paused, ahead)  # the trial it paused on, at least

    summary = ae_sweep.main(["--resume", str(exp)])
    assert summary["complete"] and summary["trials"] == 6 and summary["errored"] == 0
    for name, text in results_before.items():  # finished trials were not run again
        assert (exp / name / "result.json").read_text() == text
    table = pq.read_table(exp / "results.parquet").to_pandas()
    assert table["trial_id"].nunique() == 6
    assert not table.duplicated(["trial_id", "training_iteration"]).any()
    check_study_matches(exp, table, "val_mse", 4)
    sweep = json.loads((exp / "sweep.json").read_text())
    assert len(sweep["resumes"]) == 1 and (exp / "best.json").is_file()

    trials = study_of(exp).trials
    for trial_id in ahead:  # a retry holds the run Tune kept; the lost run's trial is FAIL
        first = held[trial_id]
        (retry,) = [t for t in trials if t.user_attrs.get("retry_of") == first.number]
        assert retry.user_attrs["trial_id"] == trial_id and retry.params == first.params
        now = trials[first.number]
        if first.state == TrialState.RUNNING:
            assert now.state == TrialState.FAIL, (trial_id, now.state)
            assert now.user_attrs["fail_reason"].startswith("rewound"), now.user_attrs
        else:  # it had finished after the snapshot: a finished Optuna trial stays as it is
            assert now.state == first.state
    rewound = {
        t.user_attrs["trial_id"]
        for t in trials
        if t.user_attrs.get("fail_reason", "").startswith("rewound")
    }
    assert rewound <= set(ahead)  # and no other trial is taken for rewound


@pytest.mark.slow
@pytest.mark.realdata
def test_a_finished_sweep_grows_with_resume_and_more_samples(local_ray, tmp_path):
    """`--resume DIR --num-samples 8` on a finished 4-trial sweep runs 4 more trials: the study
    holds 8 (TPE proposes the new ones from the first 4, and the warm start is not tried
    again), the first 4 trials' rows are as they were, and sweep.json says it grew."""
    argv = ["--smoke-test", "--wandb-mode", "disabled", "--storage-path", str(tmp_path)]
    ae_sweep.main([*argv, "--max-epochs", "1"])
    exp = tmp_path / "ae_sweep_smoke"
    before = pd.read_parquet(exp / "results.parquet")
    assert before["trial_id"].nunique() == 4

    summary = ae_sweep.main(["--resume", str(exp), "--num-samples", "8"])
    assert summary["trials"] == 8 and summary["complete"]
    after = pd.read_parquet(exp / "results.parquet")
    assert after["trial_id"].nunique() == 8
    old = after[after["trial_id"].isin(before["trial_id"])].drop(columns=["time_total_s"])
    pd.testing.assert_frame_equal(
        old.sort_values("trial_id").reset_index(drop=True),
        before.drop(columns=["time_total_s"]).sort_values("trial_id").reset_index(drop=True),
    )
    study = study_of(exp)
    assert len(study.trials) == 8
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    params = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(params)) == 8, "a configuration was tried twice (the warm start again?)"
    record = json.loads((exp / "sweep.json").read_text())
    assert record["num_samples"] == 8 and record["args"]["num_samples"] == 8
    assert record["resumes"][-1]["num_samples_before"] == 4


@pytest.mark.slow
@pytest.mark.realdata
def test_a_time_budget_ends_the_sweep_with_the_best_of_what_ran(local_ray, tmp_path):
    """`--time-budget 30` with far more trials than 30 s can hold: Tune stops the sweep, which
    is then complete (exit status 0, not the 130 of an interrupted sweep), best.json names the
    best of the trials that ran, and the study holds exactly those trials, each told how it
    ended (Tune stops the running ones without telling its searcher: the sweep tells them)."""
    argv = ["--smoke-test", "--wandb-mode", "disabled", "--storage-path", str(tmp_path)]
    summary = ae_sweep.main([*argv, "--num-samples", "500", "--time-budget", "30"])
    assert summary["budget_spent"] and summary["complete"] and results.exit_status(summary) == 0
    exp = tmp_path / "ae_sweep_smoke"
    table = pd.read_parquet(exp / "results.parquet")
    assert 1 <= table["trial_id"].nunique() == summary["trials"] < 500
    assert set(table["status"]) == {"TERMINATED"}
    last = table.sort_values("training_iteration").groupby("trial_id").last()
    best = json.loads((exp / "best.json").read_text())
    assert best["trial_id"] == last["val_mse"].idxmin()
    study = study_of(exp)
    assert len(study.trials) == summary["trials"]
    for t in study.trials:  # none left RUNNING; one the budget cut before its first epoch: FAIL
        if t.intermediate_values:
            assert t.state in (TrialState.COMPLETE, TrialState.PRUNED), t
        else:
            assert t.state == TrialState.FAIL and t.user_attrs["fail_reason"], t


def readme_block(marker: str) -> str:
    """The fenced code block of README.md that follows the HTML comment naming ``marker``."""
    text = (REPO / "README.md").read_text()
    after = text[text.index(marker) :]
    start = after.index("```python\n") + len("```python\n")
    return after[start : after.index("```", start)]


@pytest.mark.slow
@pytest.mark.realdata
def test_the_readmes_load_model_call_runs_as_shown(ae_run, tmp_path):
    """README's "After the sweep" block, as it is written, in a folder whose runs/ae_sweep is
    the smoke sweep's folder."""
    _, exp = ae_run
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "ae_sweep").symlink_to(exp)
    code = readme_block("test_the_readmes_load_model_call_runs_as_shown")
    proc = subprocess.run(
        [sys.executable, "-c", code + "\nprint(tuple(codes.shape))"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    best = json.loads((exp / "best.json").read_text())
    kind, lr, val, test = proc.stdout.splitlines()[0].split()
    assert kind == "autoencoder" and float(lr) == best["config"]["lr"]
    assert float(val) == best["val"]["val_mse"] and float(test) == best["test"]["test_mse"]
    assert proc.stdout.splitlines()[1] == "(8, 16)"


@pytest.mark.slow
@pytest.mark.realdata
def test_retraining_from_a_sweep_takes_its_best_config(ae_run, tmp_path, capsys):
    """`python -m trainables.autoencoder --from SWEEP --epochs 1`: the best trial's config, the
    flag given over it, named in one line; another model's trainable refuses the sweep."""
    from trainables import autoencoder
    from trainables import cli as trainables_cli

    _, exp = ae_run
    best = json.loads((exp / "best.json").read_text())
    out = tmp_path / "ae_best"
    trainables_cli.main("autoencoder", ["--from", str(exp), "--epochs", "1", "--out", str(out)])
    said = capsys.readouterr().out
    epochs = best["config"]["epochs"]
    assert f"best trial {best['trial_id']}" in said
    assert f"overridden: epochs {epochs} -> 1" in said
    saved = checkpoints.load_checkpoint(out / "checkpoint.pt", "autoencoder")["config"]
    assert saved == {
        **autoencoder.AutoencoderConfig.from_dict(best["config"]).to_dict(),
        "epochs": 1,
    }
    with pytest.raises(SystemExit) as e:
        trainables_cli.main("gan", ["--from", str(exp), "--out", str(tmp_path / "g")])
    assert e.value.code == 2
    assert "is a sweep of the autoencoder, not of the gan" in capsys.readouterr().err
    assert not (tmp_path / "g").exists()


@pytest.mark.slow
@pytest.mark.realdata
def test_a_second_sweep_starts_from_the_first_ones_trials(ae_run, tmp_path, capsys):
    """--warm-start-from: the first sweep's finished trials are in the second's study before its
    first trial (TPE models them), marked as the first's; the second's own results and figures
    hold only its own trials. Another space is a one-line error before Ray starts."""
    from analysis.sweep_folder import SweepFolder

    _, first = ae_run
    before = pd.read_parquet(first / "results.parquet")
    argv = ["--smoke-test", "--wandb-mode", "disabled", "--storage-path", str(tmp_path)]
    argv += ["--name", "second", "--num-samples", "2", "--max-epochs", "3"]
    summary = ae_sweep.main([*argv, "--warm-start-from", str(first)])
    exp = tmp_path / "second"
    study = study_of(exp)
    earlier = [t for t in study.trials if "warm_start_from" in t.user_attrs]
    assert {t.user_attrs["trial_id"] for t in earlier} == set(before["trial_id"])
    assert [t.number for t in earlier] == list(range(len(earlier)))  # before any new trial
    for t in earlier:
        rows = before[before["trial_id"] == t.user_attrs["trial_id"]]
        assert t.intermediate_values == dict(zip(rows["epoch"], rows["val_mse"], strict=True))
    assert summary["trials"] == 2 and len(study.trials) == len(earlier) + 2
    assert pd.read_parquet(exp / "results.parquet")["trial_id"].nunique() == 2
    assert len(SweepFolder.open(exp).trials()) == 2  # the report draws this sweep's own
    record = json.loads((exp / "sweep.json").read_text())
    assert record["searcher"]["earlier_trials"] == len(earlier)

    with pytest.raises(SystemExit) as e:
        ae_sweep.main(
            [*argv, "--name", "third", "--space", "wide", "--warm-start-from", str(first)]
        )
    assert e.value.code == 2
    assert "searched another space" in capsys.readouterr().err
    assert not (tmp_path / "third").exists()


@pytest.mark.slow
@pytest.mark.realdata
def test_wandb_runs_say_how_each_trial_ended_and_which_is_best(ae_run):
    """Each trial's offline run ends with its status in its summary (the console's words); the
    best trial's run, resumed after the sweep, carries the tag "best", its test metrics and its
    checkpoint as a model artifact (--wandb-log-checkpoint best); --wandb-entity is the runs'."""
    summary, exp = ae_run
    table = pd.read_parquet(exp / "results.parquet")
    ends: dict[str, list[dict]] = {}
    for run_file in sorted((exp / "wandb").glob("offline-run-*/run-*.wandb")):
        end = wandb_run_end(run_file)
        ends.setdefault(end["id"], []).append(end)
    assert set(ends) == set(table["trial_id"])
    for trial_id, rows in table.groupby("trial_id"):
        last = rows.sort_values("epoch").iloc[-1]
        word = "stopped early" if last["stopped_early"] else "finished"
        first_run = ends[trial_id][0]
        assert first_run["summary"]["status"] == word, trial_id
        assert first_run["summary"]["epochs"] == last["epoch"]
        assert first_run["entity"] == "lab"
    best = summary["best"]
    marked = [e for e in ends[best["trial_id"]] if "best" in e["tags"]]
    assert len(marked) == 1
    assert marked[0]["summary"]["test_mse"] == pytest.approx(best["test"]["test_mse"])
    assert ("ae_sweep_smoke-best", "model") in marked[0]["artifacts"]
    others = [e for t, es in ends.items() if t != best["trial_id"] for e in es]
    assert not any("best" in e["tags"] for e in others)
    # The trials' runs (RUN_SETTINGS): the environment's package list saved by the hub's first
    # run alone, and no system metrics (from the hub they would chart the driver's machine).
    trial_runs = [
        f.parent
        for f in sorted((exp / "wandb").glob("offline-run-*/run-*.wandb"))
        if "best" not in wandb_run_end(f)["tags"]
    ]
    assert len(trial_runs) >= 2
    assert sum((d / "files" / "requirements.txt").is_file() for d in trial_runs) == 1
    stats = [r for d in trial_runs for r in wandb_records(next(d.glob("run-*.wandb")))]
    assert not any(r.HasField("stats") for r in stats)
    # git read by the first run only (git_found), and every run still names the commit
    commits = {r.run.git.commit for r in stats if r.HasField("run")}
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO)
    assert commits == {head.stdout.strip()} if head.returncode == 0 else len(commits) == 1
    # each run's config names its trial's folder (sent with wandb.init's config)
    for d in trial_runs:
        keys = {
            item.key
            for r in wandb_records(next(d.glob("run-*.wandb")))
            for item in (r.config.update if r.HasField("config") else r.run.config.update)
        }
        assert "trial_log_path" in keys, d


def test_the_wandb_callback_sends_the_hub_its_messages_in_batches(tmp_path):
    """What the driver has for W&B (a run's start, each result, its end) waits in an outbox
    and goes to the hub in one actor call at the end of a step of Tune's loop once
    FLUSH_EVERY_S has passed: in the order it came, never an empty batch, never pickled with
    the callback. The batch, applied to a real hub, makes the run it describes. (A sweep's
    W&B runs holding every epoch through this path: test_ae_sweep_writes_everything...,
    and after Ctrl-C and --resume: test_reliability.)"""
    import pickle
    import time
    import types

    from sweeps.fit.wandb_hub import SweepWandbCallback, WandbHub

    callback = SweepWandbCallback(project="t")
    batches: list[list] = []
    callback._hub = types.SimpleNamespace(apply=types.SimpleNamespace(remote=batches.append))
    init = {"mode": "offline", "dir": str(tmp_path), "project": "t", "id": "batched"}
    messages = [("start", ("batched", str(tmp_path), [], [], init))]
    messages += [("log", ("batched", {"training_iteration": e, "loss": 1 / e})) for e in (1, 2)]
    messages += [("end", ("batched", False, {"status": "finished", "epochs": 2}))]

    callback.FLUSH_EVERY_S = 3600.0  # not due: nothing is sent
    callback._flushed = time.monotonic()
    for method, args in messages:
        callback._send(method, *args)
    callback.on_step_end(iteration=1, trials=[])
    assert batches == []
    restored = pickle.loads(pickle.dumps(callback))  # as Tune's snapshot holds it
    assert restored._outbox == [] and restored._flushed == 0.0  # due at once on any machine
    callback.FLUSH_EVERY_S = 0.0  # due at every step
    callback.on_step_end(iteration=2, trials=[])
    callback.on_step_end(iteration=3, trials=[])
    assert batches == [messages]  # one call, in order; no empty one after it

    hub = WandbHub()
    failing = ("log_checkpoint", ("batched", str(tmp_path / "no such checkpoint")))
    hub.apply([*batches[0][:3], failing, batches[0][3]])  # one that fails stops nothing after it
    assert hub.close() == 0  # the batch's end finished the run
    (run_file,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    run_id, rows = wandb_history(run_file)
    assert run_id == "batched"
    assert [(r["training_iteration"], r["loss"]) for r in rows] == [(1, 1.0), (2, 0.5)]
    assert wandb_run_end(run_file)["summary"]["status"] == "finished"
