"""Other tools' searchers in bench/simulate.py's comparison (its ``METHODS`` registers them): Ray's
BOHB, and Syne Tune's ASHA through Syne Tune's own simulator. They need the ``bench`` extra
(``pip install -e '.[bench]'``: hpbandster, ConfigSpace, syne-tune); every import of it is inside a
function, so bench/simulate.py runs without it.

  bohb         Ray Tune's BOHB: ``TuneBOHB`` (hpbandster's KDE model over a ConfigSpace space) and
               ``HyperBandForBOHB``, called as Tune's controller calls them. The scheduler is
               synchronous: it PAUSEs a trial at its rung and chooses which paused trial resumes
               (``choose_trial_to_run``); the simulator asks it before asking for a new trial
               (``Bohb.resume``), and a resumed trial goes on with the next epoch of its curve.
               HyperBandForBOHB takes no minimum resource: its brackets start at
               int(max_t / eta^s) epochs, 1 for the curves' 10 epochs and eta 3 (``--grace-period``
               must equal it). hpbandster draws from numpy's global generator, seeded here.
  syne-bohb,   Syne Tune's asynchronous ``baselines.BOHB`` (ASHA with a KDE searcher) and
  syne-ashabore ``baselines.ASHABORE`` (ASHA with BORE's classifier searcher): run as syne-asha is.
  syne-asha    Syne Tune's ``baselines.ASHA`` (its AsynchronousSuccessiveHalving, stopping type, random
               search) run by Syne Tune's ``Tuner`` on its own ``UserBlackboxBackend`` with the
               ``SimulatorCallback``, ``StoppingCriterion(max_wallclock_time=horizon)``, ``n_workers=W``;
               the run becomes the simulator's ``Run`` from the results' ``st_tuner_time``.
               Its RandomSearcher ignores ``random_seed`` (0.16.0: it samples from numpy's
               global generator), so that generator is seeded too.

Syne Tune's clock (``SimulatorBackend`` and its ``SimulatedTimeKeeper``, syne-tune 0.16.0): each
backend call first advances the simulated clock by the real time spent outside the backend since
its previous call, which is the scheduler's own compute (``suggest``, ``on_trial_result``) and also
the rest of the Tuner's loop (its bookkeeping, the callbacks, the results store); when every worker
is busy the Tuner "sleeps", which advances the clock by ``tuner_sleep_time`` (5 s by default,
``SYNE_SLEEP_S`` here: an epoch here takes about 0.9 s, so results reach the scheduler at most that
late), and every start, result, stop and completion is delayed by ``SimulatorConfig``'s delays (0.05 s
each by default; here 0, but a trial's start, which takes what Ray's default's does under
bench/simulate.py's ``--costs``: a new process per trial, as Ray's default starts a new actor). With ``--no-search-time`` the real time outside the
backend is left off the clock, as bench/simulate.py leaves the methods' compute off.

The surrogate: the curves as a Syne Tune tabulated blackbox (``blackbox_of``: a ``BlackboxTabular``,
objectives val_mse and cumulative elapsed_time over fidelity ``epoch``). Syne Tune's own surrogate,
``add_surrogate(blackbox, KNeighborsRegressor(n_neighbors=1))``, standardises each raw value (log
axes on the linear scale) and one-hot encodes choices, so it picks other neighbours than
bench/simulate.py's surrogate (``Curves.nearest``: [0, 1] per axis, log axes on the log scale).
By default (``--syne-surrogate nearest``) the blackbox serves the curve ``Curves.nearest`` picks,
the one every other method gets; ``--syne-surrogate knn`` uses Syne Tune's own.

Syne Tune's MOBSTER and Hyper-Tune: not in syne-tune 0.14 to 0.16 (their Gaussian-process searchers
were removed; ``syne_tune.optimizer.baselines`` has RandomSearch, BORE, TPE, REA, BOTorch, ASHA,
ASHABORE, ASHACQR, BOHB, CQR, EHVI). The last release with them, 0.13.0, requires numpy<1.27.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import shutil
import tempfile
from typing import Any

import numpy as np

CONTINUE, PAUSE, STOP = "CONTINUE", "PAUSE", "STOP"  # Ray's TrialScheduler decisions, by value
SYNE_SLEEP_S = 0.05  # Syne Tune's tuner_sleep_time: the simulated seconds a busy Tuner waits
sim: Any = None  # bench/simulate.py's module, set by its ``competitors()``, which loads this one


# -- Ray's BOHB -------------------------------------------------------------------------------


class _BohbTrial:
    """What HyperBandForBOHB reads of a trial: id, config, status (Ray's Trial.<STATUS> values),
    is_saving, last_result."""

    def __init__(self, trial_id: str, config: dict[str, Any]):
        self.trial_id, self.config = trial_id, config
        self.status, self.is_saving, self.last_result = "PENDING", False, {}

    def __repr__(self) -> str:
        return f"Trial({self.trial_id}, {self.status})"


class _Controller:
    """What HyperBandForBOHB reads of Tune's TuneController: ``get_trials()``,
    ``search_alg.searcher`` (its on_pause/on_unpause) and ``stop_trial`` (as Tune stops a paused
    trial: the scheduler's on_trial_remove, the searcher's on_trial_complete)."""

    def __init__(self, method: Bohb):
        self.method = method
        self.search_alg = type("SearchAlg", (), {"searcher": method.searcher})()

    def get_trials(self) -> list[_BohbTrial]:
        return list(self.method.trials.values())

    def stop_trial(self, trial: _BohbTrial) -> None:
        if trial.status in ("TERMINATED", "ERROR"):
            return
        if trial.status in ("PENDING", "PAUSED"):
            self.method.scheduler.on_trial_remove(self, trial)
            self.method.searcher.on_trial_complete(trial.trial_id)
        else:  # RUNNING: only the trial whose result is being processed
            self.method.scheduler.on_trial_complete(self, trial, trial.last_result)
            self.method.searcher.on_trial_complete(trial.trial_id, result=trial.last_result)
        trial.status = "TERMINATED"


class Bohb:
    """Ray's TuneBOHB + HyperBandForBOHB, called in the order Tune's controller calls them: the
    scheduler's on_trial_result first (it adds the rung's budget to the result), then the
    searcher's, which Tune skips when the scheduler stops the trial."""

    def __init__(self, space, workers, seed, max_epochs, args):
        from ray.tune.schedulers import HyperBandForBOHB
        from ray.tune.search.bohb import TuneBOHB

        eta = args.reduction_factor
        s_max = int(np.round(np.log(max_epochs) / np.log(eta)))  # as HyperBandScheduler's
        first_rung = int(max_epochs * eta**-s_max)
        if first_rung != args.grace_period:
            raise ValueError(
                f"HyperBandForBOHB's smallest bracket starts at {first_rung} epochs for "
                f"max_t={max_epochs}, eta={eta:g} (it takes no minimum resource); "
                f"--grace-period is {args.grace_period}"
            )
        _, full = sim.sweep_settings(space, workers, seed, max_epochs, args)
        np.random.seed(seed)  # hpbandster's KDE and random fraction draw from numpy's global RNG
        # hpbandster logs each sample whose expected improvement is nan or inf (a KDE bandwidth at
        # its 1e-3 floor on a choice every good or bad point shares) with its KDEs' data: kept quiet
        logging.getLogger("hpbandster").setLevel(logging.ERROR)
        self.searcher = TuneBOHB(seed=seed)
        self.searcher.set_search_properties("val_mse", "min", full)
        self.scheduler = HyperBandForBOHB(
            time_attr="training_iteration", max_t=max_epochs, reduction_factor=eta
        )
        self.scheduler.set_search_properties("val_mse", "min")
        self.space = full
        self.trials: dict[str, _BohbTrial] = {}
        self.controller = _Controller(self)

    def resume(self) -> str | None:
        """The paused trial the scheduler resumes on a free worker, or None."""
        trial = self.scheduler.choose_trial_to_run(self.controller)
        if trial is None:
            return None
        assert trial.status == "PAUSED", trial  # a new trial starts when it is added
        self.searcher.on_unpause(trial.trial_id)  # as HyperBandForBOHB._unpause_trial
        trial.status = "RUNNING"
        return trial.trial_id

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        config = self.searcher.suggest(trial_id)
        if config is None:
            return None
        config = {k: v.item() if isinstance(v, np.generic) else v for k, v in config.items()}
        trial = _BohbTrial(trial_id, {**self.space, **config})
        self.trials[trial_id] = trial
        self.scheduler.on_trial_add(self.controller, trial)
        trial.status = "RUNNING"
        return config

    def on_result(self, trial_id: str, epoch: int, value: float) -> str:
        trial = self.trials[trial_id]
        result = {"training_iteration": epoch, "val_mse": value}
        trial.last_result = result
        decision = self.scheduler.on_trial_result(self.controller, trial, result)
        if decision != STOP:
            self.searcher.on_trial_result(trial_id, result)
        if decision == PAUSE:
            trial.status = "PAUSED"
        return decision

    def on_complete(self, trial_id: str, epoch: int, value: float) -> None:
        trial = self.trials[trial_id]
        trial.status = "RUNNING"  # ended at its last epoch, or stopped on this result
        self.controller.stop_trial(trial)


