"""An experiment folder written before sweeps/ was split into modules still resumes.

Ray Tune pickles the searcher and the callbacks (``tuner.pkl``) and the trial-folder namer
(``search_gen_state-*.json``) by module path, so a folder made by the code as it stood at
``OLD_COMMIT`` names ``sweeps.runner.PruningOptunaSearch``, ``sweeps.checkpoint_gc`` and
``sweeps.runner.trial_dirname``. This test checks that commit out of the project's own history
(``git archive``), runs a real smoke sweep with it, interrupts it with Ctrl-C, and resumes the
folder with the code as it is now: every trial finishes once, and the Optuna study, the results
and Ray's records agree.
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
OLD_COMMIT = "cd8219838dc9f8edff281b3d686f1a6bdedbb17b"  # the last commit with sweeps/runner.py whole (1,599 lines)


def _old_code(into: Path) -> Path:
    """The project's files at OLD_COMMIT, from git; fails (never skips) when history is absent."""
    try:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", OLD_COMMIT],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.fail(
            f"cannot read commit {OLD_COMMIT} from the project's git history ({e}); "
            "run the tests from a full clone (not a shallow one or an exported tree)"
        )
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


@pytest.mark.slow
@pytest.mark.realdata
def test_an_experiment_folder_from_before_the_split_resumes(real_data_dir, tmp_path):
    old = _old_code(tmp_path / "old_code")
    exp = tmp_path / "runs" / "old"
    cmd = [sys.executable, "sweeps/ae_sweep.py", "--smoke-test", "--wandb-mode", "offline"]
    cmd += ["--storage-path", str(exp.parent), "--name", "old", "--num-samples", "5"]
    cmd += ["--max-epochs", "3", "--subset", "12000"]  # epochs long enough to interrupt
    env = {**os.environ, "PYTHONPATH": str(old)}  # the old packages win over the installed ones
    code = helpers.ctrl_c_after_a_trial(cmd, exp, tmp_path / "old.log", cwd=old, env=env)
    first = (tmp_path / "old.log").read_text()
    assert code == 130, first
    # The folder really is the old code's: its pickles name the old module paths.
    assert b"PruningOptunaSearch" in (exp / "tuner.pkl").read_bytes()
    assert b"sweeps.checkpoint_gc" in (exp / "tuner.pkl").read_bytes()
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
