"""Search methods replayed in simulated time over recorded learning curves: how fast each finds a
good autoencoder, over many seeds (anytime performance, time-to-target).

    python bench/simulate.py --space wide --workers 4 --seeds 30          # every method (bench extra)
    python bench/simulate.py --space report --methods ours random --seeds 5 --budget-trials 10

The curves are bench/record_curves.py's (``bench/curves/ae_curves.parquet``): every epoch's
val_mse and wall time of configurations drawn space-filling from the space. A simulated sweep
has ``--workers`` workers; a worker asks its method for a trial, runs the trial's epochs, each
taking its recorded time, and hands each epoch's value to the method when it would have
arrived; the method may stop the trial (early stopping). The method's own compute (suggest,
result and completion calls) is measured and added to the clock unless ``--no-search-time``.
A configuration a method proposes is served by the recorded configuration nearest to it in the
space normalised to [0, 1] per axis (a log axis on the log scale; a different choice costs 1):
Syne Tune's blackbox-repository surrogate. ``check_surrogate`` measures its error.

Methods, each the real objects (``METHODS``):

  ours              the sweep's own searcher and scheduler, built by the sweep's own code from
                    its parsed flags (``sweeps.request.cli.parse_settings`` -> ``strategy_for`` ->
                    ``Strategy.searcher`` / ``scheduler``): TPE (Optuna, seeded) through Ray's
                    OptunaSearch + ConcurrencyLimiter, and the revising ASHA
  ours-<variant>    the same with one flag changed (``OUR_VARIANTS``): Ray's own ASHA
                    (``--no-asha-revise``), ``--searcher tpe-independent``, ``tpe-5`` or ``random``,
                    ``--warm-start report``, ``--reduction-factor 2`` or ``4``, ``--grace-period 2``
  ray-default       what Ray Tune does with no search_alg: random search (Tune's own samplers,
                    as BasicVariantGenerator draws) and Ray's ASHAScheduler
  random            random search without early stopping: regret's normaliser
  optuna-hyperband  Optuna's TPESampler + HyperbandPruner through Optuna's own ask/tell
                    (Optuna's documented pairing, and the report's tool)
  bohb              Ray Tune's BOHB: TuneBOHB + HyperBandForBOHB, which pauses and resumes trials
  syne-asha         Syne Tune's ASHA in Syne Tune's own simulator (its Tuner, its clock)
  syne-bohb         Syne Tune's asynchronous BOHB (ASHA + KDE), the same way
  syne-ashabore     Syne Tune's ASHA + BORE (its model-based ASHA), the same way

bohb and syne-* are bench/competitors.py's and need the bench extra (pip install -e '.[bench]').

Every method gets the same space, maximum epochs (the curves'), minimum resource
(``--grace-period``) and reduction factor. Output: per method, the best val_mse found so far
against simulated time, as normalised regret (0: the best value recorded; 1: random search's
median at the end of the budget), the interquartile mean over seeds with a bootstrap 95%
interval; time-to-target (random search's final median) and the area under the regret curve,
each as a ratio to ``ours``; a figure (``--figure``) and a JSON file (``--json``).
"""

from __future__ import annotations

import argparse
import heapq
import importlib.util
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CURVES = REPO / "bench" / "curves" / "ae_curves.parquet"
CONTINUE, PAUSE, STOP = "CONTINUE", "PAUSE", "STOP"  # Ray's TrialScheduler decisions, by value


# -- the recorded curves --------------------------------------------------------------------


def unit_of(axis, value) -> float:
    """``value``'s place on a Tune axis, in [0, 1] (a log axis on the log scale)."""
    from ray.tune.search.sample import Categorical, Float, LogUniform

    if isinstance(axis, Categorical):
        return float(list(axis.categories).index(value))
    lo, hi = float(axis.lower), float(axis.upper)
    if isinstance(axis, Float) and isinstance(axis.get_sampler(), LogUniform):
        return (math.log(value) - math.log(lo)) / (math.log(hi) - math.log(lo))
    return (float(value) - lo) / (hi - lo)


