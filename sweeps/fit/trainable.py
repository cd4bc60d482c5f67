"""The trainable as Ray Tune runs it in a sweep: the model's ``train_<model>`` function
(``trainables/``), given the data through the object store and its share of CPUs and GPUs, and
ending a trial whose loss diverged with one last result instead of an error."""

from __future__ import annotations

import functools
import logging
import math
from typing import Any

from ray import tune
from ray.air.constants import TRAINING_ITERATION

from sweeps.fit import faults
from sweeps.folder import layout
from sweeps.folder.outcome import DIVERGED, ERROR
from trainables import training


def sweep_trainable(train, metric: str, splits, cpu: float, gpu: float, verbose: bool = False):
    """``train`` ready for the Tuner: divergence ends a trial (``end_on_divergence``), the
    driver's splits reach every trial through Ray's object store (put there once, without the
    test images: only the driver's final evaluation reads them), each trial
    asks for ``cpu`` CPUs and ``gpu`` GPUs, and (unless ``verbose``) its worker does not log a
    line for every checkpoint it saves."""
    return tune.with_resources(
        tune.with_parameters(
            end_on_divergence(faults.trial_points(train), metric),
            data=splits.without_test(),
            quiet=not verbose,
        ),
        {"cpu": cpu, "gpu": gpu},
    )


def end_on_divergence(train, metric: str):
    """``train``, but a trial whose loss became NaN/inf ends with one last result saying so
    (``diverged: True``, ``error``: the reason, ``metric``: NaN) instead of raising. Raised, Tune
    would retry it --max-failures times from its last checkpoint, and since epochs replay
    exactly it would diverge again each time. ASHA ignores a NaN (its cutoffs use nanpercentile);
    the searcher tells Optuna FAIL with the reason; the results mark it DIVERGED."""

    @functools.wraps(train)  # keeps the name: Tune's trial folders and --resume depend on it
    def trainable(config: dict[str, Any], quiet: bool = False, **kwargs: Any) -> None:
        if quiet:  # Ray Train's "Checkpoint successfully created at: ..." once per epoch, and
            # "Restored on ... from checkpoint" each time PBT restarts a trial in this worker
            logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
            logging.getLogger("ray.tune.trainable.trainable").setLevel(logging.WARNING)
        try:
            train(config, **kwargs)
        except training.DivergedError as e:
            # Tune requires the metric in every result; NaN says "no score" to all its parts.
            last = {**e.metrics, metric: math.nan, DIVERGED: True, ERROR: str(e)}
            if e.epoch is not None:  # the epoch, as TuneReporter reports it: with
                # --report-every, Tune's count of reports is not the epoch
                last[TRAINING_ITERATION] = e.epoch
            tune.report(last)

    return trainable


def trial_dirname(trial) -> str:
    """Tune's ``trial_dirname_creator``: ``<trainable>_<trial_id>`` (``sweeps/folder/layout.py``)."""
    return layout.trial_dirname(trial.trainable_name, trial.trial_id)
