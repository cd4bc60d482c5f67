"""What every search strategy provides (``sweeps/search/asha.py`` and ``pbt.py`` are the
examples to copy)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import SearchAlgorithm

from sweeps.fit.checkpoint_pruner import CheckpointPruner
from sweeps.request.settings import Settings, SweepSpec
from sweeps.request.warm_start import WarmStart

Need = Callable[[bool, str, str], None]  # need(ok, problem, fix): a UsageError unless ok


class Strategy:
    name: str  # the value of --scheduler
    uses_study: bool  # an Optuna study proposes the trials and is told how each ended

    def check(self, spec: SweepSpec, settings: Settings, need: Need) -> None:
        """The flag checks this strategy adds to ``sweeps/request/cli.py``'s."""

    def perturbations(
        self, spec: SweepSpec, settings: Settings, module, space: dict[str, Any]
    ) -> dict[str, Any]:
        """What the scheduler may change in a running trial's config ({}: nothing)."""
        return {}

    def searcher(
        self,
        settings: Settings,
        study_storage: optuna.storages.BaseStorage | None,
        warm: WarmStart,
    ) -> SearchAlgorithm:
        """What proposes the trials; ``warm``: configurations to try before any other
        (--warm-start) and an earlier sweep's trials (--warm-start-from)."""
        raise NotImplementedError

    def scheduler(self, settings: Settings, perturbations: dict[str, Any]) -> TrialScheduler:
        raise NotImplementedError

    def checkpoint_pruner(self, spec: SweepSpec, settings: Settings) -> CheckpointPruner:
        return CheckpointPruner(
            spec.metric,
            spec.mode,
            keep=settings.keep_checkpoints,
            objectives=settings.objective_pairs,
            max_epochs=settings.max_epochs,
        )

    def record(self, settings: Settings, perturbations: dict[str, Any]) -> dict[str, Any]:
        """``scheduler`` and ``searcher`` of sweep.json: what analysis reads of the strategy."""
        raise NotImplementedError

    def start_note(self, spec: SweepSpec, settings: Settings) -> str | None:
        """A line the sweep prints before it starts, if the strategy has something to say."""
        return None

    def decision_period(self, settings: Settings) -> int:
        """Epochs between the scheduler's decisions on a trial: what a costly metric (the GAN's
        FID-FM) must be fresh for."""
        raise NotImplementedError

    def decision_epochs(self, settings: Settings) -> tuple[int, ...]:
        """The epochs at which the scheduler decides on a trial: with --report-every, every
        trial reports them whatever its interval says."""
        raise NotImplementedError

    def trial_epochs(self, reported: dict[str, int], last_iteration: dict[str, int]) -> int:
        """The trial-epochs a sweep spent, from each trial's count of reported results and its
        last ``training_iteration``."""
        return sum(last_iteration.values())

    def summary_part(self, summary: dict[str, Any]) -> str:
        """The strategy's own count in the summary line."""
        return f"{summary['stopped_early']} stopped early"
