"""What a user sees of a real smoke sweep (ASHA pruning some of its trials): the console (not a
terminal here) says a line per trial and a fixed few more, names the experiment folder, ends with
next steps that work as printed, and holds none of Ray's per-checkpoint noise; the report's
sweep-level figures draw every trial, pruned ones included, not only the COMPLETE ones."""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import helpers  # a sweep's own console lines
import pytest
from optuna.trial import TrialState

from analysis import sweep_figures as sf
from analysis.sweep_folder import SweepFolder

REPO = Path(__file__).resolve().parents[1]
TRIALS = 6
STATUS_LINE = re.compile(r"^ae_sweep: (\d+/\d+) trials done \(")  # sweeps/fit/progress.py
REST = 11  # the data line, best, totals, where, "next steps:" and its 3 commands of 2 lines


@pytest.fixture(scope="module")
def sweep(real_data_dir, tmp_path_factory):
    storage = tmp_path_factory.mktemp("seen")
    proc = subprocess.run(
        [sys.executable, "sweeps/ae_sweep.py", "--smoke-test", "--wandb-mode", "offline"]
        + ["--storage-path", str(storage), "--name", "seen", "--num-samples", str(TRIALS)]
        + ["--max-epochs", "3"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return storage / "seen", proc


@pytest.mark.slow
@pytest.mark.realdata
def test_the_console_is_a_line_per_trial_and_names_the_experiment(sweep):
    exp, proc = sweep
    out = proc.stdout + proc.stderr
    # A trial worker's own output (prefixed "(train_autoencoder pid=N)") is Ray's, printed as it
    # comes: a worker killed at shutdown may print a SystemExit traceback. Counted apart.
    lines = helpers.sweeps_own_lines(out)
    worker = [line for line in out.splitlines() if helpers.WORKER_LINE.match(line)]
    assert not any("Checkpoint successfully created" in line for line in worker)
    # a line per trial as it ends, the data line, the summary (best, totals, where) and the next
    # steps (3 commands, 2 lines each); and status lines, at the start, every 30 s and at the
    # end (how many depends on the machine's speed, so they are counted apart)
    status = [line for line in lines if STATUS_LINE.search(line)]
    assert len(status) >= 2 and STATUS_LINE.search(status[-1])[1] == f"{TRIALS}/{TRIALS}"
    rest = [line for line in lines if line not in status]
    assert len(rest) <= TRIALS + REST, "\n".join(rest)
    assert "Checkpoint successfully created" not in out
    assert "Ray deduplicates logs" not in out
    assert "Token authentication is enabled" not in out
    assert "Result logdir" not in out and "== Status ==" not in out  # Ray's table
    assert str(exp) in proc.stdout
    ended = [line for line in lines if line.startswith("ae_sweep: trial ")]
    assert len(ended) == TRIALS
    assert any("stopped early" in line for line in ended)
    assert all(len(line) <= 100 for line in ended)
    assert f"analysis/report.py {exp}" in proc.stdout
    assert f"optuna-dashboard --host 127.0.0.1 {exp}/optuna.journal" in proc.stdout
    assert f"wandb sync {exp}/wandb/offline-run-*" in proc.stdout


def printed_steps(stdout: str) -> list[str]:
    """The commands under "next steps:" (each indented two spaces, its purpose four)."""
    lines = stdout.split("next steps:\n", 1)[1].splitlines()
    return [line[2:] for line in lines if line.startswith("  ") and not line.startswith("    ")]


def in_users_shell(command: str, **kwargs) -> subprocess.Popen:
    """``command`` as printed, in the repository, in a shell whose PATH does not hold the venv
    (``make sweep`` never activates it)."""
    return subprocess.Popen(
        ["bash", "-c", command],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


@pytest.mark.slow
@pytest.mark.realdata
def test_the_next_steps_work_as_printed_in_a_shell_without_the_venv(sweep):
    """Each printed command, run exactly as printed: the report writes its page, the dashboard
    serves the study on 127.0.0.1:8080, and the W&B command's programs are found (uploading
    needs W&B's server, which this machine cannot reach)."""
    import time
    import urllib.request

    exp, proc = sweep
    report, dashboard, wandb = printed_steps(proc.stdout)
    ran = in_users_shell(report)
    out, _ = ran.communicate(timeout=300)
    assert ran.returncode == 0, out[-3000:]
    assert (exp / "report" / "index.html").is_file()

    served = in_users_shell(dashboard, start_new_session=True)
    try:
        page, deadline = None, time.monotonic() + 120  # its start, not a race: polled
        while page is None and served.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen("http://127.0.0.1:8080/api/studies", timeout=5) as r:
                    page = r.read().decode()
            except OSError:
                time.sleep(0.5)
        assert page is not None, f"the dashboard did not answer: {served.poll()}"
        names = [study["study_name"] for study in json.loads(page)["study_summaries"]]
        assert names == ["seen"]
    finally:
        os.killpg(served.pid, signal.SIGTERM)
        served.wait(timeout=30)

    for part in wandb.split(" && "):
        program = part.split()[0]
        found = in_users_shell(f"command -v {program}")
        assert found.communicate(timeout=30)[0].strip(), f"{program}: command not found"


@pytest.mark.slow
@pytest.mark.realdata
def test_study_figures_draw_every_trial_pruned_ones_included(sweep):
    exp, _ = sweep
    folder = SweepFolder.open(exp)
    study = helpers.study_of(exp)
    counted = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert any(t.state == TrialState.PRUNED for t in counted), "ASHA pruned nothing"
    table = folder.trials()
    assert sorted(table["number"]) == sorted(t.number for t in counted)

    history = sf.optimization_history(table, "val_mse", "min", "seen")
    points = sum(len(c.get_offsets()) for c in history.axes[0].collections)
    assert points == len(counted)  # every trial, not only the COMPLETE ones
    assert f"{len(counted)} trials" in history.axes[0].get_title()

    parallel = sf.parallel_coordinate(table, "val_mse", "min", "seen")
    n_axes = sum(c.startswith("param/") for c in table.columns) + 1  # the params, the metric
    lines = [ln for ln in parallel.axes[0].lines if len(ln.get_xdata()) == n_axes]
    assert len(lines) == len(counted)
    dashed = [ln for ln in lines if ln.get_linestyle() == "--"]
    assert len(dashed) == sum(t.state == TrialState.PRUNED for t in counted)

    spec = folder.record["scheduler"]
    milestones = sf.rungs(
        spec["grace_period"], spec["reduction_factor"], folder.record["max_epochs"]
    )
    first = sf.at_epoch(table, milestones[0])
    assert len(first) == len(counted)  # every trial reached the first rung: importances use all
    importances = sf.param_importances(study, table, "val_mse", milestones[0])
    assert f"{len(counted)} trials" in importances.axes[0].get_title()
