"""The searcher: Ray Tune's ``OptunaSearch`` (TPE, seeded, on an RDB study) made to tell the
Optuna study each trial's real state, and kept in step with Tune across restores.

The ASHA strategy (``sweeps/search/asha.py``) builds it, behind Tune's ``ConcurrencyLimiter``.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.air.constants import TRAINING_ITERATION
from ray.tune.search.optuna import OptunaSearch

from sweeps.cluster import private_api
from sweeps.folder import old_folders
from sweeps.folder.outcome import (
    DIVERGED,
    EPOCH_VALUES_ATTR,
    ERROR,
    epoch_values,
    is_finite_number,
)

logger = logging.getLogger(__name__)


# The samplers --searcher names, each made from the sweep's --seed. "tpe" is Optuna's TPE with
# its (5.0) defaults, what Ray's OptunaSearch makes: multivariate, the running trials counted as
# bad ones (constant liar, so parallel suggestions spread out), 10 random trials first.
# "tpe-independent" is TPE one dimension at a time without the liar (Optuna 4's defaults);
# "tpe-5" starts modelling after 5 random trials; "random" samples the space uniformly.
SAMPLERS: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed),
    "tpe-independent": lambda seed: optuna.samplers.TPESampler(
        seed=seed, multivariate=False, constant_liar=False
    ),
    "tpe-5": lambda seed: optuna.samplers.TPESampler(seed=seed, n_startup_trials=5),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
}


Metric = str | list[str]  # one metric, or --objectives' metrics (a multi-objective study)


def _step(result: dict) -> int | None:
    return int(result[TRAINING_ITERATION]) if TRAINING_ITERATION in result else None


def _value(result: dict, metric: Metric) -> float | list[float] | None:
    """The result's finite value of ``metric`` (a list of them for several), else None."""
    if isinstance(metric, list):
        values = [result.get(m) for m in metric]
        return [float(v) for v in values] if all(map(is_finite_number, values)) else None
    value = result.get(metric)
    return float(value) if is_finite_number(value) else None


def report_epoch(trial: optuna.Trial, value: float | list[float], step: int) -> None:
    """Keep one epoch's value(s) in the live trial (raises UpdateFinishedTrialError once it
    has finished, as ``Trial.report`` does)."""
    if isinstance(value, list):
        held = dict(trial.user_attrs.get(EPOCH_VALUES_ATTR, {}))
        held[str(step)] = value
        trial.set_user_attr(EPOCH_VALUES_ATTR, held)
        return
    with warnings.catch_warnings():  # the final result repeats the last step: ignored
        warnings.filterwarnings("ignore", message=".*is already reported")
        trial.report(value, step)


def _identity(result: dict, metric: Metric) -> tuple:
    """What tells one Tune result from another of the same epoch: the epoch, the counters Tune
    adds to every result (a restored trial restarts ``iterations_since_restore``; its
    ``time_total_s``, a sum of measured times, goes on from its checkpoint's) and the metric.
    Tune's final result of a trial is the trial's last result again: the same identity."""
    value = _value(result, metric)  # None for NaN: NaN != NaN
    return (
        _step(result),
        result.get("iterations_since_restore"),
        result.get("time_total_s"),
        tuple(value) if isinstance(value, list) else value,
    )


