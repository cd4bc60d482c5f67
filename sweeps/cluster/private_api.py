"""Every private name of Ray and Optuna this project uses, looked up here and nowhere else.

Ray's W&B callback, Tune's environment propagation and ``OptunaSearch`` have no public hook for
what the sweeps need (one W&B actor for all trials, AWS credentials kept out of the trials'
runtime_env, telling the study each trial's real state), so ``sweeps/fit/wandb_hub.py``,
``sweeps/cluster/ray_cluster.py`` and ``sweeps/search/searcher.py`` reach into them through the functions
below. A name that a new Ray or Optuna has dropped or renamed is then one line, a
``PrivateAPIError`` naming the installed version and the versions this code is tested with
(``RAY_TESTED``, ``OPTUNA_TESTED``: the ranges ``pyproject.toml`` declares), never a silent
no-op or a traceback inside a trial. ``check()`` looks every name up before Ray starts.

``sweeps/folder/old_folders.py`` reads Ray's ASHA bracket of a scheduler pickled by an older version.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Any

from trainables.errors import UsageError

RAY_TESTED = "ray[tune]>=2.60,<2.61"
OPTUNA_TESTED = "optuna>=5.0,<5.1"
_TESTED = {"ray": RAY_TESTED, "optuna": OPTUNA_TESTED}


class PrivateAPIError(UsageError):
    """An installed Ray or Optuna lacks a private name this project relies on."""


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "(unknown version)"


def private(owner: Any, name: str, where: str, package: str) -> Any:
    """``owner.name``, or PrivateAPIError saying that ``package``'s installed version has no
    ``where.name`` and which versions are tested."""
    try:
        return getattr(owner, name)
    except AttributeError:
        tested = _TESTED[package]
        raise PrivateAPIError(
            f"{package} {_version(package)} has no {where}.{name}, which latentsweep relies on "
            f"(tested with {tested})",
            f"install a tested version: pip install '{tested}'",
        ) from None


# ---------------------------------------------------------------------------------------------
# Ray Tune: the driver's environment variables copied into every trial's runtime_env


@contextlib.contextmanager
def tune_env_vars_propagated(keep: Callable[[str], bool]) -> Iterator[None]:
    """Inside, Tune copies into the trials' runtime_env only the variables of its list
    (``ray.tune.execution.class_cache.ENV_VARS_TO_PROPAGATE``, read by Tune each time it
    registers a trainable) for which ``keep(name)`` is true."""
    from ray.tune.execution import class_cache

    where = "ray.tune.execution.class_cache"
    propagated = private(class_cache, "ENV_VARS_TO_PROPAGATE", where, "ray")
    class_cache.ENV_VARS_TO_PROPAGATE = {v for v in propagated if keep(v)}
    try:
        yield
    finally:
        class_cache.ENV_VARS_TO_PROPAGATE = propagated


# ---------------------------------------------------------------------------------------------
# Ray Tune's controller: the trials waiting to start (sweeps/search/schedulers.py)

_CONTROLLER = "ray.tune.execution.tune_controller.TuneController"


def set_in_source(cls: type, names: tuple[str, ...], where: str, package: str) -> None:
    """PrivateAPIError unless ``cls``'s source sets each of ``names`` on its instances (names
    that only an instance has, which ``check()`` has none of)."""
    import inspect

    source = inspect.getsource(cls)
    for name in names:
        if f"self.{name} =" not in source and f"self.{name}:" not in source:
            private(object(), name, where, package)  # raises PrivateAPIError


def waiting_trials(tune_controller: Any) -> tuple[set, set]:
    """(PENDING trials, PAUSED trials): the controller's own sets, which it keeps with every
    status change (``TuneController._set_trial_status`` asserts they agree with the trials'
    statuses). ``tune_controller``: what Tune hands a scheduler (a ``TrialRunnerWrapper``)."""
    wrapper = "ray.tune.execution.tune_controller.TrialRunnerWrapper"
    controller = private(tune_controller, "_tune_controller", wrapper, "ray")
    return (
        private(controller, "_pending_trials", _CONTROLLER, "ray"),
        private(controller, "_paused_trials", _CONTROLLER, "ray"),
    )


def result_analysis(grid: Any) -> Any:
    """The ``ExperimentAnalysis`` a ``ResultGrid`` (what ``Tuner.fit`` returns) was made from:
    Tune's read-back of every trial's results, which ``sweeps/folder/results.py`` would otherwise
    read a second time."""
    return private(grid, "_experiment_analysis", "ray.tune.ResultGrid", "ray")


# ---------------------------------------------------------------------------------------------
# Ray Tune's experiment snapshots (sweeps/cluster/ray_cluster.py)

_SNAPSHOTS = "ray.tune.execution.experiment_state._ExperimentCheckpointManager"


def _snapshot_manager():
    from ray.tune.execution import experiment_state

    where = "ray.tune.execution.experiment_state"
    manager = private(experiment_state, "_ExperimentCheckpointManager", where, "ray")
    for name in ("_update_auto_checkpoint_time", "auto_checkpoint_enabled"):
        private(manager, name, _SNAPSHOTS, "ray")
    return manager


@contextlib.contextmanager
def snapshot_period_floor(floor_s: float) -> Iterator[None]:
    """Inside, Tune's "auto" snapshot period (``TUNE_GLOBAL_CHECKPOINT_S=auto``: 19 times the last
    snapshot's time, so snapshots take at most 5% of the driver's time) has ``floor_s`` as its
    floor instead of Tune's 10 s."""
    manager = _snapshot_manager()
    tunes = manager._update_auto_checkpoint_time

    def adapting(self, time_taken: float) -> None:
        if self.auto_checkpoint_enabled:
            self._checkpoint_period = max(floor_s, time_taken * 19)

    manager._update_auto_checkpoint_time = adapting
    try:
        yield
    finally:
        manager._update_auto_checkpoint_time = tunes


