"""Population Based Bandits (``--scheduler pb2``): PBT (``sweeps/search/pbt.py``) whose explore
step does not multiply a clone's values by 0.8 or 1.2 but picks them with a GP bandit: Ray's
``PB2`` fits a Gaussian process (scikit-learn's, in Ray 2.60; GPy is not needed) to each
interval's change in the metric, given the epoch, the metric before and the hyperparameters,
and takes the values that maximise its upper confidence bound within ``hyperparam_bounds``
(Parker-Holder et al., 2020). The population, the exploit (the bottom --quantile-fraction clones
the top's checkpoints), the flags, the checkpoint rule and the counts are PBT's.

What PB2 bounds, from the script's ``PERTURBATIONS[--space]`` (``trial_perturbations``):

- a ``tune.uniform``/``tune.loguniform`` axis: its [lower, upper] (--lr-range applied);
- a ``tune.randint`` axis: its lowest to its highest value + 1 (Ray casts a proposal to the
  config's type, ``int`` truncates, so each value gets an equal share; the top is clipped);
- a list (batch_size, d_steps): nothing. Ray's PB2 bounds continuous axes only: a list of three
  values is a ValueError deep in Ray, and one of two ([1, 2]) would be read silently as a
  continuous range. As a Ray user leaves a categorical out of ``hyperparam_bounds`` and keeps it
  in the param space, a list axis here keeps the value the trial was sampled with and an exploit
  copies the donor's with its checkpoint: selected by the exploit, never explored. The start
  line and sweep.json (``not_explored``) say which. A space with no continuous axis at all is a
  usage error (``check``): PB2 would have nothing to explore (use --scheduler pbt).

Log axes are explored on a linear scale: Ray's PB2 normalises each bound linearly to [0, 1] and
maximises the GP's bound there, so a learning rate in [1e-4, 1e-3] is proposed below the
geometric middle (3.2e-4) on a quarter of the range, and in [1e-4, 1e-2] below 1e-3 on a tenth.
Bounding log10(lr) instead would take overriding Ray's private record of each trial's values
(``PB2._save_trial_state`` and its ``data`` frame), which a Ray upgrade could change without a
word; it is not done. Narrow a learning rate's bounds (--lr-range) rather than span decades.

A clone is explored with the GP only once the donor has trained one interval with unchanged
values (PB2 learns from the metric's change over an interval): at the first check a clone copies
its donor's values as they are, and so does a clone whose donor was itself cloned at its last
check without being explored. Asynchronously a donor may also be a slower trial that has
reported only once. With --synch (all trials decided together at each interval's end) that last
case goes: a clone is explored unless it is the first check or its donor was copied at the check
before, and two trials explore by the third check at the latest (tests/test_pb2.py).
"""

from __future__ import annotations

import warnings
from typing import Any

from ray.tune.schedulers import TrialScheduler
from ray.tune.schedulers.pb2 import PB2 as RayPB2
from ray.tune.search.sample import Float, Integer
from sklearn.exceptions import ConvergenceWarning

from sweeps.folder.layout import STUDY_FILE
from sweeps.request.search_space import integer_bounds
from sweeps.request.settings import Settings, SweepSpec
from sweeps.search.pbt import PBT
from sweeps.search.schedulers import NoDecisionAtMaxEpochs
from sweeps.search.strategy import Need


class PB2ToMaxEpochs(NoDecisionAtMaxEpochs, RayPB2):
    """Ray's PB2, but a trial's last epoch (--max-epochs) is no check, as for our PBT."""

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        # An explore fits the GP to the few intervals seen so far: scikit-learn warns, on the
        # sweep's console, that a kernel length scale sits at its bound, which is expected then;
        # and SciPy that Ray passes L-BFGS-B an option it deprecates (Ray's to fix).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.filterwarnings("ignore", "scipy.optimize: The `disp`", DeprecationWarning)
            return super().on_trial_result(tune_controller, trial, result)


def pb2_bounds(perturbations: dict[str, Any]) -> dict[str, list[float]]:
    """PB2's ``hyperparam_bounds``: [low, high] of each continuous or integer axis (module
    docstring); a list axis has none."""
    bounds: dict[str, list[float]] = {}
    for key, axis in perturbations.items():
        if isinstance(axis, Float):
            bounds[key] = [axis.lower, axis.upper]
        elif isinstance(axis, Integer):
            low, high = integer_bounds(axis)
            bounds[key] = [low, high + 1]
    return bounds


class PB2(PBT):
    name = "pb2"
    label = "PB2"
    uses_study = False

    def check(self, spec: SweepSpec, settings: Settings, need: Need) -> None:
        """PBT's checks, and an axis PB2 can bound."""
        super().check(spec, settings, need)
        axes = spec.perturbations[settings.space]
        need(
            any(isinstance(axis, Float | Integer) for axis in axes.values()),
            f"--scheduler pb2: PERTURBATIONS[{settings.space!r}] of {spec.script} has no "
            f"continuous axis for PB2 to bound (its lists, {', '.join(axes)}, are only copied "
            "from a donor)",
            "use --scheduler pbt, or write an axis as tune.uniform/tune.loguniform",
        )

    def scheduler(self, settings: Settings, perturbations: dict[str, Any]) -> TrialScheduler:
        """Ray's PB2 over epochs, a trial checked every --perturbation-interval epochs but not at
        --max-epochs, its proposals kept inside the script's bounds (float32 rounding)."""
        return PB2ToMaxEpochs(
            **self.population_settings(settings, perturbations),
            hyperparam_bounds=pb2_bounds(perturbations),
        )

    def record(self, settings: Settings, perturbations: dict[str, Any]) -> dict[str, Any]:
        """PBT's record named PB2, with what the GP bandit bounds and what it leaves alone."""
        record = super().record(settings, perturbations)
        bounds = pb2_bounds(perturbations)
        record["scheduler"]["hyperparam_bounds"] = bounds
        record["scheduler"]["not_explored"] = [k for k in perturbations if k not in bounds]
        return record

    def start_note(self, spec: SweepSpec, settings: Settings) -> str:
        axes = spec.perturbations[settings.space]
        lists = [k for k, axis in axes.items() if not isinstance(axis, Float | Integer)]
        note = (
            "--scheduler pb2: Optuna has no part in Population Based Bandits; "
            f"{settings.num_samples} trials sampled at random (seed {settings.seed}), a GP "
            f"bandit explores {', '.join(k for k in axes if k not in lists)}"
        )
        if lists:
            note += f"; {', '.join(lists)} not explored (lists: a clone takes its donor's)"
        return f"{note}; no {STUDY_FILE}"

    def summary_part(self, summary: dict[str, Any]) -> str:
        return f"{summary['exploits']} PB2 exploits"
