"""Population Based Training (``--scheduler pbt``): a random population whose poor trials clone
good ones' checkpoints and perturb their hyperparameters. Optuna has no part in it (Ray's PBT
refuses a searcher), so there is no study. Its parts of our own are in ``sweeps/search/population.py`` and
``sweeps/search/schedulers.py``."""

from __future__ import annotations

from typing import Any

from ray.air.constants import TRAINING_ITERATION
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import BasicVariantGenerator, SearchAlgorithm

from sweeps.folder.layout import STUDY_FILE
from sweeps.folder.record import describe_perturbations
from sweeps.request.search_space import trial_perturbations
from sweeps.request.settings import Settings, SweepSpec
from sweeps.search.population import KeepInBounds, PBTCheckpointPruner
from sweeps.search.schedulers import PopulationBasedTrainingToMaxEpochs
from sweeps.search.strategy import Need, Strategy


class PBT(Strategy):
    name = "pbt"
    label = "PBT"  # how messages and sweep.json name it (``sweeps/search/pb2.py`` subclasses)
    uses_study = False

    def check(self, spec: SweepSpec, settings: Settings, need: Need) -> None:
        """A perturbation space, a population, an interval the trials reach, no study."""
        s = settings
        need(
            s.space in spec.perturbations,
            f"--scheduler {self.name}: {spec.script} has no perturbation space for --space "
            f"{s.space}",
            f"use --scheduler asha, or add PERTURBATIONS[{s.space!r}] beside SPACES in "
            f"{spec.script}"
            if spec.perturbations
            else "use --scheduler asha (this sweep has no PERTURBATIONS)",
        )
        need(
            s.warm_start_from is None,
            f"--warm-start-from with --scheduler {self.name}: {self.label} has no model of "
            "earlier trials to give them to",
            "use --scheduler asha, or --warm-start NAME to put a configuration in the population",
        )
        need(
            s.num_samples >= 2,
            f"--scheduler {self.name} with --num-samples {s.num_samples}: a population of one "
            "has no trial to clone",
            "pass --num-samples 4 or more",
        )
        need(
            1 <= s.perturbation_interval < s.max_epochs,
            f"--perturbation-interval {s.perturbation_interval} must be between 1 and "
            f"--max-epochs {s.max_epochs} - 1 ({self.label} decides every N epochs of a trial, "
            "so N >= --max-epochs never perturbs)",
            "lower --perturbation-interval or raise --max-epochs",
        )
        need(
            0 < s.quantile_fraction <= 0.5,
            f"--quantile-fraction {s.quantile_fraction:g} must be above 0 and at most 0.5",
            "pass e.g. --quantile-fraction 0.25 (the bottom quarter clones the top quarter)",
        )
        need(
            s.study_storage is None,
            f"--study-storage with --scheduler {self.name}: {self.label} keeps no Optuna study",
            "omit --study-storage, or use --scheduler asha",
        )
        need(
            s.report_every == 1,
            f"--report-every {s.report_every} with --scheduler {self.name}: {self.label} clones "
            "and counts trials by the reports of every epoch",
            "omit --report-every, or use --scheduler asha",
        )

    def perturbations(
        self, spec: SweepSpec, settings: Settings, module, space: dict[str, Any]
    ) -> dict[str, Any]:
        return trial_perturbations(spec, settings, module, space)

    def searcher(self, settings: Settings, study_storage, warm) -> SearchAlgorithm:
        """The initial population, --warm-start's configuration and then sampled at random
        from the space by Ray's ``BasicVariantGenerator``, seeded with --seed (PBT makes the
        later configs itself)."""
        return BasicVariantGenerator(
            points_to_evaluate=warm.points or None,
            max_concurrent=settings.max_concurrent,
            random_state=settings.seed,
        )

    def scheduler(self, settings: Settings, perturbations: dict[str, Any]) -> TrialScheduler:
        """Ray's PBT over epochs, a trial checked every --perturbation-interval epochs but not
        at --max-epochs, perturbed values kept inside the script's bounds."""
        return PopulationBasedTrainingToMaxEpochs(
            **self.population_settings(settings, perturbations),
            hyperparam_mutations=dict(perturbations),
        )

    def population_settings(self, settings: Settings, perturbations: dict[str, Any]) -> dict:
        """What PBT and PB2 (``sweeps/search/pb2.py``) set alike: the budget, the decision
        interval and quantile, values kept in bounds, Ray's PBT logs."""
        return dict(
            max_t=settings.max_epochs,
            time_attr=TRAINING_ITERATION,
            perturbation_interval=settings.perturbation_interval,
            quantile_fraction=settings.quantile_fraction,
            synch=settings.synch,
            custom_explore_fn=KeepInBounds(perturbations),
            log_config=True,  # pbt_global.txt and pbt_policy_<trial>.txt in the experiment
        )

    def checkpoint_pruner(self, spec: SweepSpec, settings: Settings) -> PBTCheckpointPruner:
        return PBTCheckpointPruner(
            spec.metric, spec.mode, settings.perturbation_interval, keep=settings.keep_checkpoints
        )

    def record(self, settings: Settings, perturbations: dict[str, Any]) -> dict[str, Any]:
        return {
            "scheduler": {
                "name": self.label,
                "time_attr": TRAINING_ITERATION,
                "perturbation_interval": settings.perturbation_interval,
                "quantile_fraction": settings.quantile_fraction,
                "synch": settings.synch,
                "perturbations": describe_perturbations(perturbations),
            },
            "searcher": {"name": "random (Ray's BasicVariantGenerator)", "seed": settings.seed},
        }

    def start_note(self, spec: SweepSpec, settings: Settings) -> str:
        return (
            "--scheduler pbt: Optuna has no part in Population Based Training; "
            f"{settings.num_samples} trials sampled at random (seed {settings.seed}), no "
            f"{STUDY_FILE}"
        )

    def decision_period(self, settings: Settings) -> int:
        return settings.perturbation_interval

    def decision_epochs(self, settings: Settings) -> tuple[int, ...]:
        interval = settings.perturbation_interval
        return tuple(range(interval, settings.max_epochs + 1, interval))

    def trial_epochs(self, reported: dict[str, int], last_iteration: dict[str, int]) -> int:
        # a cloned trial's last iteration counts its donor's epochs too: count what each trial
        # reported itself (its epochs redone after an exploit too)
        return sum(reported.values())

    def summary_part(self, summary: dict[str, Any]) -> str:
        return f"{summary['exploits']} PBT exploits"
