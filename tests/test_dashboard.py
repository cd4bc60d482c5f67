"""optuna-dashboard, for real, on a smoke sweep's study: started on 127.0.0.1 as the sweep's summary
prints it, its HTTP API lists every trial of the study with its state (PRUNED included) and its
intermediate values, and it stops when asked."""

import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from tests.helpers import dashboard_serving, study_of

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.realdata
def test_optuna_dashboard_serves_every_trial_of_a_sweep(real_data_dir, tmp_path):
    sweep = subprocess.run(
        [sys.executable, "sweeps/ae_sweep.py", "--smoke-test", "--wandb-mode", "disabled"]
        + ["--storage-path", str(tmp_path), "--name", "dash"]
        # one trial at a time: which trials ASHA prunes then follows from their values alone, not
        # from whose epoch reached the rung first (the first, the report's configuration, sets
        # the bar the next ones are judged against)
        + ["--max-concurrent", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert sweep.returncode == 0, sweep.stdout[-2000:] + sweep.stderr[-2000:]
    journal = tmp_path / "dash" / "optuna.journal"  # the study: Optuna's journal file
    assert f"optuna-dashboard --host 127.0.0.1 {journal}" in sweep.stdout  # the printed next step

    study = study_of(tmp_path / "dash")
    assert any(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    with dashboard_serving(str(journal)) as get:  # on the loopback address only
        studies = get("/api/studies")["study_summaries"]
        (summary,) = [s for s in studies if s["study_name"] == "dash"]
        detail = get(f"/api/studies/{summary['study_id']}")
    served = {t["number"]: t for t in detail["trials"]}
    assert set(served) == {t.number for t in study.trials}
    for trial in study.trials:
        shown = served[trial.number]
        assert shown["state"].upper() == trial.state.name
        values = {v["step"]: v["value"] for v in shown["intermediate_values"]}
        assert values == pytest.approx(trial.intermediate_values)
