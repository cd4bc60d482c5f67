"""Delete the checkpoints a sweep no longer needs, without breaking --resume.

What stays (``--keep-checkpoints``, ``keep`` here):

* a trial that has not ended keeps its latest checkpoint (what Tune resumes it from), its best
  by the sweep's metric, and every checkpoint one of the last ``SNAPSHOTS`` experiment snapshots
  names (the newest may still be uploading when the driver dies);
* ``best`` (the default): a trial that ended keeps only its metrics, unless it is the sweep's
  best so far (``outcome.rank``, the rule best.json is picked by), which keeps its best and
  latest checkpoint until another trial beats it; an errored trial keeps its latest, which
  ``--resume`` retries it from; with --objectives, the trials on the sweep's Pareto front so
  far (``outcome.front``'s rule, which best.json's front is picked by) keep theirs too, until
  another trial dominates them;
* ``all``: every trial keeps its best and latest checkpoint.

Not Tune's ``CheckpointConfig(num_to_keep=...)``: it deletes a trial's older checkpoint before
it writes the snapshot that names the newer one, so a driver killed in between leaves a snapshot
naming a deleted checkpoint and the resumed trial fails. Tune keeps every checkpoint here and
this callback deletes one only once no recent snapshot names it (for an ended trial: once none
shows it running). The work per snapshot is in the trials still running.
"""

from __future__ import annotations

import collections
import logging
import math
import posixpath

import pyarrow.fs as pafs
from ray import tune

from sweeps.folder import old_folders, outcome

logger = logging.getLogger(__name__)

KEEP_CHOICES = ("best", "all")  # --keep-checkpoints


