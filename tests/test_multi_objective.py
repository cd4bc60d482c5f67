"""Several objectives (--objectives): MO-ASHA's decisions against a non-dominated sort worked out
by hand, the flag's errors, the searcher telling a multi-objective study every trial's values
(PRUNED ones included), and a real smoke sweep: its study, best.json's front with test metrics,
the report's front figures and optuna-dashboard serving the front."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState
from ray import tune
from ray.tune.schedulers import TrialScheduler

from analysis import report
from sweeps import ae_sweep, gan_sweep
from sweeps.folder import outcome
from sweeps.folder.outcome import EPOCH_VALUES_ATTR, epoch_values
from sweeps.search.schedulers import NonDominatedASHAScheduler
from sweeps.search.searcher import TrialStateOptunaSearch
from tests.helpers import dashboard_serving, study_of

OBJECTIVES = (("val_mse", "min"), ("latent_dim", "min"))
CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP


# ---------------------------------------------------------------------------------------------
# The ranking, by hand


def test_non_dominated_fronts_and_crowding_distances_by_hand():
    # (val_mse, latent_dim), lower is better in both
    points = [(0.05, 16), (0.04, 32), (0.06, 32), (0.10, 2), (0.045, 16)]
    # (0.05, 16) is dominated by (0.045, 16); (0.06, 32) by (0.04, 32), (0.05, 16), (0.045, 16)
    assert outcome.non_dominated_fronts(points) == [[1, 3, 4], [0], [2]]
    # the first front's middle point (0.045, 16): (0.10 - 0.04) / 0.06 + (32 - 2) / 30 = 2
    assert outcome.crowding_distances([points[1], points[3], points[4]]) == pytest.approx(
        [math.inf, math.inf, 2.0]
    )
    # front by front; ends first (both inf: the lower val_mse first), then the crowded one
    assert outcome.pareto_order(points) == [1, 3, 4, 0, 2]


def _scheduler(revise: bool) -> NonDominatedASHAScheduler:
    scheduler = NonDominatedASHAScheduler(
        objectives=OBJECTIVES, max_t=9, grace_period=1, reduction_factor=3, revise=revise
    )
    scheduler.set_search_properties("val_mse", "min")  # as Tune does: the first objective
    return scheduler


def _result(epoch: int, val_mse: float, latent_dim: int) -> dict:
    return {"training_iteration": epoch, "val_mse": val_mse, "latent_dim": latent_dim}


@pytest.mark.parametrize("revise", [True, False])
def test_mo_asha_promotes_by_a_non_dominated_sort_at_each_rung(revise):
    """Five trials reach the first rung in turn. Each goes on if its place in the rung's
    non-dominated order (fronts, then crowding distance, then val_mse) is within the first
    third: place / count <= 1/3 (Syne Tune's MOASHA rule)."""
    scheduler = _scheduler(revise)
    arrivals = [  # (trial, val_mse, latent_dim, the decision worked out by hand)
        ("a", 0.05, 16, CONTINUE),  # alone: goes on
        ("b", 0.04, 32, CONTINUE),  # {a, b} one front, both ends: b first (lower val_mse), 0/2
        ("c", 0.06, 32, STOP),  # dominated by a and b: order b, a, c; place 2/3
        ("d", 0.10, 2, CONTINUE),  # front {a, b, d}: b, d (ends), a (crowding 2), c; 1/4
        ("e", 0.045, 16, STOP),  # dominates a; front {b, d, e}: b, d, e, a, c; place 2/5 > 1/3
    ]
    for trial_id, val_mse, latent_dim, decision in arrivals:
        trial = SimpleNamespace(trial_id=trial_id)
        assert scheduler.on_trial_result(None, trial, _result(1, val_mse, latent_dim)) == decision
    # a reports its second epoch: now behind e at its rung, in the second front (place 3/5):
    # the revising scheduler stops it, Ray's rule (decide once) lets it go on
    second = scheduler.on_trial_result(None, SimpleNamespace(trial_id="a"), _result(2, 0.045, 16))
    assert second == (STOP if revise else CONTINUE)
    assert scheduler.num_stopped == 2 + revise


def test_mo_asha_lets_a_trial_with_a_non_finite_objective_go_on_unranked():
    scheduler = _scheduler(revise=True)
    for trial_id, value in (("a", 0.05), ("b", 0.04), ("c", math.nan)):
        trial = SimpleNamespace(trial_id=trial_id)
        assert scheduler.on_trial_result(None, trial, _result(1, value, 16)) == CONTINUE


def test_the_front_is_the_full_length_trials_no_other_dominates():
    def trial(trial_id, val_mse, latent_dim, epochs=3, status="TERMINATED"):
        result = {"val_mse": val_mse, "latent_dim": latent_dim, "training_iteration": epochs}
        return SimpleNamespace(trial_id=trial_id, status=status, last_result=result)

    trials = [
        trial("a", 0.03, 16),
        trial("b", 0.05, 4),
        trial("c", 0.04, 16),  # dominated by a
        trial("d", 0.01, 2, epochs=1),  # stopped early: not comparable
        trial("e", 0.02, 64, status="ERROR"),
        trial("f", 0.09, 2),
        trial("g", math.nan, 2),
    ]
    assert [t.trial_id for t in outcome.front(trials, OBJECTIVES, 3)] == ["a", "b", "f"]


# ---------------------------------------------------------------------------------------------
# The flag


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--objectives", "val_mse"], "'val_mse' is not METRIC:MODE with MODE min or max"),
        (["--objectives", "val_mse:min"], "names one metric"),
        (["--objectives", "val_mse:min,latent:min"], "trials do not report 'latent'"),
        (["--objectives", "latent_dim:min,val_mse:min"], "must start with"),
        (["--objectives", "val_mse:min,val_mse:max"], "names a metric twice"),
        (["--objectives", "val_mse:min,latent_dim:min", "--scheduler", "pbt"], "optimises one"),
        (["--scheduler", "mo-asha"], "--objectives is not given"),
        (["--objectives", "val_mse:min,params:min", "--warm-start-from", "x"], "hold one value"),
    ],
)
def test_bad_objectives_are_one_line_errors(argv, expected, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        ae_sweep.main([*argv, "--storage-path", str(tmp_path)])
    assert e.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and expected in line and "; " in line, line
    assert list(tmp_path.iterdir()) == []


def test_the_gan_sweep_weighs_fid_against_the_generators_size(tmp_path, capsys):
    with pytest.raises(SystemExit):  # an unknown cost names the ones it reports
        gan_sweep.main(["--objectives", "fid:min,size:min", "--storage-path", str(tmp_path)])
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "choose from d_loss, g_loss, fid, g_params, epoch_seconds" in line


# ---------------------------------------------------------------------------------------------
# The searcher, on a real SQLite study without Ray


def _mo_searcher(tmp_path, max_epochs=3) -> TrialStateOptunaSearch:
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/optuna.db")
    searcher = TrialStateOptunaSearch(
        max_epochs=max_epochs, study_name="s", storage=storage, seed=0, objectives=OBJECTIVES
    )
    space = {"lr": tune.loguniform(1e-4, 1e-2), "latent_dim": tune.choice([2, 16])}
    searcher.set_search_properties("val_mse", "min", space)  # Tune's one metric: ignored
    return searcher


def _run(searcher, trial_id, values, latent_dim=16):
    searcher.suggest(trial_id)
    results = [_result(i, v, latent_dim) for i, v in enumerate(values, 1)]
    for r in results[:-1]:
        searcher.on_trial_result(trial_id, r)
    # Tune hands the last result (the one ASHA stopped on) only to on_trial_complete
    searcher.on_trial_complete(trial_id, results[-1])


def test_a_multi_objective_study_holds_every_trials_values_pruned_ones_included(tmp_path):
    searcher = _mo_searcher(tmp_path)
    _run(searcher, "full", [0.09, 0.05, 0.03])
    _run(searcher, "stopped", [0.2], latent_dim=2)
    _run(searcher, "nan", [0.2, math.nan])
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert len(study.directions) == 2
    full, stopped, nan = study.trials
    assert full.state == TrialState.COMPLETE and full.values == [0.03, 16.0]
    assert epoch_values(full) == {1: [0.09, 16.0], 2: [0.05, 16.0], 3: [0.03, 16.0]}
    assert stopped.state == TrialState.PRUNED and stopped.values == [0.2, 2.0]
    assert stopped.user_attrs[EPOCH_VALUES_ATTR] == {"1": [0.2, 2.0]}
    assert nan.state == TrialState.FAIL and nan.values is None
    assert nan.user_attrs["fail_reason"] == "val_mse=nan is not a finite number"
    # Optuna's front, as best.json's, is of the COMPLETE trials: the stopped one is not on it
    assert [t.number for t in study.best_trials] == [0]


def test_an_errored_multi_objective_trial_fails_whatever_its_last_values(tmp_path):
    """Tune calls on_trial_complete(error=True) with the last result it had, finite or not."""
    searcher = _mo_searcher(tmp_path)
    searcher.suggest("t")
    searcher.on_trial_complete("t", _result(1, 0.05, 16), error=True)
    (trial,) = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path}/optuna.db").trials
    assert trial.state == TrialState.FAIL and trial.values is None
    assert trial.user_attrs["fail_reason"] == "the trial errored"


