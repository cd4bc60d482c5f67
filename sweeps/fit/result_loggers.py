"""Tune's result loggers (``result.json``, ``progress.csv`` in each trial folder), made to keep every
epoch a trial reported to this driver through the trial's restarts: Population Based Training's
pauses, and a trial restored after a failure (a lost node); and no TensorBoard files unless
``--tensorboard``. ``runner.make_tuner`` passes ``result_loggers(...)`` to every sweep's Tuner."""

from __future__ import annotations

from pathlib import Path

from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, LoggerCallback
from ray.tune.logger.tensorboardx import TBXLoggerCallback

from sweeps.cluster import private_api


class _KeepThisDriversResults:
    """Ray's result loggers (``result.json``, ``progress.csv``), but a trial restarted by this
    driver appends to the file this driver has been writing.

    On every start of a trial that has a checkpoint, Ray's loggers copy the trial's file from
    the experiment folder over the driver's own copy (``LoggerCallback._restore_from_remote``),
    and the experiment folder's copy is only as new as Tune's last sync. PBT pauses and restarts
    trials every few epochs, so each restart dropped the epochs reported since that sync (4 of
    16 rows were left in a 4-trial smoke sweep); a trial restarted on another node after its node
    was lost lost its last epochs the same way (tests/test_gpu_placement.py). The folder's copy is
    still what a new driver (``--resume``) starts from."""

    def _restore_from_remote(self, file_name: str, trial) -> None:
        if Path(trial.local_path, file_name).exists():
            return  # this driver's copy: every result it has logged
        super()._restore_from_remote(file_name, trial)


class KeepResultsJson(_KeepThisDriversResults, JsonLoggerCallback):
    pass


class KeepResultsCsv(_KeepThisDriversResults, CSVLoggerCallback):
    pass


class NoTensorBoard(TBXLoggerCallback):
    """Stands where Tune would put its TensorBoard logger, and writes nothing.

    Tune adds a TensorBoard logger to every Tuner whose callbacks have none (tensorboardX comes
    with ``ray[tune]``). Its event files repeat what W&B, result.json and progress.csv hold, and
    its writer (a thread per trial, a flush every 30 s) took a tenth of the driver's samples in a
    profile of a 300-trial sweep (docs/performance.md, section 6). This is not Tune's switch
    ($TUNE_DISABLE_AUTO_CALLBACK_LOGGERS), which would also drop the JSON and CSV loggers of a
    resumed folder whose pickled callbacks predate ``result_loggers``."""

    def __init__(self) -> None:  # no tensorboardX writer
        pass

    def log_trial_start(self, trial) -> None:
        pass

    def log_trial_restore(self, trial) -> None:
        pass

    def log_trial_save(self, trial) -> None:
        pass

    def log_trial_result(self, iteration: int, trial, result: dict) -> None:
        pass

    def log_trial_end(self, trial, failed: bool = False) -> None:
        pass


def result_loggers(tensorboard: bool) -> list[LoggerCallback]:
    """The loggers every sweep passes to Tune in place of its default JSON and CSV ones; with
    ``tensorboard`` False, a TensorBoard logger that writes nothing, so that Tune adds none."""
    private_api.private(
        LoggerCallback, "_restore_from_remote", "ray.tune.logger.LoggerCallback", "ray"
    )
    return [KeepResultsJson(), KeepResultsCsv()] + ([] if tensorboard else [NoTensorBoard()])