class Curves:
    """The recorded curves of one space, and the nearest-neighbour surrogate."""

    def __init__(self, table: pd.DataFrame, space: dict[str, Any]):
        from ray.tune.search.sample import Categorical, Domain

        self.space = space
        self.axes = [k for k, v in space.items() if isinstance(v, Domain)]
        self.choice = [isinstance(space[k], Categorical) for k in self.axes]
        table = table.sort_values(["config_id", "epoch"])
        self.max_epochs = int(table["epoch"].max())
        self.ids, self.values, self.seconds, points = [], [], [], []
        self.configs: list[dict[str, Any]] = []  # each recorded configuration's values
        for config_id, rows in table.groupby("config_id", sort=True):
            values = rows["val_mse"].to_numpy(dtype=float)
            if len(values) < self.max_epochs or not np.isfinite(values).all():
                values = np.concatenate(  # a diverged curve: its last finite value, repeated
                    [values, np.full(self.max_epochs - len(values), np.inf)]
                )
                values[~np.isfinite(values)] = np.nanmax(np.where(np.isfinite(values), values, 0))
            seconds = rows["seconds"].to_numpy(dtype=float)
            seconds = np.concatenate(
                [seconds, np.full(self.max_epochs - len(seconds), np.median(seconds))]
            )
            first = rows.iloc[0]
            self.ids.append(int(config_id))
            self.values.append(values[: self.max_epochs])
            self.seconds.append(seconds[: self.max_epochs])
            points.append([unit_of(space[k], first[k]) for k in self.axes])
            self.configs.append({k: first[k] for k in self.axes})
        self.points = np.array(points)
        self.best = float(min(v.min() for v in self.values))

    def nearest(self, config: dict[str, Any], exclude: int | None = None) -> int:
        """The index of the recorded configuration nearest to ``config``."""
        p = np.array([unit_of(self.space[k], config[k]) for k in self.axes])
        d = np.where(self.choice, (self.points != p) * 1.0, (self.points - p) ** 2).sum(axis=1)
        if exclude is not None:
            d[exclude] = np.inf
        return int(np.argmin(d))


def check_surrogate(curves: Curves) -> dict[str, float]:
    """Leave-one-out: each recorded configuration's final val_mse predicted by its nearest other
    recorded one. Returns the median and 90th percentile of the relative error, and the rank
    correlation (Spearman) of predicted against true."""
    true, pred = [], []
    for i in range(len(curves.ids)):
        p = curves.points[i]
        d = np.where(curves.choice, (curves.points != p) * 1.0, (curves.points - p) ** 2)
        d = d.sum(axis=1)
        d[i] = np.inf
        j = int(np.argmin(d))
        true.append(curves.values[i][-1])
        pred.append(curves.values[j][-1])
    true, pred = np.array(true), np.array(pred)
    rel = np.abs(pred - true) / true
    rank = pd.Series(true).rank().corr(pd.Series(pred).rank())
    return {
        "median_rel_error": float(np.median(rel)),
        "p90_rel_error": float(np.quantile(rel, 0.9)),
        "spearman": float(rank),
    }


# -- the methods ------------------------------------------------------------------------------


class Trial:
    """What Ray's schedulers read of a trial here: its id and config."""

    def __init__(self, trial_id: str, config: dict[str, Any]):
        self.trial_id, self.config = trial_id, config


def sweep_settings(
    space: str, workers: int, seed: int, max_epochs: int, args, extra: tuple[str, ...] = ()
) -> tuple:
    """The sweep's own Settings, parsed from flags as ``sweeps/ae_sweep.py`` parses them, and
    the trial space the runner builds from them."""
    from sweeps import ae_sweep
    from sweeps.request import cli
    from sweeps.request.search_space import trial_space
    from trainables import autoencoder

    argv = [
        f"--space={space}",
        f"--max-epochs={max_epochs}",
        f"--max-concurrent={workers}",
        f"--seed={seed}",
        "--num-samples=1000000",
        f"--grace-period={args.grace_period}",
        f"--reduction-factor={args.reduction_factor}",
        "--wandb-mode=disabled",
        *extra,
    ]
    if args.warm_start:
        argv.append(f"--warm-start={args.warm_start}")
    settings = cli.parse_settings(ae_sweep.SWEEP, cli.build_parser(ae_sweep.SWEEP), argv)
    full = trial_space(ae_sweep.SWEEP, settings, autoencoder, dict(ae_sweep.SPACES[space]))
    return settings, full


# What the autoencoder's trainable reports of its own config with every epoch's val_mse
# (trainables/autoencoder.py): the objectives a multi-objective sweep may weigh (simulate_mo.py)
REPORTED_CONFIG = ("latent_dim",)


