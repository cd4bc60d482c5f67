"""Several objectives stopped early together (``--scheduler mo-asha`` with ``--objectives``):
Optuna's multi-objective TPE proposes trials, as the ASHA strategy's searcher does with
--objectives, and MO-ASHA stops those that fall behind by non-dominated sorting at each rung
(``NonDominatedASHAScheduler``, ``sweeps/search/schedulers.py``)."""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import TrialScheduler

from sweeps.request.settings import Settings, SweepSpec
from sweeps.search.asha import ASHA
from sweeps.search.schedulers import NonDominatedASHAScheduler
from sweeps.search.strategy import Need


class MOASHA(ASHA):
    name = "mo-asha"

    def check(self, spec: SweepSpec, settings: Settings, need: Need) -> None:
        need(
            bool(settings.objectives),
            "--scheduler mo-asha ranks trials by several metrics, but --objectives is not given",
            f"pass e.g. --objectives {spec.metric}:{spec.mode},{spec.costs[0]}:min",
        )

    def scheduler(self, settings: Settings, perturbations: dict[str, Any]) -> TrialScheduler:
        return NonDominatedASHAScheduler(
            objectives=settings.objective_pairs,
            max_t=settings.max_epochs,
            grace_period=settings.grace_period,
            reduction_factor=settings.reduction_factor,
            revise=settings.asha_revise,
        )

    def record(self, settings: Settings, perturbations: dict[str, Any]) -> dict[str, Any]:
        described = super().record(settings, perturbations)
        described["scheduler"]["name"] = "MO-ASHA" + (", revising" if settings.asha_revise else "")
        described["scheduler"]["objectives"] = [list(p) for p in settings.objective_pairs]
        return described
