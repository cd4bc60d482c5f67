"""Our own trial schedulers: ``RevisingASHAScheduler``, the default, which judges a trial again
at the rungs it has passed as more trials reach them, and Ray's Population Based Training
without a check at a trial's last epoch. ``sweeps/strategies/`` builds them from the settings."""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import ASHAScheduler, PopulationBasedTraining, TrialScheduler


class RevisingASHAScheduler(ASHAScheduler):
    """Ray's ASHA, but a trial is judged at each of its rungs as if it had arrived there last.

    Ray's asynchronous ASHA decides once, when a trial reaches a rung, against the results
    already there, so the first trials to reach a rung pass unopposed. Here a trial that reports
    again after passing a rung is checked against that rung as it is now (Ray's cutoff, the
    1 - 1/rf quantile of the other trials' values) and stopped if it would not pass, so decisions
    depend less on arrival order (what that saves: BENCHMARKS.md, ``bench/asha_economy.py``).
    ``--no-asha-revise`` gives Ray's ASHA.
    """

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        action = super().on_trial_result(tune_controller, trial, result)
        if action != TrialScheduler.CONTINUE or self._metric not in result:
            return action
        bracket = self._trial_info[trial.trial_id]  # super() has looked it up too
        for _, recorded in bracket._rungs:
            mine = recorded.get(trial.trial_id)
            if mine is None:
                continue
            cutoff = bracket.cutoff({k: v for k, v in recorded.items() if k != trial.trial_id})
            if cutoff is not None and mine < cutoff:  # NaN compares False: never revised
                self._num_stopped += 1
                return TrialScheduler.STOP
        return action


class PopulationBasedTrainingToMaxEpochs(PopulationBasedTraining):
    """Ray's Population Based Training, but a trial's last epoch (--max-epochs) is no check.

    Ray's PBT checks every result, the last too: a trial cloned from a donor's final checkpoint
    would restart with no epoch left to train, and a trial checked at its last epoch could be
    sent back to train past the budget. A stopper at the last epoch would avoid both but would
    also keep that result from the searcher; here only PBT passes it by.
    """

    def __init__(self, *, max_t: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._max_t = int(max_t)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if result.get(self._time_attr, 0) >= self._max_t:
            return TrialScheduler.CONTINUE  # the trial ends here: nothing to exploit or explore
        return super().on_trial_result(tune_controller, trial, result)
