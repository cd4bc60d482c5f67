"""The search simulator (bench/simulate.py) over the recorded curves
(bench/curves/ae_curves.parquet): it runs the sweep's own searcher and scheduler, built from the
sweep's own flags, and a seed fixes what it does (with the searcher's compute time left out of
the clock, which is the one thing measured, not replayed)."""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import in_ci

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sim():
    spec = importlib.util.spec_from_file_location("simulate", REPO / "bench" / "simulate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["simulate"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def curves(sim):
    from sweeps import ae_sweep

    table = pd.read_parquet(sim.CURVES)
    return sim.Curves(table[table["space"] == "report"], ae_sweep.SPACES["report"])


class Args:
    grace_period, reduction_factor, warm_start = 1, 3, None


def run(sim, curves, method, seed, warm_start=None):
    args = Args()
    args.warm_start = warm_start
    horizon = 12 * float(sum(s.sum() for s in curves.seconds) / len(curves.seconds)) / 4
    return sim.simulate(method, curves, "report", 4, seed, horizon, args, search_time=False)


def test_the_simulated_sweep_is_the_sweeps_own_search_and_a_seed_fixes_it(sim, curves):
    first, again = run(sim, curves, "ours", 3), run(sim, curves, "ours", 3)
    assert (first.times, first.best, first.trials, first.epochs) == (
        again.times,
        again.best,
        again.trials,
        again.epochs,
    )
    other = run(sim, curves, "ours", 4)
    assert (other.times, other.best) != (first.times, first.best)
    # ASHA stopped trials early: fewer epochs than trials x max epochs
    assert first.trials > 4 and first.epochs < first.trials * curves.max_epochs
    assert first.best[-1] >= curves.best and math.isfinite(first.best[-1])


def test_the_strategy_built_for_the_simulation_is_the_sweeps(sim):
    from sweeps.search.schedulers import RevisingASHAScheduler
    from sweeps.search.searcher import TrialStateOptunaSearch

    method = sim.ours("report", 4, 0, 10, Args())
    assert isinstance(method.scheduler, RevisingASHAScheduler)
    assert isinstance(method.searcher.searcher, TrialStateOptunaSearch)  # in a ConcurrencyLimiter
    assert method.searcher.max_concurrent == 4


def test_warm_start_makes_the_first_trial_the_reports(sim, curves):
    from trainables import autoencoder

    method = sim.ours(
        "report", 4, 0, curves.max_epochs, type("A", (Args,), {"warm_start": "report"})
    )
    config = method.suggest("00000")
    report = autoencoder.PRESETS["report"]
    assert config == {k: report[k] for k in ("optimizer", "lr", "weight_decay")}


def test_the_surrogate_is_checked_leaving_one_out(sim, curves):
    check = sim.check_surrogate(curves)
    assert 0 <= check["median_rel_error"] < 1 and -1 <= check["spearman"] <= 1


def test_the_default_methods_are_every_method_and_parse(sim):
    args = sim.build_parser().parse_args([])
    assert args.methods == list(sim.METHODS)  # argparse checks no default against its choices


def test_bohb_and_syne_tunes_methods_run_through_main(sim, tmp_path):
    """Ray's BOHB and Syne Tune's methods (the bench extra), one tiny sweep each."""
    for module in ("hpbandster", "ConfigSpace", "syne_tune.blackbox_repository"):
        if in_ci():  # CI installs the bench extra (make setup): it may not pass by skipping
            importlib.import_module(module)
        else:
            pytest.importorskip(module, reason="the bench extra: pip install -e '.[bench]'")
    methods = ["bohb", *sim.SYNE_METHODS]
    out = tmp_path / "summary.json"
    summary = sim.main(
        ["--space=report", "--workers=2", "--seeds=1", "--budget-trials=4", "--methods", *methods]
        + ["--json", str(out)]
    )
    assert out.exists()
    for name in methods:
        m = summary["methods"][name]
        assert m["trials_median"] >= 2 and m["epochs_median"] >= m["trials_median"]
        assert math.isfinite(m["final_regret_median"])


def test_measured_costs_slow_the_simulated_sweep_as_charged(sim, curves):
    """--costs: a trial's start and its epochs cost what was measured live, on top of the
    recorded epochs: the same seed then sees each epoch later and runs fewer in the horizon."""
    free, charged = run(sim, curves, "ours", 3), Args()
    charged.costs = {"ours": {"start_s": 2.0, "first_epoch_extra_s": 1.0, "epoch_extra_s": 0.5}}
    horizon = 12 * float(sum(s.sum() for s in curves.seconds) / len(curves.seconds)) / 4
    slow = sim.simulate("ours", curves, "report", 4, 3, horizon, charged, search_time=False)
    assert slow.epochs < free.epochs
    # the first result arrives 3 s later: the first trial's first epoch, charged start + extra
    assert slow.times[0] == pytest.approx(free.times[0] + 3.0)
    assert sim.overheads("ray-default", charged) == (0.0, 0.0, 0.0)  # not measured: not charged


def test_a_target_ends_the_simulated_sweep_when_reached(sim, curves):
    full = run(sim, curves, "ours", 3)
    target = full.best[len(full.best) // 2]
    args = Args()
    horizon = 12 * float(sum(s.sum() for s in curves.seconds) / len(curves.seconds)) / 4
    cut = sim.simulate("ours", curves, "report", 4, 3, horizon, args, False, target=target)
    assert cut.best[-1] == target and cut.times == full.times[: len(cut.times)]
    assert cut.epochs < full.epochs


def test_live_costs_rebuild_the_workers_from_the_trials():
    """bench/live_check.py's costs, on trials worked out by hand: two workers; trials 1 and 2
    start the first wave; trial 3 starts 0.5 s after trial 2's worker is free (at 1.1 s), trial
    4 0.3 s after trial 1's (at 2.2 s)."""
    spec = importlib.util.spec_from_file_location("live_check", REPO / "bench" / "live_check.py")
    live = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(live)
    trials = [
        (0.0, [(1.2, 0.5), (2.2, 0.4)]),
        (0.1, [(1.0, 0.6)]),
        (1.6, [(1.4, 0.3)]),
        (2.5, [(1.2, 0.2), (2.0, 0.1)]),
    ]
    c = live.costs(trials, 2, recorded_epoch_s=1.0)
    assert c["start_s"] == pytest.approx(0.4)  # the median of 0.5 and 0.3
    assert c["first_epoch_extra_s"] == pytest.approx(0.2)  # median of 1.2, 1.0, 1.4, 1.2, less 1
    assert c["epoch_extra_s"] == pytest.approx(-0.1)  # median of 1.0 and 0.8, less 1
    events, rel = live.relative([(10 + t, e) for t, e in trials])
    assert [t for t, _ in rel] == pytest.approx([t for t, _ in trials])
    assert events[0] == (pytest.approx(1.1), 0.6) and len(events) == 6
    assert json.dumps(c)  # JSON as written


# -- several objectives (bench/simulate_mo.py) ---------------------------------------------------


@pytest.fixture(scope="module")
def sim_mo(sim):
    sys.path.insert(0, str(REPO))
    return importlib.import_module("bench.simulate_mo")


def test_the_hypervolume_of_a_staircase_by_hand(sim_mo):
    # three points (lower is better) under the reference (4, 4): bands of 3, 2 and 1
    assert sim_mo.hypervolume([(1, 3), (2, 2), (3, 1)], (4, 4)) == 6.0
    # a dominated point and one outside the reference add nothing
    assert sim_mo.hypervolume([(1, 3), (2, 3.5), (5, 0)], (4, 4)) == 3.0
    assert sim_mo.hypervolume([], (4, 4)) == 0.0


def test_the_multi_objective_simulation_runs_the_sweeps_schedulers(sim_mo, tmp_path):
    """Each method is the sweep built from its flags: no-stopping runs every trial to the end,
    MO-ASHA stops some; the hypervolume only grows, up to at most every recorded configuration's."""
    out = tmp_path / "mo.json"
    argv = ["--seeds", "2", "--budget-trials", "6", "--methods", "mo-asha", "asha-first"]
    summary = sim_mo.main([*argv, "--json", str(out)])
    assert json.loads(out.read_text())["references"] == summary["references"]
    assert set(summary["references"]) == {"worst", "median"}
    methods = summary["references"]["worst"]["methods"]
    assert set(methods) == {"no-stopping", "mo-asha", "asha-first"}
    for m in methods.values():
        hv = m["hv_iqm"]
        assert len(hv) == summary["budget_trial_epochs"] == 60
        assert all(a <= b + 1e-12 for a, b in zip(hv, hv[1:], strict=False)) and 0 < hv[-1] <= 1


def test_no_stopping_runs_every_trial_to_the_end_and_mo_asha_stops_some(sim_mo):
    curves = sim_mo.load_curves()
    # the searchers' compute off the clock: a seed fixes each run, whatever the machine's load
    runs = {m: sim_mo.run_one(m, curves, 4, 0, 60, Args, search_time=False) for m in sim_mo.METHODS}
    for name, run in runs.items():
        assert run.epochs == 60, name
    stopped = {m: sum(r["stopped_early"] for r in run.rows) for m, run in runs.items()}
    assert stopped["no-stopping"] == 0
    assert stopped["mo-asha"] > 0 and stopped["asha-first"] > 0
    # the same TPE proposes for all three: the first W trials (before any result) are the same
    first = {m: [r["config/latent_dim"] for r in run.rows[:4]] for m, run in runs.items()}
    assert first["mo-asha"] == first["asha-first"] == first["no-stopping"]
