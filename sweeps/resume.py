"""``--resume``: continuing an interrupted sweep from its experiment folder.

Before Ray starts, ``check_restorable`` makes sure Ray Tune's state files are there and whole;
then ``restore_tuner`` puts the Optuna study back where the searcher expects it, notes the
resume in sweep.json and asks Tune to restore the experiment (the searcher, the scheduler, the
callbacks and every trial), retrying errored trials from their last checkpoint.

Experiment folders written before sweeps/ was split into modules (up to commit cd82198) pickled
the searcher and callbacks under their old module paths; ``sweeps/runner.py`` and
``sweeps/checkpoint_gc.py`` keep those names importable, so such folders resume as they are
(tests/test_old_experiment_resumes.py).
"""

from __future__ import annotations

import fnmatch
import json
import pickletools
from typing import Any

from ray import tune

from sweeps.experiment import Folder
from sweeps.layout import SWEEP_FILE, TUNE_STATE, TUNER_FILE
from sweeps.record import note_resume
from sweeps.settings import Settings
from sweeps.study_storage import fetch_study_copy
from trainables.errors import UsageError


def check_restorable(exp: Folder) -> None:
    """Before Ray starts: Ray Tune's state files in ``exp`` are there and whole (the newest of
    each, as Tune reads them). A truncated file is then an error naming it rather than a
    traceback from inside Ray, or a searcher silently started afresh. Pickles are only parsed
    (``pickletools``), not loaded: nothing in them runs until Tune restores them."""
    if not exp.exists(TUNER_FILE):
        raise UsageError(
            f"--resume {exp.uri}: Ray Tune never started there (no {TUNER_FILE})",
            "start the sweep again without --resume",
        )
    names = exp.files()
    for pattern, fmt in TUNE_STATE:
        matches = sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))
        if not matches:
            continue
        name = matches[-1]  # timestamped names: the last is the newest
        try:
            data = exp.read_bytes(name)
            if fmt == "json":
                json.loads(data)
            else:
                for _ in pickletools.genops(data):
                    pass
        except (ValueError, UnicodeDecodeError, OSError) as e:
            raise UsageError(
                f"--resume {exp.uri}: Ray Tune's state file {exp.uri_of(name)} is truncated or "
                f"corrupt ({type(e).__name__}: {str(e).splitlines()[0][:120]})",
                "restore the folder from a backup; or rerun the sweep under a new --name "
                "(its results.parquet and trial folders here stay readable)",
            ) from None


def restore_tuner(
    exp: Folder, settings: Settings, trainable, space: dict[str, Any], wandb_mode: str
) -> tune.Tuner:
    """The interrupted sweep's Tuner, restored from ``exp`` (and only from there)."""
    record = exp.read_json(SWEEP_FILE)
    fetch_study_copy(exp, record)
    note_resume(exp, record, settings, wandb_mode)
    return tune.Tuner.restore(exp.uri, trainable=trainable, resume_errored=True, param_space=space)
