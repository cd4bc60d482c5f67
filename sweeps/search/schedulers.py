"""Our own trial schedulers: ``RevisingASHAScheduler``, the default, which judges a trial again
at the rungs it has passed as more trials reach them, and Ray's Population Based Training
without a check at a trial's last epoch. ``sweeps/search/`` builds them from the settings."""

from __future__ import annotations

from typing import Any

import numpy as np
from ray.tune.schedulers import FIFOScheduler, PopulationBasedTraining, TrialScheduler

from sweeps.cluster import private_api
from sweeps.folder import old_folders, outcome


def rung_milestones(max_t: int, grace_period: int, reduction_factor: float) -> list[float]:
    """ASHA's rungs, lowest first: grace period x reduction factor^k below max_t (Ray's
    ``ASHAScheduler`` computes them so too)."""
    count = int(np.log(max_t / grace_period) / np.log(reduction_factor) + 1)
    return [grace_period * reduction_factor**k for k in range(count)]


class RevisingASHAScheduler(FIFOScheduler):
    """Asynchronous successive halving (one bracket, Ray's ASHA decisions: the same rungs, the
    same cutoff), but a trial is judged at each of its rungs as if it had arrived there last.

    Ray's ASHA decides once, when a trial reaches a rung, against the results already there, so
    the first trials to reach a rung pass unopposed. Here a trial that reports again after
    passing a rung is checked against that rung as it is now and stopped if it would not pass,
    so decisions depend less on arrival order (what that saves: BENCHMARKS.md,
    ``bench/asha_economy.py``). ``revise=False`` decides as Ray's ASHA does; the sweep's
    ``--no-asha-revise`` runs Ray's own. Written against Tune's public ``TrialScheduler``
    interface: its state is ``rungs``, ``(milestone, {trial id: signed value})`` from the last
    rung down, a value signed so that higher is better.
    """

    def __init__(
        self,
        time_attr: str = "training_iteration",
        max_t: int = 100,
        grace_period: int = 1,
        reduction_factor: float = 4,
        metric: str | None = None,
        mode: str | None = None,
        revise: bool = True,
    ) -> None:
        super().__init__()
        self.time_attr, self.max_t, self.rf, self.revise = (
            time_attr,
            max_t,
            reduction_factor,
            revise,
        )
        self.rungs = [
            (m, {}) for m in reversed(rung_milestones(max_t, grace_period, reduction_factor))
        ]
        self.num_stopped = 0
        self.mode = None
        self.set_search_properties(metric, mode)
        # trial id -> its place in Tune's list of trials (choose_trial_to_run)
        self._added: dict[str, int] = {}

    def set_search_properties(self, metric: str | None, mode: str | None, **spec) -> bool:
        if (self.metric and metric) or (self.mode and mode):
            return False
        self._metric = metric or self.metric  # what TrialScheduler.metric returns
        self.mode = mode or self.mode
        return True

    def cutoff(self, recorded: dict[str, float]) -> float | None:
        """Ray's: the 1 - 1/rf quantile of a rung's values, NaNs left out."""
        if not recorded:
            return None
        return np.nanpercentile(list(recorded.values()), (1 - 1 / self.rf) * 100)

    def on_trial_add(self, tune_controller, trial) -> None:
        if not self.metric or self.mode not in ("min", "max"):
            raise ValueError(f"{type(self).__name__} needs a metric and a mode (min or max)")
        self._added.setdefault(trial.trial_id, len(self._added))

    def choose_trial_to_run(self, tune_controller):
        """FIFO's choice, the first trial in Tune's list that is PENDING, else the first PAUSED,
        found among the waiting trials (``private_api.waiting_trials``: a few) instead of by a
        scan of every trial. Tune asks at every step of its loop, and at 10,000 trials two scans
        of the list at each step grew the driver's time per trial with the trial count."""
        for waiting in private_api.waiting_trials(tune_controller):
            if waiting:
                return min(waiting, key=lambda t: self._added.get(t.trial_id, len(self._added)))
        return None

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if self.time_attr not in result or self.metric not in result:
            return TrialScheduler.CONTINUE
        if result[self.time_attr] >= self.max_t:
            action = TrialScheduler.STOP
        else:
            action = self._record(trial.trial_id, result)
            if action == TrialScheduler.CONTINUE and self.revise:
                action = self._revised(trial.trial_id)
        self.num_stopped += action == TrialScheduler.STOP
        return action

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        if self.time_attr in result and self.metric in result:
            self._record(trial.trial_id, result)

    def _signed(self, result: dict) -> Any:
        """What a rung records of a result: its value, signed so that higher is better."""
        value = result[self.metric]
        return value if self.mode == "max" else -value

    def _passes(self, others: dict[str, Any], mine: Any) -> bool:
        """Ray's rule: not below the cutoff of the others at the rung (NaN compares False)."""
        cutoff = self.cutoff(others)
        return cutoff is None or not mine < cutoff

    def _record(self, trial_id: str, result: dict) -> str:
        """Ray's rule: at the highest rung this result reaches and the trial has not, stop it if
        it does not pass against the values recorded there, and record its value."""
        t = result[self.time_attr]
        for milestone, recorded in self.rungs:
            if t < milestone or trial_id in recorded:
                continue
            mine = self._signed(result)
            passes = self._passes(recorded, mine)
            recorded[trial_id] = mine
            return TrialScheduler.CONTINUE if passes else TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def _revised(self, trial_id: str) -> str:
        """STOP if the trial would not pass one of its rungs as that rung is now."""
        for _, recorded in self.rungs:
            mine = recorded.get(trial_id)
            if mine is None:
                continue
            if not self._passes({k: v for k, v in recorded.items() if k != trial_id}, mine):
                return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def debug_string(self) -> str:
        cutoffs = " | ".join(f"{m:g}: {self.cutoff(r)}" for m, r in self.rungs)
        return f"Using revising ASHA: num_stopped={self.num_stopped}; rungs {cutoffs}"

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(old_folders.asha_state(state))