# -- Syne Tune --------------------------------------------------------------------------------


def syne_space(space: dict[str, Any]) -> dict[str, Any]:
    """A Tune space as a Syne Tune config space (constants kept)."""
    from ray.tune.search.sample import Categorical, Float, Integer, LogUniform
    from syne_tune import config_space as cs

    out = {}
    for k, v in space.items():
        if isinstance(v, Categorical):
            out[k] = cs.choice(list(v.categories))
        elif isinstance(v, Float):
            log = isinstance(v.get_sampler(), LogUniform)
            out[k] = (cs.loguniform if log else cs.uniform)(v.lower, v.upper)
        elif isinstance(v, Integer):
            out[k] = cs.randint(v.lower, v.upper - 1)  # Tune's upper bound is exclusive
        else:
            out[k] = v
    return out


def blackbox_of(curves, surrogate: str = "nearest"):
    """The recorded curves as a Syne Tune blackbox: a ``BlackboxTabular`` (val_mse and cumulative
    elapsed_time at fidelity ``epoch``) under a nearest-neighbour surrogate, ``Curves.nearest``
    ("nearest") or Syne Tune's ``add_surrogate`` with ``KNeighborsRegressor(n_neighbors=1)``
    ("knn")."""
    import pandas as pd
    from syne_tune import config_space as cs
    from syne_tune.blackbox_repository import add_surrogate
    from syne_tune.blackbox_repository.blackbox import Blackbox
    from syne_tune.blackbox_repository.blackbox_tabular import BlackboxTabular

    space = syne_space(curves.space)
    fidelity_space = {"epoch": cs.randint(1, curves.max_epochs)}
    hps = pd.DataFrame(
        [  # each value as the space's own (a choice's 64, not the table's 64.0)
            {
                k: next(c for c in space[k].categories if c == v) if choice else float(v)
                for (k, v), choice in zip(config.items(), curves.choice, strict=True)
            }
            for config in curves.configs
        ]
    )
    for k, v in space.items():
        if not isinstance(v, cs.Domain):
            hps[k] = v
    objectives = np.stack(
        [
            np.stack([v, np.cumsum(s)], axis=-1)
            for v, s in zip(curves.values, curves.seconds, strict=True)
        ]
    )[:, None]  # (configs, seeds, fidelities, objectives)
    table = BlackboxTabular(
        hyperparameters=hps,
        configuration_space=space,
        fidelity_space=fidelity_space,
        objectives_evaluations=objectives,
        fidelity_values=np.arange(1, curves.max_epochs + 1),
        objectives_names=["val_mse", "elapsed_time"],
    )
    if surrogate == "knn":
        from sklearn.neighbors import KNeighborsRegressor

        return add_surrogate(table, KNeighborsRegressor(n_neighbors=1), configuration_space=space)

    class Nearest(Blackbox):
        """The table's curve of the configuration ``Curves.nearest`` picks."""

        def _objective_function(self, configuration, fidelity=None, seed=None):
            i = curves.nearest({**curves.space, **configuration})
            values = table.objectives_evaluations[i, 0]
            if fidelity is None:
                return values
            return dict(zip(self.objectives_names, values[int(fidelity["epoch"]) - 1], strict=True))

        @property
        def fidelity_values(self):
            return table.fidelity_values

    return Nearest(space, fidelity_space, ["val_mse", "elapsed_time"])


