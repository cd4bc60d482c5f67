"""The old import path of what the trainables share, kept for code outside ``trainables/`` that
still imports it from here. New code imports from the module that owns each name:
``config`` (typed configs), ``devices`` (devices, determinism, seeding), ``optim`` (optimisers,
the lr schedule), ``checkpoints``, ``reporting`` (reporters, lineage) and ``training`` (the epoch
loop).
"""

from trainables.checkpoints import (
    CHECKPOINT_FILE,
    CheckpointError,
    checkpoint_file,
    checkpoint_payload,
    load_checkpoint,
    restore_into,
    save_checkpoint,
    state_of,
)
from trainables.config import ConfigError, TrainConfig
from trainables.devices import ray_gpu_ids, resolve_device, seed_epoch, set_determinism
from trainables.optim import make_optimizer, set_epoch_lr
from trainables.reporting import FolderReporter, TuneReporter, clone_of, extend_lineage
from trainables.training import DivergedError

__all__ = [
    "CHECKPOINT_FILE",
    "CheckpointError",
    "ConfigError",
    "DivergedError",
    "FolderReporter",
    "TrainConfig",
    "TuneReporter",
    "checkpoint_file",
    "checkpoint_payload",
    "clone_of",
    "extend_lineage",
    "load_checkpoint",
    "make_optimizer",
    "ray_gpu_ids",
    "resolve_device",
    "restore_into",
    "save_checkpoint",
    "seed_epoch",
    "set_determinism",
    "set_epoch_lr",
    "state_of",
]