class CheckpointPruner(tune.Callback):
    SNAPSHOTS = 3

    def __init__(
        self,
        metric: str,
        mode: str,
        keep: str = "best",
        objectives: tuple[tuple[str, str], ...] = (),
        max_epochs: int = 0,
    ) -> None:
        if keep not in KEEP_CHOICES:
            raise ValueError(f"keep={keep!r}: one of {', '.join(KEEP_CHOICES)}")
        self.metric, self.mode, self.sign = metric, mode, outcome.sign(mode)
        self.keep = keep
        # --objectives: trial id -> signed values of the ended full-length trials no other
        # dominates (outcome.front's rule), each keeping its checkpoints like the best
        self.objectives, self.max_epochs = tuple(objectives), max_epochs
        self._front: dict[str, tuple[float, ...]] = {}
        # trial id -> [(checkpoint, score)]: what this driver registered and has not deleted
        self._checkpoints: dict[str, list[tuple[tune.Checkpoint, float]]] = {}
        self._live: set[str] = set()  # started (or checkpointed) and not ended
        # each: {trial id: its latest checkpoint's path, or None} of the trials live then
        self._snapshots: collections.deque = collections.deque(maxlen=self.SNAPSHOTS)
        self._ended: dict[str, tuple[object, bool]] = {}  # trial id -> (trial, errored), unsettled
        self._settled: set[str] = set()  # ended trials pruned for good (ids only)
        self._best: tuple[tuple[float, str], object] | None = None  # ((score, id), trial)

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(old_folders.pruner_state(state))

    # --- Tune's hooks ---------------------------------------------------------------------------

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._live.add(trial.trial_id)  # a restored trial too, before it saves anything new

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info) -> None:
        self._live.add(trial.trial_id)
        value = trial.last_result.get(self.metric)
        score = self.sign * value if isinstance(value, int | float) else math.nan
        self._checkpoints.setdefault(trial.trial_id, []).append((checkpoint, score))
        self._prune_live(trial.trial_id)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._on_end(trial, errored=False)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._on_end(trial, errored=True)

    def get_state(self) -> None:
        """Tune calls this while it writes an experiment snapshot: note what it names."""
        dropped = self._snapshots[0] if len(self._snapshots) == self.SNAPSHOTS else {}
        snapshot = {}
        for trial_id in self._live:
            entries = self._checkpoints.get(trial_id)
            snapshot[trial_id] = entries[-1][0].path if entries else None
        self._snapshots.append(snapshot)
        # Only a checkpoint that the dropped snapshot named can have become deletable.
        for trial_id in dropped:
            if trial_id in self._ended:
                self._settle(trial_id)
            elif trial_id in self._checkpoints:
                self._prune_live(trial_id)
        return None  # nothing to restore: a resumed sweep starts with no record

    def on_experiment_end(self, trials, **info) -> None:
        """Tune has just written its final snapshot (``tune.run`` does that before this hook):
        no trial ended is shown running any more, so every ended trial can be settled. The best
        is chosen again over every trial, those that ended before a resume included."""
        ended = [t for t in trials if outcome.ended(t)]
        newest = self._snapshots[-1] if self._snapshots else {}
        for trial in ended:
            self._on_end(trial, errored=outcome.errored(trial), settle=False)
        for trial in ended:
            if trial.trial_id not in self._settled and trial.trial_id not in newest:
                self._settle(trial.trial_id, final=True)

    # --- the decisions --------------------------------------------------------------------------

    def _on_end(self, trial, errored: bool, settle: bool = True) -> None:
        if trial.trial_id in self._settled:
            return
        self._live.discard(trial.trial_id)
        self._ended[trial.trial_id] = (trial, errored)
        key = self._rank(trial, errored)
        if key is not None and (self._best is None or key < self._best[0]):
            beaten, self._best = self._best, (key, trial)
            if settle and beaten is not None and beaten[1].trial_id in self._ended:
                self._settle(beaten[1].trial_id)
        if self.objectives and not errored:
            for dominated in self._join_front(trial):
                if settle and dominated in self._ended:
                    self._settle(dominated)
        if settle:
            self._settle(trial.trial_id)

    def _join_front(self, trial) -> list[str]:
        """Put an ended trial on the front if it may stand there (``outcome.front_values``) and
        no trial there dominates it; returns the ids it pushed off."""
        values = outcome.front_values(trial, self.objectives, self.max_epochs)
        if values is None or any(outcome.dominates(v, values) for v in self._front.values()):
            return []
        beaten = [i for i, v in self._front.items() if outcome.dominates(values, v)]
        for i in beaten:
            del self._front[i]
        self._front[trial.trial_id] = values
        return beaten

    def _rank(self, trial, errored: bool) -> tuple[float, str] | None:
        """``outcome.rank``, the rule best.json is picked by; ``errored``: Tune called
        on_trial_error, which may come before the trial's status says ERROR."""
        return None if errored else outcome.rank(trial, self.metric, self.mode)

    def _named(self, trial_id: str) -> bool:
        return any(trial_id in snapshot for snapshot in self._snapshots)

    def _settle(self, trial_id: str, final: bool = False) -> None:
        """An ended trial: prune it once no recent snapshot shows it running (``final``: the
        newest snapshot, Tune's last, does not)."""
        if not final and self._named(trial_id):
            return  # again when the last snapshot naming it is dropped (get_state)
        trial, errored = self._ended[trial_id]
        is_best = (
            self._best is not None and self._best[1].trial_id == trial_id
        ) or trial_id in self._front
        if self.keep == "all" or is_best:
            self._prune_live(trial_id, finished=True)  # its best and latest
            if is_best and self.keep == "best":
                return  # still a candidate to be pruned, once beaten (or dominated)
        elif errored:  # --resume retries it from its latest (resume_errored=True)
            for checkpoint, _ in self._checkpoints.get(trial_id, [])[:-1]:
                self._rm(checkpoint)
        else:
            self._delete_all(trial)
        self._ended.pop(trial_id)
        self._checkpoints.pop(trial_id, None)
        self._settled.add(trial_id)

    def _prune_live(self, trial_id: str, finished: bool = False) -> None:
        """Keep the trial's latest and best checkpoint and (unless it has ended) every one a
        recent snapshot names."""
        entries = self._checkpoints.get(trial_id)
        if not entries:
            return
        scored = [e for e in entries if not math.isnan(e[1])]
        keep = {entries[-1][0].path}
        if scored:
            keep.add(min(scored, key=lambda e: e[1])[0].path)
        if not finished:
            keep |= {snapshot.get(trial_id) for snapshot in self._snapshots}
        self._checkpoints[trial_id] = [
            e for e in entries if e[0].path in keep or not self._rm(e[0])
        ]

    def _delete_all(self, trial) -> None:
        """Every ``checkpoint_*`` folder of the trial, those registered by an earlier driver (before
        a resume) included: the trial folder holding its latest checkpoint is listed."""
        entries = self._checkpoints.get(trial.trial_id) or []
        latest = entries[-1][0] if entries else trial.checkpoint
        if latest is None:
            return  # it never saved one
        fs, folder = latest.filesystem, posixpath.dirname(latest.path.rstrip("/"))
        try:
            infos = fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
        except OSError as e:
            logger.warning("could not list %s: %s", folder, e)
            return
        for info in infos:
            if info.type == pafs.FileType.Directory and info.base_name.startswith("checkpoint_"):
                self._rm(tune.Checkpoint(info.path, filesystem=fs))

    @staticmethod
    def _rm(checkpoint: tune.Checkpoint) -> bool:
        """Delete one checkpoint folder; False if it could not be (it stays recorded)."""
        try:
            checkpoint.filesystem.delete_dir(checkpoint.path)
        except FileNotFoundError:
            pass
        except OSError as e:  # keep going: a checkpoint left behind costs only disk
            logger.warning("could not delete %s: %s", checkpoint.path, e)
            return False
        return True