class TuneMethod:
    """A Ray Tune searcher (or random sampling) and a Ray Tune scheduler, called as Tune calls
    them, with results as the trainable reports them (val_mse, and ``REPORTED_CONFIG``)."""

    def __init__(self, searcher, scheduler, space: dict[str, Any], seed: int):
        from ray.tune.search.sample import Domain

        self.searcher, self.scheduler, self.space = searcher, scheduler, space
        self.rng = np.random.default_rng(seed)
        self.domains = {k: v for k, v in space.items() if isinstance(v, Domain)}
        self._trials: dict[str, Trial] = {}  # the running trials, as the scheduler sees them

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.searcher is None:  # random search: Tune's own samplers
            config = {k: d.sample(random_state=self.rng) for k, d in self.domains.items()}
        else:
            config = self.searcher.suggest(trial_id)
            if config is None:
                return None
        trial = Trial(trial_id, {**self.space, **config})
        if self.scheduler is not None:
            self.scheduler.on_trial_add(None, trial)
        self._trials[trial_id] = trial
        return config

    def _result(self, trial_id: str, epoch: int, value: float) -> dict[str, Any]:
        config = self._trials[trial_id].config
        reported = {k: config[k] for k in REPORTED_CONFIG if k in config}
        return {"training_iteration": epoch, "val_mse": value, **reported}

    def on_result(self, trial_id: str, epoch: int, value: float) -> str:
        result = self._result(trial_id, epoch, value)
        if self.searcher is not None:
            self.searcher.on_trial_result(trial_id, result)
        if self.scheduler is None:
            return CONTINUE
        return self.scheduler.on_trial_result(None, self._trials[trial_id], result)

    def on_complete(self, trial_id: str, epoch: int, value: float) -> None:
        result = self._result(trial_id, epoch, value)
        trial = self._trials.pop(trial_id)
        if self.scheduler is not None:
            self.scheduler.on_trial_complete(None, trial, result)
        if self.searcher is not None:
            self.searcher.on_trial_complete(trial_id, result)


def ours(space, workers, seed, max_epochs, args, extra: tuple[str, ...] = ()):
    """The sweep's own: Settings from its flags (``extra``: the variant's), its strategy's
    searcher and scheduler, built as ``sweeps/runner.py`` builds them."""
    import optuna

    from sweeps import ae_sweep
    from sweeps.request.warm_start import warm_start
    from sweeps.search.strategies import strategy_for
    from trainables import autoencoder

    settings, full = sweep_settings(space, workers, seed, max_epochs, args, extra)
    strategy = strategy_for(settings)
    warm = warm_start(ae_sweep.SWEEP, settings, autoencoder, full)
    searcher = strategy.searcher(settings, optuna.storages.InMemoryStorage(), warm)
    searcher.set_search_properties("val_mse", "min", full)
    scheduler = strategy.scheduler(settings, {})
    scheduler.set_search_properties("val_mse", "min")
    return TuneMethod(searcher, scheduler, full, seed)


def ray_default(space, workers, seed, max_epochs, args, early_stopping=True):
    """Ray Tune without a search_alg: random search, and Ray's ASHAScheduler."""
    from ray.tune.schedulers import ASHAScheduler

    _, full = sweep_settings(space, workers, seed, max_epochs, args)
    scheduler = None
    if early_stopping:
        scheduler = ASHAScheduler(
            time_attr="training_iteration",
            max_t=max_epochs,
            grace_period=args.grace_period,
            reduction_factor=args.reduction_factor,
        )
        scheduler.set_search_properties("val_mse", "min")
    return TuneMethod(None, scheduler, full, seed)


