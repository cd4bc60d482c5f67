"""Experiment folders written by older layouts of sweeps/ still resume.

Ray Tune pickles the searcher and the callbacks (``tuner.pkl``) and the trial-folder namer
(``search_gen_state-*.json``) by module path, so a folder made by the code as it stood at one of
``OLD_COMMITS`` names the modules of that day: ``sweeps.runner.PruningOptunaSearch`` and
``sweeps.checkpoint_gc`` before sweeps/ was split into modules, ``sweeps.searcher`` and
``sweeps.checkpoint_pruner`` before they were grouped into subpackages. This test checks the
commit out of the project's own history (``git archive``), runs a real smoke sweep with it (each
of them kept its Optuna study in SQLite, ``optuna.db``, where sweeps now keep a journal),
interrupts it with Ctrl-C, and resumes the folder with the code as it is now: every trial
finishes once, and the Optuna study, the results and Ray's records agree.
"""

import json
import os
import subprocess
import sys
import tarfile
from io import BytesIO
from pathlib import Path

import helpers  # reading studies and Tune snapshots
import pyarrow.parquet as pq
import pytest
from optuna.trial import TrialState

REPO = Path(__file__).resolve().parents[1]
# commit -> (what its tuner.pkl names, the flags its smoke sweep needs to be interrupted mid-sweep)
OLD_COMMITS = {
    # the last commit with sweeps/runner.py whole (1,599 lines): no fault points, so its sweep is
    # interrupted on a read of Tune's snapshot, with epochs long enough for that
    "cd8219838dc9f8edff281b3d686f1a6bdedbb17b": (
        [b"PruningOptunaSearch", b"sweeps.checkpoint_gc"],
        ["--subset", "12000"],
    ),
    # the last commit with sweeps/ in one folder of 30 modules (sweep.json format 2)
    "2c28bf1edcd48c68e762459473a71000c7d43c07": (
        [b"sweeps.searcher", b"sweeps.checkpoint_pruner", b"sweeps.wandb_hub"],
        [],
    ),
    # the last commit whose sweeps kept their Optuna study in SQLite (optuna.db), not the journal
    "2a6949fbffe77da2ce52d96f6f10147274055158": ([b"SweepStudyStorage"], []),
}


def _old_code(commit: str, into: Path) -> Path:
    """The project's files at ``commit``, from git; fails (never skips) when history is absent."""
    try:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", commit],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.fail(
            f"cannot read commit {commit} from the project's git history ({e}); "
            "run the tests from a full clone (not a shallow one or an exported tree)"
        )
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.parametrize("commit", OLD_COMMITS, ids=lambda c: c[:7])
def test_an_experiment_folder_of_an_older_layout_resumes(commit, real_data_dir, tmp_path):
    names, flags = OLD_COMMITS[commit]
    old = _old_code(commit, tmp_path / "old_code")
    exp = tmp_path / "runs" / "old"
    cmd = [sys.executable, "sweeps/ae_sweep.py", "--smoke-test", "--wandb-mode", "offline"]
    cmd += ["--storage-path", str(exp.parent), "--name", "old", "--num-samples", "5"]
    cmd += ["--max-epochs", "3", *flags]
    env = {**os.environ, "PYTHONPATH": str(old)}  # the old packages win over the installed ones
    code = helpers.ctrl_c_after_a_trial(cmd, exp, tmp_path / "old.log", cwd=old, env=env)
    first = (tmp_path / "old.log").read_text()
    assert code == 130, first
    # The folder really is the old code's: its pickles name the old module paths.
    pickled = (exp / "tuner.pkl").read_bytes()
    assert all(name in pickled for name in names), [n for n in names if n not in pickled]
    finished = helpers._terminated_in_snapshot(exp)
    assert finished and helpers._finished_trials(exp) < 5
    before = {name: (exp / name / "result.json").read_text() for name in finished}

    resumed = subprocess.run(
        [sys.executable, "sweeps/ae_sweep.py", "--resume", str(exp), "--wandb-mode", "offline"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    own = helpers.sweeps_own_lines(resumed.stderr)  # not a worker's SystemExit at shutdown
    assert not any("Traceback" in line for line in own), resumed.stderr[-3000:]
    for name, text in before.items():  # finished trials kept, not run again
        assert (exp / name / "result.json").read_text() == text

    table = pq.read_table(exp / "results.parquet").to_pandas()
    assert table["trial_id"].nunique() == 5
    assert not table.duplicated(["trial_id", "training_iteration"]).any()
    helpers.check_study_matches(
        exp, table, "val_mse", 3
    )  # ids, every epoch's value, PRUNED/COMPLETE
    study = {
        t.user_attrs["trial_id"]: t
        for t in helpers.study_of(exp).trials
        if t.state != TrialState.FAIL
    }
    last = table.sort_values("training_iteration").groupby("trial_id")["val_mse"].last()
    assert {k: t.value for k, t in study.items()} == pytest.approx(last.to_dict())
    best = json.loads((exp / "best.json").read_text())
    assert best["trial_id"] in set(table["trial_id"]) and best["test"]["test_mse"] > 0
    # the study stayed where the old code kept it, in SQLite: the resume started no journal
    assert (exp / "optuna.db").is_file() and not (exp / "optuna.journal").exists()
