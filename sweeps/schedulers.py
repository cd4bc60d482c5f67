"""The trial schedulers a sweep can use: ASHA as Ray has it, ``RevisingASHAScheduler``, this
project's default, which judges a trial again at the rungs it has passed as more trials reach
them, and Ray's Population Based Training (``--scheduler pbt``; its parts of our own are in
``sweeps/pbt.py``). ``build_scheduler`` picks one from the settings."""

from __future__ import annotations

from typing import Any

from ray.air.constants import TRAINING_ITERATION
from ray.tune.schedulers import ASHAScheduler, PopulationBasedTraining, TrialScheduler

from sweeps.pbt import KeepInBounds
from sweeps.settings import Settings


class RevisingASHAScheduler(ASHAScheduler):
    """Ray's ASHA, but a trial is judged at each of its rungs as if it had arrived there last.

    Ray's asynchronous ASHA decides once, when a trial reaches a rung, against the results
    already there; the first trials to reach a rung are compared with nothing and go on, so a
    sweep whose first trials are bad runs them to the end (61% of the epochs of a 20-trial sweep
    in ``bench/asha_economy.py``, whose first four trials were its worst). Here a trial that
    reports again after passing a rung is checked against that rung's results as they are now
    (the other trials' values, Ray's cutoff: the 1 - 1/rf quantile), and stopped if it would
    not pass. Decisions depend less on arrival order (a trial can only be revised by results
    that have arrived: in that benchmark's order it still spent 45%, against a median of 20% over
    random orders), at the cost of the epochs a trial ran before it was revised.
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

    Ray's asynchronous PBT checks every result, the last too. A donor checked at its last epoch
    offers its final checkpoint, and a trial cloned from it restarts with no epoch left to train:
    it ends at the epoch it had reached, its table rows short of --max-epochs (a race the PBT
    smoke test lost once). And a trial checked at its last epoch would be sent back to train
    epochs again past the budget. Ray's own PBT examples avoid both with a stopper at the last
    iteration, which also keeps that result from the searcher; here only PBT passes it by.
    """

    def __init__(self, *, max_t: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._max_t = int(max_t)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if result.get(self._time_attr, 0) >= self._max_t:
            return TrialScheduler.CONTINUE  # the trial ends here: nothing to exploit or explore
        return super().on_trial_result(tune_controller, trial, result)


def build_scheduler(
    settings: Settings, perturbations: dict[str, Any] | None = None
) -> TrialScheduler:
    """Over epochs (``training_iteration``): with --scheduler pbt, Ray's Population Based
    Training over ``perturbations`` (``search_space.trial_perturbations``), a trial checked every
    --perturbation-interval epochs but not at --max-epochs; else ASHA, revising unless
    --no-asha-revise."""
    if settings.scheduler == "pbt":
        return PopulationBasedTrainingToMaxEpochs(
            max_t=settings.max_epochs,
            time_attr=TRAINING_ITERATION,
            perturbation_interval=settings.perturbation_interval,
            quantile_fraction=settings.quantile_fraction,
            hyperparam_mutations=dict(perturbations or {}),
            custom_explore_fn=KeepInBounds(perturbations or {}),
            log_config=True,  # pbt_global.txt and pbt_policy_<trial>.txt in the experiment
        )
    return (RevisingASHAScheduler if settings.asha_revise else ASHAScheduler)(
        time_attr=TRAINING_ITERATION,
        max_t=settings.max_epochs,
        grace_period=settings.grace_period,
        reduction_factor=settings.reduction_factor,
    )
