"""Keep each trial's best and latest checkpoint, without breaking --resume.

Tune's own ``CheckpointConfig(num_to_keep=...)`` deletes a trial's older checkpoint as soon as a
newer one is registered, and only then writes the experiment snapshot that names the newer one.
A driver killed in between leaves a snapshot that names a deleted checkpoint, and the resumed
sweep fails that trial ("Could not recover from checkpoint as it does not exist on storage
anymore"; it happened in this project's own test runs). So Tune keeps every checkpoint (``num_to_keep=None``) and this
callback deletes the ones nothing needs: a checkpoint is kept while it is its trial's latest, its
best by the sweep's metric, or named by one of the last ``SNAPSHOTS`` experiment snapshots (the
newest of which may still be uploading when the driver dies).
"""

from __future__ import annotations

import collections
import logging
import math

from ray import tune

logger = logging.getLogger(__name__)


class CheckpointPruner(tune.Callback):
    SNAPSHOTS = 3

    def __init__(self, metric: str, mode: str) -> None:
        self.metric, self.sign = metric, 1.0 if mode == "min" else -1.0
        self._checkpoints: dict[str, list[tuple[tune.Checkpoint, float]]] = {}
        self._snapshots: collections.deque = collections.deque(maxlen=self.SNAPSHOTS)

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info) -> None:
        value = trial.last_result.get(self.metric)
        score = self.sign * value if isinstance(value, int | float) else math.nan
        self._checkpoints.setdefault(trial.trial_id, []).append((checkpoint, score))
        self._prune(trial.trial_id)

    def get_state(self) -> None:
        """Tune calls this while it writes an experiment snapshot: note what it names."""
        self._snapshots.append({t: c[-1][0].path for t, c in self._checkpoints.items() if c})
        for trial_id in list(self._checkpoints):
            self._prune(trial_id)
        return None  # nothing to restore: a resumed sweep starts with no record

    def on_experiment_end(self, trials, **info) -> None:
        """A finished trial is never restored again: only its best and latest stay."""
        for trial in trials:
            if trial.status == "TERMINATED" and trial.trial_id in self._checkpoints:
                self._prune(trial.trial_id, finished=True)

    def _prune(self, trial_id: str, finished: bool = False) -> None:
        entries = self._checkpoints[trial_id]
        scored = [e for e in entries if not math.isnan(e[1])]
        keep = {entries[-1][0].path}
        if scored:
            keep.add(min(scored, key=lambda e: e[1])[0].path)
        if not finished:
            keep |= {snapshot[trial_id] for snapshot in self._snapshots if trial_id in snapshot}
        kept = []
        for checkpoint, score in entries:
            if checkpoint.path in keep:
                kept.append((checkpoint, score))
                continue
            try:
                checkpoint.filesystem.delete_dir(checkpoint.path)
            except FileNotFoundError:
                pass
            except OSError as e:  # keep going: a checkpoint left behind costs only disk
                logger.warning("could not delete %s: %s", checkpoint.path, e)
                kept.append((checkpoint, score))
        self._checkpoints[trial_id] = kept