def test_a_rewound_multi_objective_trial_is_retried_with_its_earlier_epochs(tmp_path):
    """Tune ran epoch 2 again from the epoch-1 checkpoint (``iterations_since_restore`` starts
    again): the lost run's trial FAILs, a retry holds epoch 1's values and the new epoch 2."""
    searcher = _mo_searcher(tmp_path)
    searcher.suggest("t")

    def result(step, value, since_restore, total_s):
        return {
            **_result(step, value, 16),
            "iterations_since_restore": since_restore,
            "time_total_s": total_s,
        }

    for r in (result(1, 0.09, 1, 1.0), result(2, 0.05, 2, 2.0), result(2, 0.06, 1, 2.1)):
        searcher.on_trial_result("t", r)
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path}/optuna.db")
    old, retry = study.trials
    assert old.state == TrialState.FAIL and "rewound" in old.user_attrs["fail_reason"]
    assert epoch_values(old) == {1: [0.09, 16.0], 2: [0.05, 16.0]}
    assert retry.user_attrs["retry_of"] == 0 and retry.state == TrialState.RUNNING
    assert epoch_values(retry) == {1: [0.09, 16.0], 2: [0.06, 16.0]}


# ---------------------------------------------------------------------------------------------
# A real multi-objective smoke sweep