def tell_ended(
    study: optuna.Study,
    ot_trial: optuna.Trial | optuna.trial.FrozenTrial,
    result: dict,
    metric: Metric,
    max_epochs: int,
    error: bool = False,
) -> TrialState:
    """Tell ``study`` how a trial ended, from its final ``result``: FAIL if it errored, diverged
    or its metric is missing, NaN or inf (user attribute ``fail_reason`` says which), PRUNED if
    it stopped before ``max_epochs`` (Optuna takes its last intermediate value; a
    multi-objective trial is given its last values), else COMPLETE with the metric (``metric``
    a list: the values of each). Returns the state told."""
    values = _value(result, metric)
    if error or values is None:
        names = metric if isinstance(metric, list) else [metric]
        # the first metric missing or not finite (an errored trial's may all be finite)
        bad = next((m for m in names if not is_finite_number(result.get(m))), names[0])
        value = result.get(bad)
        state, values = TrialState.FAIL, None
        reason = (
            "the trial errored"
            if error
            else str(result.get(ERROR) or "the trial diverged")
            if result.get(DIVERGED)
            else f"no {bad} reported"
            if value is None
            else f"{bad}={value!r} is not a finite number"
        )
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            if isinstance(ot_trial, optuna.trial.FrozenTrial):
                private_api.set_frozen_trial_user_attr(study, ot_trial, "fail_reason", reason)
            else:
                ot_trial.set_user_attr("fail_reason", reason)
    elif int(result.get(TRAINING_ITERATION, 0)) < max_epochs:
        if isinstance(values, list):  # Study.tell would drop them: written as Optuna would
            frozen = study.get_trials(deepcopy=False)[ot_trial.number]
            if not frozen.state.is_finished():
                private_api.set_frozen_trial_state_values(study, frozen, TrialState.PRUNED, values)
            return TrialState.PRUNED
        state, values = TrialState.PRUNED, None
    else:
        state = TrialState.COMPLETE
    told = ot_trial.number if isinstance(ot_trial, optuna.trial.FrozenTrial) else ot_trial
    study.tell(told, values, state=state, skip_if_finished=True)
    return state


def tell_stopped_by_budget(study: optuna.Study, trials, metric: Metric, max_epochs: int) -> int:
    """Tune's time budget (``TuneConfig.time_budget_s``, --time-budget) stops the trials still
    running without telling the searcher (``TuneController._stop_experiment_if_needed``), so
    their Optuna trials would stay RUNNING: tell each as ``on_trial_complete`` would have, from
    the Tune trial's last result (``trials``: Tune's, e.g. ``ExperimentAnalysis.trials``).
    Returns how many were told."""
    last = {t.trial_id: t.last_result or {} for t in trials}
    told = 0
    for ft in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        result = last.get(ft.user_attrs.get("trial_id"))
        if result is not None:
            tell_ended(study, ft, result, metric, max_epochs)
            told += 1
    return told