class NonDominatedASHAScheduler(RevisingASHAScheduler):
    """MO-ASHA (Schmucker et al., 2021; Syne Tune's ``MOASHA``) on our ASHA's rungs: a trial
    reaching a rung is ranked with the trials recorded there by non-dominated sorting over
    ``objectives`` ((metric, mode) pairs; within a front the more isolated first, NSGA-II's
    crowding distance: ``outcome.pareto_order``), and goes on if its place is in the first
    1/reduction-factor of them (Syne Tune's rule: place / count <= 1/rf). Revising, as ours is
    by default: a trial is ranked again at its passed rungs as more trials reach them.
    Tune's one metric (the first objective) only names the scheduler's; the rungs record every
    objective."""

    def __init__(self, *, objectives: tuple[tuple[str, str], ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.objectives = tuple(objectives)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if any(metric not in result for metric, _ in self.objectives):
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        if all(metric in result for metric, _ in self.objectives):
            super().on_trial_complete(tune_controller, trial, result)

    def _signed(self, result: dict) -> tuple[float, ...] | None:
        """Every objective, signed so that lower is better (``outcome``'s convention); None if
        one is NaN or infinite."""
        return outcome.signed_values(result, self.objectives)

    def _passes(self, others: dict[str, Any], mine: Any) -> bool:
        if mine is None:  # a value that is not finite: not ranked, goes on (Ray's NaN rule)
            return True
        points = [p for p in others.values() if p is not None] + [mine]
        place = outcome.pareto_order(points).index(len(points) - 1)
        return place / len(points) <= 1 / self.rf

    def debug_string(self) -> str:
        counts = " | ".join(f"{m:g}: {len(r)}" for m, r in self.rungs)
        return f"Using MO-ASHA: num_stopped={self.num_stopped}; trials at rungs {counts}"


class NoDecisionAtMaxEpochs:
    """Mixed into Ray's Population Based Training and its subclasses (PB2: ``search/pb2.py``):
    a trial's last epoch (--max-epochs, ``max_t``) is no check.

    Ray's PBT checks every result, the last too: a trial cloned from a donor's final checkpoint
    would restart with no epoch left to train, and a trial checked at its last epoch could be
    sent back to train past the budget. A stopper at the last epoch would avoid both but would
    also keep that result from the searcher; here only the scheduler passes it by. Put it first
    among the bases: ``class X(NoDecisionAtMaxEpochs, PopulationBasedTraining)``.
    """

    def __init__(self, *, max_t: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._max_t = int(max_t)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if result.get(self._time_attr, 0) >= self._max_t:
            return TrialScheduler.CONTINUE  # the trial ends here: nothing to exploit or explore
        return super().on_trial_result(tune_controller, trial, result)


class PopulationBasedTrainingToMaxEpochs(NoDecisionAtMaxEpochs, PopulationBasedTraining):
    """Ray's Population Based Training, but a trial's last epoch (--max-epochs) is no check
    (``NoDecisionAtMaxEpochs``)."""
