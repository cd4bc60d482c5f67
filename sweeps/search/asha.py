"""The default strategy: Optuna's TPE proposes trials (``sweeps/search/searcher.py``), ASHA stops the
poor ones early, revising unless ``--no-asha-revise`` (``sweeps/search/schedulers.py``)."""

from __future__ import annotations

import math
from typing import Any

from ray.air.constants import TRAINING_ITERATION
from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.search import ConcurrencyLimiter, SearchAlgorithm

from sweeps.request.settings import Settings
from sweeps.search.schedulers import RevisingASHAScheduler, rung_milestones
from sweeps.search.searcher import SAMPLERS, TrialStateOptunaSearch
from sweeps.search.strategy import Strategy


class ASHA(Strategy):
    name = "asha"
    uses_study = True

    def searcher(self, settings: Settings, study_storage, warm) -> SearchAlgorithm:
        """--searcher's sampler (TPE) seeded with --seed, on the study named like the experiment, at most
        --max-concurrent trials at once; ``warm`` given to the study before it samples."""
        searcher = TrialStateOptunaSearch(
            first=warm.points,
            known=warm.trials,
            max_epochs=settings.max_epochs,
            study_name=settings.name,
            storage=study_storage,
            objectives=settings.objective_pairs,  # (): one metric, Tune's
            sampler=SAMPLERS[settings.searcher](settings.seed),
        )
        return ConcurrencyLimiter(searcher, max_concurrent=settings.max_concurrent)

    def scheduler(self, settings: Settings, perturbations: dict[str, Any]) -> TrialScheduler:
        """ASHA on the sweep's metric (with --objectives: the first alone)."""
        return (RevisingASHAScheduler if settings.asha_revise else ASHAScheduler)(
            time_attr=TRAINING_ITERATION,
            max_t=settings.max_epochs,
            grace_period=settings.grace_period,
            reduction_factor=settings.reduction_factor,
        )

    def record(self, settings: Settings, perturbations: dict[str, Any]) -> dict[str, Any]:
        return {
            "scheduler": {
                "name": "ASHA, revising" if settings.asha_revise else "ASHA",
                "time_attr": TRAINING_ITERATION,
                "grace_period": settings.grace_period,
                "reduction_factor": settings.reduction_factor,
            },
            "searcher": {
                "name": settings.searcher,
                "objectives": [list(pair) for pair in settings.objective_pairs],
                "sampler": type(SAMPLERS[settings.searcher](settings.seed)).__name__,
                "seed": settings.seed,
            },
        }

    def decision_epochs(self, settings: Settings) -> tuple[int, ...]:
        """ASHA's rungs: a trial reaching one (a non-integer rung: the epoch after it) is
        judged."""
        rungs = rung_milestones(
            settings.max_epochs, settings.grace_period, settings.reduction_factor
        )
        return tuple(sorted({math.ceil(m) for m in rungs}))

    def decision_period(self, settings: Settings) -> int:
        # ASHA's rungs are at grace period x reduction factor^k epochs: multiples of the grace
        return settings.grace_period