class TrialStateOptunaSearch(OptunaSearch):
    """Ray's OptunaSearch, but the study says what the scheduler did.

    Ray's own searcher tells Optuna COMPLETE for a trial ASHA stopped early, so the study (and
    TPE) cannot tell a pruned trial from a finished one. Here every epoch's metric is reported
    as an intermediate value (step = training_iteration), and at the end the trial is told
    PRUNED if it stopped before ``max_epochs`` (Optuna then takes its last intermediate value),
    FAIL if it errored, diverged or its metric is NaN/inf (user attribute ``fail_reason`` says
    which; a diverged trial's is its error), COMPLETE otherwise. The Tune trial id is kept as
    the Optuna trial's user attribute ``trial_id``.

    The state (the study, the sampler, the trial map) is pickled into the experiment folder by
    Tune and restored by ``Tuner.restore``. A restore then (a) fails Optuna trials the driver
    asked for after Tune's last snapshot, which no Tune trial will ever report to, and (b) when
    an errored trial is resumed (``resume_errored``), re-opens it as a new Optuna trial with the
    same parameters and its earlier intermediate values (Optuna's own retry convention), since
    a finished Optuna trial cannot change state.

    ``first`` (--warm-start) are configurations the study is given to try before TPE samples:
    enqueued once (``Study.enqueue_trial``), so a restore does not enqueue them again. ``known``
    (--warm-start-from) are an earlier sweep's trials, added to the study before the first
    suggestion (``Study.add_trials``; user attribute ``warm_start_from``) so TPE models them.

    A trial can also be *rewound*: Tune restarts it from an older checkpoint than its last
    reported epoch (the driver was killed after the trial reported epochs Tune's snapshot does
    not hold, or a worker died between a report and its checkpoint). The epochs after that
    checkpoint are run again and may give other values (on a GPU without deterministic kernels
    they do), so the Optuna trial that holds the lost run's values is told FAIL
    (``fail_reason`` says so; if it already finished it stays as it is) and a new one
    (``retry_of``) continues with the values up to the checkpoint. A rewind is seen from the
    epochs alone, whatever the values: a result for an epoch Optuna already holds for that
    trial, other than the very result Tune last handed over (its final result repeats it).

    ``objectives`` (--objectives: (metric, mode) pairs) makes the study multi-objective (Ray's
    OptunaSearch with a list of metrics; Tune's one metric, the first, does not replace them).
    Optuna keeps one intermediate value per step, so such a trial's values at each epoch are
    its user attribute ``EPOCH_VALUES_ATTR``, and a PRUNED one is given its last values.

    Ray's OptunaSearch keeps its state in private attributes; they are read through
    ``sweeps/cluster/private_api.py``.
    """

    def __init__(
        self,
        *,
        max_epochs: int,
        first: list[dict] = (),
        known: list[optuna.trial.FrozenTrial] = (),
        objectives: tuple[tuple[str, str], ...] = (),
        **kwargs: Any,
    ):
        if objectives:
            kwargs["metric"] = [metric for metric, _ in objectives]
            kwargs["mode"] = [mode for _, mode in objectives]
        super().__init__(**kwargs)
        self.max_epochs = max_epochs
        # --warm-start's configurations, enqueued in the study before the first suggestion.
        # Not Ray's points_to_evaluate: Ray enqueues those each time it sets the study up, a
        # resume included, so a resumed or grown sweep would run them again.
        self._first = [dict(point) for point in first]
        self._known = list(known)  # --warm-start-from's trials, added to an empty study
        self._told: dict[str, TrialState] = {}
        self._last: dict[str, tuple[int, float]] = {}  # the last (step, value) Optuna holds
        self._seen: dict[str, tuple] = {}  # _identity of the last result on_trial_result got
        for get in (private_api.searcher_trials, private_api.searcher_completed):
            get(self)

    # Ray's OptunaSearch state (private names, looked up in one place)
    @property
    def _trials(self) -> dict[str, optuna.Trial]:
        return private_api.searcher_trials(self)

    @property
    def _completed(self) -> set[str]:
        return private_api.searcher_completed(self)

    @property
    def _study(self) -> optuna.Study:
        return private_api.searcher_study(self)

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        if isinstance(self._metric, list):  # --objectives: Tune's one metric is the first
            metric = mode = None
        return super().set_search_properties(metric, mode, config, **spec)

    def _one_hold(self) -> contextlib.AbstractContextManager:
        """The study's writes in one searcher call under one hold of its file's lock, where the
        study is the sweep's journal (``SweepJournalStorage.held``; other storages lock as
        Optuna does)."""
        study = self._study
        held = getattr(private_api.study_storage(study), "held", None) if study else None
        return held() if held else contextlib.nullcontext()

    def suggest(self, trial_id: str) -> dict | None:
        with self._one_hold():
            return self._suggest(trial_id)

    def _suggest(self, trial_id: str) -> dict | None:
        if self._known and not self._study.get_trials(deepcopy=False):  # a new sweep only
            self._study.add_trials(self._known)
        for point in self._first:  # once: a study that holds them already skips them
            self._study.enqueue_trial(point, skip_if_exists=True)
        self._first, self._known = [], []
        config = super().suggest(trial_id)
        if trial_id in self._trials:
            self._trials[trial_id].set_user_attr("trial_id", trial_id)
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        with self._one_hold():
            self._on_result(trial_id, result)

    def _on_result(self, trial_id: str, result: dict) -> None:
        ot_trial = self._trials.get(trial_id)
        if ot_trial is None:
            return
        if trial_id in self._completed:
            if self._told.get(trial_id) != TrialState.FAIL:
                return
            ot_trial = self._reopen(trial_id, _step(result))
        elif self._rewound(trial_id, result):
            ot_trial = self._reopen(trial_id, _step(result), rewound=True)
        try:
            self._report(trial_id, ot_trial, result)
        except optuna.exceptions.UpdateFinishedTrialError:
            # Failed earlier; or finished after Tune's last snapshot (the driver was killed) and
            # Tune runs it again from a checkpoint that holds every epoch Optuna has.
            self._report(trial_id, self._reopen(trial_id, _step(result)), result)
        self._seen[trial_id] = _identity(result, self.metric)

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        with self._one_hold():
            self._on_complete(trial_id, result, error)

    def _on_complete(self, trial_id: str, result: dict | None, error: bool) -> None:
        ot_trial = self._trials.get(trial_id)
        if ot_trial is None or trial_id in self._completed:
            return
        result = result or {}
        if self._rewound(trial_id, result):
            ot_trial = self._reopen(trial_id, _step(result), rewound=True)
        # Tune does not pass the result that made the scheduler stop a trial to on_trial_result
        # (after a normal end, Optuna already has this step and ignores it).
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            self._report(trial_id, ot_trial, result)
        state = tell_ended(self._study, ot_trial, result, self.metric, self.max_epochs, error)
        self._told[trial_id] = state
        self._completed.add(trial_id)

    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        old_folders.searcher_state(self)
        try:
            self._fail_orphans()
            self._sync_last_steps()
        except Exception:  # Tune would answer any error here by silently starting afresh
            logger.warning("could not reconcile the Optuna study with Tune's", exc_info=True)

    def _sync_last_steps(self) -> None:
        """The pickled state is as old as Tune's snapshot; the study may hold later epochs."""
        self._last = {}
        trials = self._study.get_trials(deepcopy=False)
        for trial_id, ot_trial in self._trials.items():
            values = epoch_values(trials[ot_trial.number])
            if trial_id not in self._completed and values:
                self._last[trial_id] = max(values.items())

    def _rewound(self, trial_id: str, result: dict) -> bool:
        """Whether this result is for an epoch Optuna already holds for the trial, whatever its
        value: Tune ran the trial again from an older checkpoint. The one result that may repeat
        an epoch without a rewind is the trial's last result handed over again (Tune's final
        result, passed to on_trial_complete after on_trial_result had it)."""
        step = _step(result)
        if trial_id not in self._last or step is None or step > self._last[trial_id][0]:
            return False
        return _identity(result, self.metric) != self._seen.get(trial_id)

    def _fail_orphans(self) -> None:
        known = {t.number for t in self._trials.values()}
        for orphan in self._study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if orphan.number not in known:
                private_api.set_frozen_trial_user_attr(
                    self._study,
                    orphan,
                    "fail_reason",
                    "asked for after Ray Tune's last snapshot; the resumed sweep re-sampled it",
                )
                self._study.tell(orphan.number, state=TrialState.FAIL, skip_if_finished=True)

    def _report(self, trial_id: str, ot_trial: optuna.Trial, result: dict) -> None:
        value, step = _value(result, self.metric), _step(result)
        if value is not None and step is not None:
            report_epoch(ot_trial, value, step)
            if step >= self._last.get(trial_id, (0, 0.0))[0]:
                self._last[trial_id] = (step, value)

    def _reopen(self, trial_id: str, step: int | None, rewound: bool = False) -> optuna.Trial:
        """A new Optuna trial for a Tune trial that runs again from epoch ``step`` (a failed
        trial resumed, or a rewound one), holding the earlier trial's values before ``step``."""
        old = self._study.get_trials(deepcopy=False)[self._trials[trial_id].number]
        held = epoch_values(old)
        if rewound and not old.state.is_finished():
            last = max(held, default=0)
            private_api.set_frozen_trial_user_attr(
                self._study,
                old,
                "fail_reason",
                f"rewound: Ray Tune ran epoch {step} again after this trial had reported epoch "
                f"{last} (restored from an older checkpoint); the retry holds the new values",
            )
            self._study.tell(old.number, state=TrialState.FAIL, skip_if_finished=True)
        self._study.enqueue_trial(
            old.params, user_attrs={"trial_id": trial_id, "retry_of": old.number}
        )
        new = self._study.ask(fixed_distributions=private_api.searcher_space(self))
        self._last.pop(trial_id, None)
        for s, value in sorted(held.items()):
            if step is None or s < step:
                report_epoch(new, value, s)
                self._last[trial_id] = (s, value)
        self._trials[trial_id] = new
        self._completed.discard(trial_id)
        self._told.pop(trial_id, None)
        return new