# ---------------------------------------------------------------------------------------------
# Ray's W&B integration (sweeps/fit/wandb_hub.py)

_WANDB = "ray.air.integrations.wandb"


def _ray_wandb():
    from ray.air.integrations import wandb

    return wandb


def wandb_clean_log(result: dict, video_kwargs: dict, image_kwargs: dict) -> dict:
    """A Tune result made loggable the way Ray's W&B callback does it (``_clean_log``)."""
    clean = private(_ray_wandb(), "_clean_log", _WANDB, "ray")
    return clean(result, video_kwargs=video_kwargs, image_kwargs=image_kwargs)


def wandb_run_info_hook(run: Any) -> None:
    """Ray's hook on a new W&B run (``_run_wandb_process_run_info_hook``)."""
    private(_ray_wandb(), "_run_wandb_process_run_info_hook", _WANDB, "ray")(run)


def force_on_current_node() -> dict:
    """Ray's actor options that pin an actor to the driver's node (``_force_on_current_node``)."""
    from ray.air.util import node

    return private(node, "_force_on_current_node", "ray.air.util.node", "ray")()


# Names of Ray's WandbLoggerCallback that SweepWandbCallback overrides or reads: the hook that
# starts a trial's logging actor (overridden: if Ray renamed it, Ray's own actors would start),
# the trial -> actor map, and the upload timeout.
WANDB_CALLBACK_NAMES = ("_start_logging_actor", "_trial_logging_actors", "_upload_timeout")


# ---------------------------------------------------------------------------------------------
# Ray's OptunaSearch and Optuna's storage (sweeps/search/searcher.py)

_OPTUNA_SEARCH = "ray.tune.search.optuna.OptunaSearch"


def searcher_trials(searcher: Any) -> dict:
    """OptunaSearch's map of Tune trial id -> live Optuna trial (``_ot_trials``)."""
    return private(searcher, "_ot_trials", _OPTUNA_SEARCH, "ray")


def searcher_completed(searcher: Any) -> set:
    """The Tune trial ids OptunaSearch has told the study about (``_completed_trials``)."""
    return private(searcher, "_completed_trials", _OPTUNA_SEARCH, "ray")


def searcher_study(searcher: Any) -> Any:
    """OptunaSearch's Optuna study (``_ot_study``)."""
    return private(searcher, "_ot_study", _OPTUNA_SEARCH, "ray")


def study_storage(study: Any) -> Any:
    """An Optuna study's storage (``Study._storage``)."""
    return private(study, "_storage", "optuna.Study", "optuna")


def searcher_space(searcher: Any) -> Any:
    """OptunaSearch's search space as Optuna distributions (``_space``)."""
    return private(searcher, "_space", _OPTUNA_SEARCH, "ray")


def set_frozen_trial_user_attr(study: Any, trial: Any, key: str, value: Any) -> None:
    """Set a user attribute of a trial known only as a FrozenTrial (one read back from the
    study, or one no live ``optuna.Trial`` is held for): through the study's storage
    (``Study._storage``) and the trial's storage id (``FrozenTrial._trial_id``)."""
    storage = private(study, "_storage", "optuna.Study", "optuna")
    trial_id = private(trial, "_trial_id", "optuna.trial.FrozenTrial", "optuna")
    storage.set_trial_user_attr(trial_id, key, value)


