"""What Population Based Training (``--scheduler pbt``, ``sweeps/search/pbt.py``) needs
beyond Ray's scheduler: perturbed values kept inside the bounds the script wrote
(``KeepInBounds``), and checkpoints kept while PBT may still restore a trial from them
(``PBTCheckpointPruner``). How PBT exploits and explores: docs/sweeps.md.
"""

from __future__ import annotations

import collections
from typing import Any

from ray.tune.search.sample import Float, Integer

from sweeps.fit.checkpoint_pruner import CheckpointPruner
from sweeps.folder import old_folders, outcome
from sweeps.request.search_space import integer_bounds


class KeepInBounds:
    """PBT's ``custom_explore_fn``: a perturbed continuous value (x0.8 or x1.2, again and again)
    clipped to its axis's bounds, so beta1 stays below 1 and a learning rate in the range the
    script wrote; an integer axis's highest value is the one it samples (``integer_bounds``)."""

    def __init__(self, mutations: dict[str, Any]) -> None:
        self.bounds = {
            key: integer_bounds(axis) if isinstance(axis, Integer) else (axis.lower, axis.upper)
            for key, axis in mutations.items()
            if isinstance(axis, Float | Integer)
        }

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        for key, (low, high) in self.bounds.items():
            if key in config:
                config[key] = type(config[key])(min(max(config[key], low), high))
        return config


class PBTCheckpointPruner(CheckpointPruner):
    """``CheckpointPruner``, but a checkpoint PBT may still restore a trial from is not deleted.

    A trial PBT exploits is restarted from the checkpoint its donor saved at the donor's last
    check, which is at most ``perturbation_interval - 1`` epochs older than the donor's latest:
    each trial's last ``perturbation_interval`` checkpoints stay while it runs. A trial told to
    restart from another trial's checkpoint may wait for a free worker while the donor trains on
    (or ends): the checkpoint every trial that has not ended will restore (``trial.checkpoint``)
    stays too. A checkpoint refused here is deleted at a later snapshot, once nothing needs it
    (its trial may have ended and been forgotten by then)."""

    def __init__(self, metric: str, mode: str, perturbation_interval: int, **kwargs: Any):
        super().__init__(metric, mode, **kwargs)
        self.window = max(int(perturbation_interval), 1)
        self._recent: dict[str, collections.deque] = {}  # trial id -> its last `window` paths
        self._trials: list = []  # every trial of the sweep, as Tune's hooks hand them over
        self._refused: dict[str, Any] = {}  # path -> checkpoint: to delete once not needed

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(old_folders.pbt_pruner_state(state))

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._trials = trials
        super().on_trial_start(iteration, trials, trial, **info)

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info) -> None:
        self._trials = trials
        recent = self._recent.setdefault(trial.trial_id, collections.deque(maxlen=self.window))
        recent.append(checkpoint.path)
        super().on_checkpoint(iteration, trials, trial, checkpoint, **info)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._recent.pop(trial.trial_id, None)  # an ended trial is never a donor
        super().on_trial_complete(iteration, trials, trial, **info)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._recent.pop(trial.trial_id, None)
        super().on_trial_error(iteration, trials, trial, **info)

    def needed(self) -> set[str]:
        """The checkpoint paths PBT may still restore a trial from."""
        paths = {path for recent in self._recent.values() for path in recent}
        for trial in self._trials:
            if not outcome.ended(trial) and trial.checkpoint is not None:
                paths.add(trial.checkpoint.path)
        return paths

    def get_state(self) -> None:
        self._delete_refused()
        return super().get_state()

    def on_experiment_end(self, trials, **info) -> None:
        self._trials = trials
        super().on_experiment_end(trials, **info)
        self._delete_refused()

    def _rm(self, checkpoint) -> bool:
        if checkpoint.path in self.needed():
            self._refused[checkpoint.path] = checkpoint
            return False
        self._refused.pop(checkpoint.path, None)
        return super()._rm(checkpoint)

    def _delete_refused(self) -> None:
        """Delete each refused checkpoint that no trial may restore from any more. Nothing else
        wants it: the base pruner had decided to delete it (a checkpoint it decides against is
        never one it keeps later: not the latest, not the best, named by no newer snapshot)."""
        needed = self.needed()
        for path, checkpoint in list(self._refused.items()):
            if path not in needed and CheckpointPruner._rm(checkpoint):
                del self._refused[path]
