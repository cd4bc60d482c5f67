"""The search simulator (bench/simulate.py) over the recorded curves
(bench/curves/ae_curves.parquet): it runs the sweep's own searcher and scheduler, built from the
sweep's own flags, and a seed fixes what it does (with the searcher's compute time left out of
the clock, which is the one thing measured, not replayed)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pandas as pd
import pytest

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