@pytest.fixture(scope="module")
def mo_run(local_ray, tmp_path_factory):
    """The autoencoder over the latent space, val_mse against latent_dim, MO-ASHA keeping a
    third at each rung: 8 trials of 3 epochs one at a time (so each reaches the first rung in a
    fixed order)."""
    storage = tmp_path_factory.mktemp("runs")
    argv = ["--smoke-test", "--space", "latent", "--scheduler", "mo-asha"]
    argv += ["--objectives", "val_mse:min,latent_dim:min", "--num-samples", "8"]
    argv += ["--max-epochs", "3", "--reduction-factor", "3", "--max-concurrent", "1"]
    argv += ["--storage-path", str(storage)]
    argv += ["--wandb-mode", "disabled", "--name", "mo"]
    summary = ae_sweep.main(argv)
    return summary, storage / "mo"


@pytest.mark.slow
@pytest.mark.realdata
def test_a_multi_objective_sweep_tells_its_study_every_trials_values(mo_run):
    summary, exp = mo_run
    assert summary["complete"] and summary["trials"] == 8 and summary["errored"] == 0
    sweep = json.loads((exp / "sweep.json").read_text())
    assert sweep["scheduler"]["name"] == "MO-ASHA, revising"
    assert sweep["searcher"]["objectives"] == [["val_mse", "min"], ["latent_dim", "min"]]
    table = pd.read_parquet(exp / "results.parquet")
    study = study_of(exp)
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"]
    by_id = {t.user_attrs["trial_id"]: t for t in study.trials}
    assert set(by_id) == set(table["trial_id"]) and len(study.trials) == 8
    states = set()
    for trial_id, rows in table.groupby("trial_id"):
        ot, last = by_id[trial_id], rows.sort_values("epoch").iloc[-1]
        states.add(ot.state)
        assert ot.values == pytest.approx([last["val_mse"], last["latent_dim"]])
        held = epoch_values(ot)
        assert sorted(held) == sorted(rows["epoch"])
        for r in rows.itertuples():
            assert held[int(r.epoch)] == pytest.approx([r.val_mse, r.latent_dim])
        expected = TrialState.PRUNED if last["stopped_early"] else TrialState.COMPLETE
        assert ot.state == expected
    assert states == {TrialState.PRUNED, TrialState.COMPLETE}, "no trial stopped early"

    # The live decisions are the scheduler's rule on the rung as it stood: one trial at a time,
    # so they reached epoch 1 in the order the searcher proposed them (the study's numbers).
    first = table[table["epoch"] == 1].copy()
    first["number"] = [by_id[i].number for i in first["trial_id"]]
    first = first.sort_values("number")
    rungs = sweep["scheduler"]
    replay = NonDominatedASHAScheduler(
        objectives=OBJECTIVES,
        max_t=3,
        grace_period=rungs["grace_period"],
        reduction_factor=rungs["reduction_factor"],
    )
    replay.set_search_properties("val_mse", "min")
    for row in first.itertuples():
        result = _result(1, row.val_mse, row.latent_dim)
        decision = replay.on_trial_result(None, SimpleNamespace(trial_id=row.trial_id), result)
        stopped = bool(table[table["trial_id"] == row.trial_id]["stopped_early"].iloc[0])
        assert (decision == STOP) == stopped, row.trial_id


