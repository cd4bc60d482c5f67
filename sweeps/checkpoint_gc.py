"""The old home of ``CheckpointPruner`` (now ``sweeps/checkpoint_pruner.py``). Tune pickled the
callback under this module path in experiment folders written up to commit cd82198; this name
keeps them resumable (``sweeps/resume.py``). New code imports ``sweeps.checkpoint_pruner``."""

from sweeps.checkpoint_pruner import CheckpointPruner

__all__ = ["CheckpointPruner"]