class OptunaHyperband:
    """Optuna's TPESampler and HyperbandPruner through Optuna's ask/tell, one study."""

    def __init__(self, space, workers, seed, max_epochs, args):
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        _, full = sweep_settings(space, workers, seed, max_epochs, args)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.distributions = OptunaSearch.convert_search_space(full)
        self.study = optuna.create_study(
            direction="minimize",
            sampler=optuna.samplers.TPESampler(seed=seed),
            pruner=optuna.pruners.HyperbandPruner(
                min_resource=args.grace_period,
                max_resource=max_epochs,
                reduction_factor=args.reduction_factor,
            ),
        )
        self.trials: dict[str, Any] = {}
        self.max_epochs = max_epochs

    def suggest(self, trial_id: str) -> dict[str, Any]:
        trial = self.study.ask(self.distributions)
        self.trials[trial_id] = trial
        return dict(trial.params)

    def on_result(self, trial_id: str, epoch: int, value: float) -> str:
        trial = self.trials[trial_id]
        trial.report(value, epoch)
        if epoch < self.max_epochs and trial.should_prune():
            return STOP
        return CONTINUE

    def on_complete(self, trial_id: str, epoch: int, value: float) -> None:
        import optuna

        trial = self.trials.pop(trial_id)
        if epoch < self.max_epochs:
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            self.study.tell(trial, value)