@pytest.mark.slow
@pytest.mark.realdata
def test_best_json_holds_the_front_with_test_metrics(mo_run, capsys):
    summary, exp = mo_run
    best = json.loads((exp / "best.json").read_text())
    table = pd.read_parquet(exp / "results.parquet")
    last = table.sort_values("epoch").groupby("trial_id").tail(1)
    full = last[last["epoch"] == 3]
    points = {r.trial_id: (r.val_mse, r.latent_dim) for r in full.itertuples()}
    on_front = {  # no full-length trial is at least as good in both and better in one
        i
        for i, p in points.items()
        if not any(q[0] <= p[0] and q[1] <= p[1] and q != p for q in points.values())
    }
    assert {p["trial_id"] for p in best["front"]} == on_front and on_front
    assert best["objectives"] == [["val_mse", "min"], ["latent_dim", "min"]]
    for point in best["front"]:
        assert point["values"]["val_mse"] == pytest.approx(points[point["trial_id"]][0])
        assert 0 < point["test"]["test_mse"] < 0.2
        assert (Path(point["checkpoint"]) / "checkpoint.pt").is_file()  # kept by the pruner
    assert best["trial_id"] == full.loc[full["val_mse"].idxmin(), "trial_id"]
    # the best is on the front here: its test metrics are the front point's, the same checkpoint
    (same,) = [p for p in best["front"] if p["trial_id"] == best["trial_id"]]
    assert best["test"] == same["test"]


@pytest.mark.slow
@pytest.mark.realdata
def test_the_report_draws_the_front_and_pictures_along_it(mo_run, tmp_path, capsys):
    _, exp = mo_run
    out = tmp_path / "report"
    report.main([str(exp), "--out", str(out), "--max-test-images", "500"])
    printed = capsys.readouterr().out
    for figure in ("pareto_front.png", "front_pictures.png"):
        assert f"wrote {out / figure}" in printed and (out / figure).stat().st_size > 10_000
    assert "Pareto front of the objectives" in (out / "index.html").read_text()


@pytest.mark.slow
@pytest.mark.realdata
def test_optuna_dashboard_serves_the_front(mo_run):
    _, exp = mo_run
    study = study_of(exp)
    with dashboard_serving(str(exp / "optuna.journal")) as get:
        (summary,) = [s for s in get("/api/studies")["study_summaries"] if s["study_name"] == "mo"]
        detail = get(f"/api/studies/{summary['study_id']}")
    assert len(summary["directions"]) == 2
    shown = {t["number"]: t for t in detail["trials"]}
    for trial in study.trials:
        assert shown[trial.number]["values"] == pytest.approx(trial.values)
    served_front = {t["number"] for t in detail["best_trials"]}
    assert served_front == {t.number for t in study.best_trials}


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


@pytest.mark.slow
@pytest.mark.realdata
def test_a_grown_multi_objective_sweep_keeps_its_objectives(local_ray, tmp_path):
    """--resume with more trials restores the multi-objective searcher from Tune's snapshot: the
    new trials join the same two-objective study, and best.json's front covers them all."""
    argv = ["--smoke-test", "--space", "latent", "--scheduler", "mo-asha", "--num-samples", "2"]
    argv += ["--objectives", "val_mse:min,latent_dim:min", "--wandb-mode", "disabled"]
    ae_sweep.main([*argv, "--storage-path", str(tmp_path), "--name", "grow"])
    exp = tmp_path / "grow"
    summary = ae_sweep.main(["--resume", str(exp), "--num-samples", "3"])
    assert summary["complete"] and summary["trials"] == 3
    study = study_of(exp)
    assert len(study.directions) == 2 and len(study.trials) == 3
    assert all(t.values is not None and len(t.values) == 2 for t in study.trials)
    best = json.loads((exp / "best.json").read_text())
    assert best["objectives"] == [["val_mse", "min"], ["latent_dim", "min"]] and best["front"]