def set_frozen_trial_state_values(study: Any, trial: Any, state: Any, values: list) -> None:
    """Finish a running trial (a FrozenTrial) in ``state`` with ``values``, through the study's
    storage: how a multi-objective trial is told PRUNED with its last values, which
    ``Study.tell`` (single-objective only there) would drop."""
    storage = private(study, "_storage", "optuna.Study", "optuna")
    trial_id = private(trial, "_trial_id", "optuna.trial.FrozenTrial", "optuna")
    storage.set_trial_state_values(trial_id, state, values)


# ---------------------------------------------------------------------------------------------
# A local Ray on the loopback address only (sweeps/cluster/ray_cluster.py)

LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def ray_on_loopback_only() -> None:
    """Make the Ray this process starts next listen on 127.0.0.1 only.

    On Linux Ray turns every node address, 127.0.0.1 included, into the machine's external IP,
    and its GCS, raylet and workers listen on all interfaces: a laptop's sweep would accept
    connections from its network. Ray's single-machine mode (what it uses on macOS and Windows,
    switched by ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``) keeps every server on 127.0.0.1. Ray reads
    the variable once, into ``ray._private.ray_constants.ENABLE_RAY_CLUSTER``, when it is first
    imported: set both, so the driver and the processes it starts (which inherit the variable)
    agree. Such a Ray cannot take other nodes, which a local sweep never has."""
    import os

    from ray._private import ray_constants

    private(ray_constants, "ENABLE_RAY_CLUSTER", "ray._private.ray_constants", "ray")
    os.environ[LOOPBACK_ENV] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False


# ---------------------------------------------------------------------------------------------
# All of them, before a sweep starts


def check() -> None:
    """Look up every private name above (and ASHA's, read by ``sweeps/search/schedulers.py``) on the
    installed Ray and Optuna; PrivateAPIError for the first one missing."""
    import optuna
    from ray.air.integrations.wandb import WandbLoggerCallback
    from ray.air.util import node
    from ray.tune.execution import class_cache
    from ray.tune.search.optuna import OptunaSearch

    private(class_cache, "ENV_VARS_TO_PROPAGATE", "ray.tune.execution.class_cache", "ray")
    wandb = _ray_wandb()
    for name in ("_clean_log", "_run_wandb_process_run_info_hook"):
        private(wandb, name, _WANDB, "ray")
    private(node, "_force_on_current_node", "ray.air.util.node", "ray")
    _snapshot_manager()
    from optuna.storages.journal import _file as journal_file
    from ray.tune.execution import tune_controller

    wrapper = "ray.tune.execution.tune_controller.TrialRunnerWrapper"
    set_in_source(tune_controller.TrialRunnerWrapper, ("_tune_controller",), wrapper, "ray")
    names = ("_pending_trials", "_paused_trials")
    set_in_source(tune_controller.TuneController, names, _CONTROLLER, "ray")
    from ray.tune import ResultGrid

    set_in_source(ResultGrid, ("_experiment_analysis",), "ray.tune.ResultGrid", "ray")
    where = "optuna.storages.journal.JournalFileBackend"
    set_in_source(journal_file.JournalFileBackend, ("_lock",), where, "optuna")
    private(journal_file, "get_lock_file", "optuna.storages.journal._file", "optuna")
    from ray._private import ray_constants
    from ray.tune.logger import LoggerCallback

    private(ray_constants, "ENABLE_RAY_CLUSTER", "ray._private.ray_constants", "ray")
    # overridden by sweeps/search/population.py's result loggers
    private(LoggerCallback, "_restore_from_remote", "ray.tune.logger.LoggerCallback", "ray")

    class Probe(WandbLoggerCallback):  # Ray's __init__, without Ray's __del__ (it needs Ray)
        def __del__(self) -> None:
            pass

    callback = Probe()
    for name in WANDB_CALLBACK_NAMES:
        private(callback, name, f"{_WANDB}.WandbLoggerCallback", "ray")

    searcher = OptunaSearch()  # its __init__ sets the state the searcher reads
    for get in (searcher_trials, searcher_completed, searcher_study, searcher_space):
        get(searcher)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # "A new study created in memory"
    try:
        study = optuna.create_study()
    finally:
        optuna.logging.set_verbosity(verbosity)
    private(study, "_storage", "optuna.Study", "optuna")
    private(optuna.trial.create_trial(value=0.0), "_trial_id", "optuna.trial.FrozenTrial", "optuna")