def competitors():
    """bench/competitors.py (Ray's BOHB, Syne Tune's methods: the bench extra), loaded once, with
    this module as its ``sim``."""
    module = sys.modules.get("competitors")
    if module is None:
        spec = importlib.util.spec_from_file_location(
            "competitors", Path(__file__).with_name("competitors.py")
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules["competitors"] = module
        spec.loader.exec_module(module)
    module.sim = sys.modules[__name__]
    return module


SYNE_METHODS = ("syne-asha", "syne-bohb", "syne-ashabore")  # competitors.SYNE_SCHEDULERS' keys

# The sweep's own code with other flags: each a setting a user could pick, and a candidate default.
OUR_VARIANTS = {
    "ours": (),
    "ours-ray-asha": ("--no-asha-revise",),
    "ours-tpe-independent": ("--searcher=tpe-independent",),
    "ours-tpe-5": ("--searcher=tpe-5",),
    "ours-random": ("--searcher=random",),
    "ours-warm-report": ("--warm-start=report",),
    # ASHA's settings (every other method keeps --grace-period and --reduction-factor)
    "ours-rf2": ("--reduction-factor=2",),
    "ours-rf4": ("--reduction-factor=4",),
    "ours-grace2": ("--grace-period=2",),
}

METHODS = {
    **{
        name: (lambda extra: lambda *a: ours(*a, extra=extra))(v)
        for name, v in OUR_VARIANTS.items()
    },
    "ours-warm-from": None,  # simulate() runs "ours" first, then this from its trials
    "ray-default": ray_default,
    "random": lambda *a: ray_default(*a, early_stopping=False),
    "optuna-hyperband": OptunaHyperband,
    "bohb": lambda *a: competitors().Bohb(*a),
    **dict.fromkeys(SYNE_METHODS),  # simulate() hands these to Syne Tune's own simulator
}
DEFAULT_METHODS = list(METHODS)
# what the anytime figure draws: ours against what a user would pick instead
FIGURE_METHODS = ["ours", "ray-default", "optuna-hyperband", "bohb", *SYNE_METHODS, "random"]


# -- the simulation ---------------------------------------------------------------------------


@dataclass
class Run:
    """One simulated sweep: when the best-so-far value improved, and what it spent."""

    method: str
    seed: int
    times: list[float] = field(default_factory=list)
    best: list[float] = field(default_factory=list)
    trials: int = 0
    epochs: int = 0
    search_seconds: float = 0.0
    first_trial_end: float = math.nan
    rows: list[dict[str, Any]] = field(default_factory=list)  # results.parquet's, per epoch

    def best_at(self, t: np.ndarray) -> np.ndarray:
        """The best value found by each time in ``t`` (inf before the first result)."""
        idx = np.searchsorted(np.array(self.times), t, side="right") - 1
        best = np.array(self.best + [np.inf])
        return np.where(idx >= 0, best[idx], np.inf)


def overheads(method_name: str, args) -> tuple[float, float, float]:
    """What running a trial costs beyond its recorded epochs under ``method_name``, in seconds:
    before a trial's first epoch (or a paused trial's next), added to its first epoch, and added
    to each later epoch. Measured live by bench/live_check.py on this machine (``--costs``: its
    JSON): Ray Tune starts a new actor for every trial unless it reuses them (Ray's default does
    not, our sweep does), every epoch under Tune also reports and writes a checkpoint while the
    driver shares the CPUs, and Optuna's own loop runs its trials in threads of one process.
    ``ours-*`` pay ours; ``optuna-hyperband`` its own; the other Tune methods (ray-default,
    random, bohb) Ray's default's; Syne Tune's are set in its simulator (bench/competitors.py).
    None without ``--costs``."""
    measured = getattr(args, "costs", None) or {}
    family = (
        "ours"
        if method_name.startswith("ours")
        else method_name
        if method_name == "optuna-hyperband"
        else "ray-default"
    )
    c = measured.get(family)
    if not c:
        return 0.0, 0.0, 0.0
    return c["start_s"], c["first_epoch_extra_s"], c["epoch_extra_s"]


def simulate(
    method_name: str,
    curves: Curves,
    space: str,
    workers: int,
    seed: int,
    horizon: float,
    args,
    search_time: bool = True,
    target: float | None = None,
    epoch_budget: int | None = None,
    make=None,
) -> Run:
    """One sweep of ``method_name`` with ``workers`` workers until simulated ``horizon`` (or,
    with ``target``, until the best value found reaches it: ``Run.epochs`` then counts the
    epochs it took; with ``epoch_budget``, until it has run that many trial-epochs). ``make``
    builds the method (default: ``METHODS[method_name]``), called as ``METHODS``' are.
    "ours-warm-from" first runs "ours" (seed + 10000) and starts from its trials through
    --warm-start-from, written as the folder a sweep leaves (``earlier_sweep``). A method may
    PAUSE a trial (Ray's synchronous HyperBandForBOHB): the trial leaves its worker, and a free
    worker first asks the method's ``resume()`` for a paused trial to go on with its next epoch,
    then its ``suggest`` for a new one. Syne Tune's methods run in Syne Tune's own simulator."""
    if method_name in SYNE_METHODS:
        return competitors().simulate_syne(
            method_name, curves, space, workers, seed, horizon, args, search_time
        )
    if method_name == "ours-warm-from":
        first = simulate("ours", curves, space, workers, seed + 10000, horizon, args, search_time)
        folder = earlier_sweep(first, space, workers, curves.max_epochs, args)
        method = ours(space, workers, seed, curves.max_epochs, args, ("--warm-start-from", folder))
        shutil.rmtree(folder)  # read when the searcher was built
    else:
        make = make or METHODS[method_name]
        method = make(space, workers, seed, curves.max_epochs, args)
    run = Run(method_name, seed)
    events: list[tuple[float, int, str]] = []
    running: dict[str, list] = {}  # trial id -> [curve index, epochs done]
    free, counter, clock_debt = workers, 0, 0.0
    best = math.inf

    def timed(call, *a):
        nonlocal clock_debt
        t0 = time.perf_counter()
        out = call(*a)
        spent = time.perf_counter() - t0
        run.search_seconds += spent
        if search_time:
            clock_debt += spent
        return out

    resume = getattr(method, "resume", None)  # only a method that pauses trials has one
    start_s, first_s, epoch_s = overheads(method_name, args)

    def start(now: float) -> None:
        nonlocal free, counter, clock_debt
        while free > 0:
            trial_id = timed(resume) if resume is not None else None
            if trial_id is not None:  # a paused trial goes on with its next epoch
                i, done, _ = running[trial_id]
                now += clock_debt
                clock_debt = 0.0
                heapq.heappush(  # a new actor, so its first epoch's cost again
                    events, (now + start_s + curves.seconds[i][done] + first_s, counter, trial_id)
                )
                counter += 1
                free -= 1
                continue
            trial_id = f"{counter:05d}"
            config = timed(method.suggest, trial_id)
            if config is None:
                return
            counter += 1
            i = curves.nearest({**curves.space, **config})
            running[trial_id] = [i, 0, config]
            now += clock_debt
            clock_debt = 0.0
            heapq.heappush(
                events, (now + start_s + curves.seconds[i][0] + first_s, counter, trial_id)
            )
            free -= 1
            run.trials += 1

    start(0.0)
    while events:
        now, _, trial_id = heapq.heappop(events)
        if now > horizon:
            break
        i, done, config = running[trial_id]
        epoch = done + 1
        running[trial_id][1] = epoch
        value = float(curves.values[i][epoch - 1])
        run.epochs += 1
        if value < best:
            best = value
            run.times.append(now)
            run.best.append(best)
            if target is not None and best <= target:
                break
        decision = timed(method.on_result, trial_id, epoch, value)
        ended = decision == STOP or epoch >= curves.max_epochs
        paused = decision == PAUSE and not ended
        run.rows.append(
            {
                "trial_id": trial_id,
                "status": "TERMINATED" if ended else "PAUSED" if paused else "RUNNING",
                "stopped_early": ended and epoch < curves.max_epochs,
                "epoch": epoch,
                "val_mse": value,
                **{f"config/{k}": v for k, v in config.items()},
            }
        )
        if epoch_budget is not None and run.epochs >= epoch_budget:
            break
        if ended:
            timed(method.on_complete, trial_id, epoch, value)
            if trial_id == "00000":  # the first trial proposed (a warm start's configuration)
                run.first_trial_end = now
            del running[trial_id]
            free += 1
            start(now + clock_debt)
            clock_debt = 0.0
        elif paused:  # its worker is free; resume() may give it one again
            free += 1
            start(now + clock_debt)
            clock_debt = 0.0
        else:
            heapq.heappush(events, (now + curves.seconds[i][epoch] + epoch_s, counter, trial_id))
            counter += 1
    return run


def earlier_sweep(first: Run, space: str, workers: int, max_epochs: int, args) -> str:
    """A folder holding ``first`` as a finished sweep leaves it for --warm-start-from: its
    sweep.json (model, metric, space) and results.parquet (only its trials that ended)."""
    import tempfile

    from sweeps.folder.layout import RESULTS_FILE, SWEEP_FILE
    from sweeps.request.search_space import describe_space

    _, full = sweep_settings(space, workers, first.seed, max_epochs, args)
    folder = Path(tempfile.mkdtemp(prefix="sim-first-"))
    record = {
        "model": "autoencoder",
        "metric": "val_mse",
        "mode": "min",
        "search_space": describe_space(full)[0],
        "max_epochs": max_epochs,
        "experiment_dir": str(folder),
    }
    (folder / SWEEP_FILE).write_text(json.dumps(record))
    rows = pd.DataFrame(first.rows)
    ended = set(rows.loc[rows["status"] == "TERMINATED", "trial_id"])
    rows = rows[rows["trial_id"].isin(ended)].copy()
    rows["status"] = "TERMINATED"  # results.parquet's status is the trial's, on every row
    rows["stopped_early"] = rows.groupby("trial_id")["stopped_early"].transform("max")
    rows.to_parquet(folder / RESULTS_FILE, index=False)
    return str(folder)


# -- statistics -------------------------------------------------------------------------------


def iqm(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """The interquartile mean: the mean of the middle half."""
    x = np.sort(x, axis=axis)
    n = x.shape[axis]
    lo, hi = int(np.floor(n * 0.25)), int(np.ceil(n * 0.75))
    return np.take(x, range(lo, max(hi, lo + 1)), axis=axis).mean(axis=axis)


def bootstrap_iqm(x: np.ndarray, reps: int = 1000, seed: int = 0) -> tuple[np.ndarray, ...]:
    """IQM over axis 0 and its bootstrap 95% interval."""
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    samples = np.stack([iqm(x[rng.integers(0, n, n)]) for _ in range(reps)])
    return iqm(x), np.quantile(samples, 0.025, axis=0), np.quantile(samples, 0.975, axis=0)


def time_to(run: Run, target: float) -> float:
    """When the run's best first reached ``target`` (inf if never)."""
    for t, b in zip(run.times, run.best, strict=True):
        if b <= target:
            return t
    return math.inf


def summarise(runs: dict[str, list[Run]], curves: Curves, horizon: float) -> dict[str, Any]:
    grid = np.linspace(0, horizon, 200)
    final_random = np.median([r.best_at(np.array([horizon]))[0] for r in runs["random"]])
    scale = max(final_random - curves.best, 1e-12)  # 0 only if random search found the best

    def regret(r: Run) -> np.ndarray:
        return np.minimum((r.best_at(grid) - curves.best) / scale, 10.0)  # inf before any result

    out: dict[str, Any] = {
        "horizon_s": horizon,
        "best_recorded": curves.best,
        "target_val_mse": float(final_random),
        "grid_s": grid.tolist(),
        "methods": {},
    }
    for name, rs in runs.items():
        curves_r = np.stack([regret(r) for r in rs])
        mid, lo, hi = bootstrap_iqm(curves_r)
        ttt = np.array([time_to(r, final_random) for r in rs])
        auc = curves_r.mean(axis=1)
        out["methods"][name] = {
            "seeds": len(rs),
            "regret_iqm": mid.tolist(),
            "regret_lo": lo.tolist(),
            "regret_hi": hi.tolist(),
            "final_regret_median": float(np.median(curves_r[:, -1])),
            "time_to_target_median_s": float(np.median(ttt)),
            "reached_target": int(np.isfinite(ttt).sum()),
            "auc_median": float(np.median(auc)),
            "trials_median": float(np.median([r.trials for r in rs])),
            "epochs_median": float(np.median([r.epochs for r in rs])),
            "search_seconds_median": float(np.median([r.search_seconds for r in rs])),
            "first_trial_end_median_s": float(np.median([r.first_trial_end for r in rs])),
            "regret_at_first_trial_end_median": float(
                np.median(
                    [
                        (r.best_at(np.array([r.first_trial_end]))[0] - curves.best) / scale
                        for r in rs
                    ]
                )
            ),
        }
    base = out["methods"].get("ours")
    if base:
        rng = np.random.default_rng(0)
        ours_ttt = np.array([time_to(r, final_random) for r in runs["ours"]])
        for name, m in out["methods"].items():
            m["time_to_target_vs_ours"] = (
                m["time_to_target_median_s"] / base["time_to_target_median_s"]
            )
            m["auc_vs_ours"] = m["auc_median"] / base["auc_median"]
            # the ratio's bootstrap 95% interval, each method's seeds resampled apart
            ttt = np.array([time_to(r, final_random) for r in runs[name]])
            ratios = [
                np.median(rng.choice(ttt, len(ttt)))
                / np.median(rng.choice(ours_ttt, len(ours_ttt)))
                for _ in range(2000)
            ]
            m["time_to_target_vs_ours_ci"] = [
                float(np.quantile(ratios, 0.025)),
                float(np.quantile(ratios, 0.975)),
            ]
            m["time_to_target_s"] = ttt.tolist()
    return out


def markdown_table(summary: dict[str, Any]) -> str:
    """The summary as BENCHMARKS.md's table: one row per method, ours first."""

    def seconds(t: float) -> str:
        return f"{t:.1f} s" if math.isfinite(t) else "never (median)"

    lines = [
        "| method | time-to-target (median) | vs ours (95% CI) | seeds reaching it | AUC of regret "
        "vs ours | regret at the horizon (median) | trials | epochs |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, m in summary["methods"].items():
        ratio, (lo, hi) = m["time_to_target_vs_ours"], m["time_to_target_vs_ours_ci"]
        shown = f"{ratio:.2f}x" if math.isfinite(ratio) else "-"
        lines.append(
            f"| {name} | {seconds(m['time_to_target_median_s'])} | {shown} ({lo:.2f}-{hi:.2f}) "
            f"| {m['reached_target']}/{m['seeds']} | {m['auc_vs_ours']:.2f}x "
            f"| {m['final_regret_median']:.3f} | {m['trials_median']:.0f} "
            f"| {m['epochs_median']:.0f} |"
        )
    return "\n".join(lines).replace("nan", "inf")


def draw(summary: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    grid = np.array(summary["grid_s"]) / 60
    for name, m in summary["methods"].items():
        if name not in FIGURE_METHODS:  # the tables list every method; the figure the main ones
            continue
        (line,) = ax.plot(grid, m["regret_iqm"], label=f"{name} ({m['seeds']} seeds)")
        ax.fill_between(grid, m["regret_lo"], m["regret_hi"], color=line.get_color(), alpha=0.2)
    ax.set_yscale("log")
    ax.set_ylim(0.01, 10)
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("simulated wall time (minutes)")
    ax.set_ylabel("normalised regret of the best val_mse (IQM, 95% CI)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="wide", choices=["report", "wide"], help="the space")
    parser.add_argument(
        "--methods", nargs="+", default=DEFAULT_METHODS, choices=list(METHODS), help="METHODS"
    )
    parser.add_argument("--workers", type=int, default=4, help="W: trials at once")
    parser.add_argument("--seeds", type=int, default=30, help="seeds per method")
    parser.add_argument("--first-seed", type=int, default=0, help="the first seed")
    parser.add_argument(
        "--budget-trials",
        type=float,
        default=20,
        help="the horizon: the time this many full-length trials take, over the workers",
    )
    parser.add_argument("--grace-period", type=int, default=1, help="minimum resource")
    parser.add_argument("--reduction-factor", type=float, default=3, help="ASHA's factor")
    parser.add_argument("--warm-start", default=None, help="--warm-start for every ours-*")
    parser.add_argument(
        "--no-search-time", action="store_true", help="leave the searchers' compute off the clock"
    )
    parser.add_argument(
        "--costs",
        type=Path,
        help="bench/live_check.py's JSON: each method's measured cost of a trial beyond its "
        "recorded epochs (actor start, first and later epochs under Tune; none without)",
    )
    parser.add_argument("--curves", type=Path, default=CURVES, help="the recorded curves")
    parser.add_argument("--json", type=Path, help="write the summary here")
    parser.add_argument("--figure", type=Path, help="draw the anytime curves here")
    parser.add_argument("--redraw", type=Path, help="draw --figure from this --json, run nothing")
    parser.add_argument(
        "--table", type=Path, help="print this --json as BENCHMARKS.md's table, run nothing"
    )
    parser.add_argument(
        "--syne-surrogate",
        default="nearest",
        choices=["nearest", "knn"],
        help="the syne-* methods' blackbox: the others' nearest curve, or Syne Tune's 1-NN",
    )
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    costs_file = args.costs
    if costs_file:
        live = json.loads(costs_file.read_text())
        args.costs = {name: m["costs"] for name, m in live["methods"].items() if "costs" in m}
    if args.table:
        print(markdown_table(json.loads(args.table.read_text())))
        return {}
    if args.redraw:
        summary = json.loads(args.redraw.read_text())
        title = (
            f"autoencoder '{summary['space']}' space, W={summary['workers']}, "
            f"{summary['methods']['ours']['seeds']} seeds, horizon {summary['horizon_s']:.0f} s "
            f"({args.budget_trials:g} full trials / W)"
        )
        draw(summary, args.figure, title)
        return summary

    from sweeps import ae_sweep

    table = pd.read_parquet(args.curves)
    curves = Curves(table[table["space"] == args.space], ae_sweep.SPACES[args.space])
    full_trial = float(np.median([s.sum() for s in curves.seconds]))
    horizon = args.budget_trials * full_trial / args.workers
    methods = list(dict.fromkeys(["random", *args.methods]))  # random: the normaliser
    order = [(m, s) for s in range(args.first_seed, args.first_seed + args.seeds) for m in methods]
    np.random.default_rng(0).shuffle(order)  # methods interleaved in a random order
    runs: dict[str, list[Run]] = {m: [] for m in methods}
    t0 = time.perf_counter()
    for m, s in order:
        runs[m].append(
            simulate(m, curves, args.space, args.workers, s, horizon, args, not args.no_search_time)
        )
    summary = summarise(runs, curves, horizon)
    summary.update(
        space=args.space,
        workers=args.workers,
        configurations=len(curves.ids),
        max_epochs=curves.max_epochs,
        surrogate=check_surrogate(curves),
        costs=args.costs,
        costs_from=str(costs_file) if costs_file else None,
        wall_s=round(time.perf_counter() - t0, 1),
        command="python bench/simulate.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    )
    for name, m in summary["methods"].items():
        print(
            f"{name:17s} time-to-target {m['time_to_target_median_s'] / 60:6.1f} min "
            f"({m.get('time_to_target_vs_ours', math.nan):.2f}x ours, 95% CI "
            f"{m.get('time_to_target_vs_ours_ci', [math.nan] * 2)[0]:.2f}-"
            f"{m.get('time_to_target_vs_ours_ci', [math.nan] * 2)[1]:.2f}, reached "
            f"{m['reached_target']}/{m['seeds']}), AUC {m.get('auc_vs_ours', math.nan):.2f}x, "
            f"final regret {m['final_regret_median']:.3f}, {m['trials_median']:.0f} trials, "
            f"{m['epochs_median']:.0f} epochs"
        )
    if args.json:
        args.json.write_text(json.dumps(summary) + "\n")
    if args.figure:
        draw(
            summary,
            args.figure,
            f"autoencoder '{args.space}' space, W={args.workers}, {args.seeds} seeds, "
            f"horizon {horizon:.0f} s ({args.budget_trials:g} full trials / W)",
        )
    return summary


if __name__ == "__main__":
    main()