# method -> syne_tune.optimizer.baselines' class (each an AsynchronousSuccessiveHalving, stopping
# type, with the same max_t, grace period and reduction factor): random search; a KDE model
# (Syne Tune's asynchronous BOHB); BORE's classifier model (its model-based ASHA that stands
# closest to MOBSTER in 0.16.0)
SYNE_SCHEDULERS = {"syne-asha": "ASHA", "syne-bohb": "BOHB", "syne-ashabore": "ASHABORE"}


def simulate_syne(method_name, curves, space, workers, seed, horizon, args, search_time=True):
    """One sweep of a Syne Tune baseline in Syne Tune's simulator, as bench/simulate.py's ``Run``:
    the times (simulated seconds from the start) at which the best val_mse improved, the trials
    started and the epochs reported before ``horizon``."""
    from syne_tune import StoppingCriterion, Tuner
    from syne_tune.backend.simulator_backend.simulator_backend import SimulatorConfig
    from syne_tune.backend.simulator_backend.simulator_callback import SimulatorCallback
    from syne_tune.backend.simulator_backend.time_keeper import SimulatedTimeKeeper
    from syne_tune.blackbox_repository import UserBlackboxBackend
    from syne_tune.constants import ST_TUNER_TIME
    from syne_tune.optimizer import baselines

    # syne-tune 0.16.0's RandomSearcher ignores its random_seed (sample_random_config draws
    # from numpy's global generator once the searcher has results): seeded here
    np.random.seed(seed)
    # a warning per trial that points_to_evaluate is None (it is: nothing is tried first)
    logging.getLogger("syne_tune").setLevel(logging.ERROR)
    blackbox = blackbox_of(curves, getattr(args, "syne_surrogate", "nearest"))
    backend = UserBlackboxBackend(
        blackbox=blackbox,
        elapsed_time_attr="elapsed_time",
        seed=0,  # the blackbox's one seed
        # a trial's start costs what Ray's default pays (--costs; a new process, like a new
        # actor); the later epochs' measured extra is not charged here (Syne Tune's delays
        # shift when a result arrives, not when the next epoch starts)
        simulator_config=SimulatorConfig(0, 0, 0, sum(sim.overheads(method_name, args)[:2]), 0),
        tuner_sleep_time=SYNE_SLEEP_S,
    )
    if not search_time:

        class NoOutsideTime(SimulatedTimeKeeper):
            def real_time_since_last_recent_exit(self) -> float:
                return 0.0

        backend._time_keeper = NoOutsideTime()
    scheduler = getattr(baselines, SYNE_SCHEDULERS[method_name])(
        config_space=blackbox.configuration_space,
        metric="val_mse",
        do_minimize=True,
        time_attr="epoch",
        max_t=curves.max_epochs,
        grace_period=args.grace_period,
        reduction_factor=args.reduction_factor,
        random_seed=seed,
    )

    class Callback(SimulatorCallback):
        """Syne Tune's, and when each trial started on the simulated clock."""

        def __init__(self):
            super().__init__()
            self.started: list[float] = []

        def on_start_trial(self, trial) -> None:
            super().on_start_trial(trial)
            self.started.append(self._time_keeper.time())

    callback = Callback()
    folder = tempfile.mkdtemp(prefix="sim-syne-")
    old = os.environ.get("SYNETUNE_FOLDER")
    os.environ["SYNETUNE_FOLDER"] = folder
    try:
        tuner = Tuner(
            trial_backend=backend,
            scheduler=scheduler,
            stop_criterion=StoppingCriterion(max_wallclock_time=horizon),
            n_workers=workers,
            sleep_time=0,
            callbacks=[callback],
            save_tuner=False,
            tuner_name=f"{method_name}-{seed}",
        )
        with contextlib.redirect_stdout(io.StringIO()):
            tuner.run()
    finally:
        if old is None:
            del os.environ["SYNETUNE_FOLDER"]
        else:
            os.environ["SYNETUNE_FOLDER"] = old
        shutil.rmtree(folder, ignore_errors=True)
    rows = callback.dataframe()
    rows = rows[rows[ST_TUNER_TIME] <= horizon].sort_values(ST_TUNER_TIME, kind="stable")
    run = sim.Run(method_name, seed)
    run.trials = sum(1 for t in callback.started if t <= horizon)
    run.epochs = len(rows)
    best = math.inf
    for t, value in zip(rows[ST_TUNER_TIME], rows["val_mse"], strict=True):
        if value < best:
            best = float(value)
            run.times.append(float(t))
            run.best.append(best)
    return run
