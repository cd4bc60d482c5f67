"""The private names of Ray and Optuna the sweeps use (``sweeps/cluster/private_api.py``): all present in
the installed versions, and a missing one is one line naming the version and the tested range,
before Ray starts, never a silent no-op. A name is removed here with monkeypatch, as a new Ray
or Optuna would remove it: what is tested is our check, not Ray."""

import functools
import importlib
from importlib import metadata

import optuna
import pytest
import ray
from ray.air.integrations.wandb import WandbLoggerCallback
from ray.tune.execution import class_cache
from ray.tune.search.optuna import OptunaSearch

from sweeps import ae_sweep
from sweeps.cluster import private_api, ray_cluster
from sweeps.cluster.private_api import PrivateAPIError
from sweeps.search.searcher import TrialStateOptunaSearch

RAY = metadata.version("ray")
OPTUNA = metadata.version("optuna")

MODULE_AND_CLASS_NAMES = [
    (class_cache, "ENV_VARS_TO_PROPAGATE"),
    (importlib.import_module("ray.air.integrations.wandb"), "_clean_log"),
    (importlib.import_module("ray.air.integrations.wandb"), "_run_wandb_process_run_info_hook"),
    (importlib.import_module("ray.air.util.node"), "_force_on_current_node"),
    (WandbLoggerCallback, "_start_logging_actor"),
]
INSTANCE_NAMES = [  # set by the class's __init__
    (OptunaSearch, "_ot_trials", "ray"),
    (OptunaSearch, "_completed_trials", "ray"),
    (OptunaSearch, "_ot_study", "ray"),
    (OptunaSearch, "_space", "ray"),
    (WandbLoggerCallback, "_trial_logging_actors", "ray"),
    (optuna.study.Study, "_storage", "optuna"),
    (optuna.trial.FrozenTrial, "_trial_id", "optuna"),
]


def _without_instance_attr(monkeypatch, cls, name):
    """``cls`` whose __init__ no longer sets ``name``."""
    init = cls.__init__

    @functools.wraps(init)
    def without(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.__dict__.pop(name, None)

    monkeypatch.setattr(cls, "__init__", without)


def _check_message(e: PrivateAPIError, package: str, name: str) -> None:
    text = str(e)
    version, tested = (
        (RAY, private_api.RAY_TESTED)
        if package == "ray"
        else (
            OPTUNA,
            private_api.OPTUNA_TESTED,
        )
    )
    assert "\n" not in text and text.count("; ") == 1, text
    assert f"{package} {version} has no " in text and f".{name}," in text, text
    assert f"tested with {tested}" in text and f"pip install '{tested}'" in text, text


def test_every_private_name_is_there_in_the_installed_versions():
    private_api.check()
    assert RAY.startswith("2.60.") and OPTUNA.startswith("5.0."), "update the tested ranges"


@pytest.mark.parametrize(
    ("owner", "name"), MODULE_AND_CLASS_NAMES, ids=[n for _, n in MODULE_AND_CLASS_NAMES]
)
def test_a_missing_module_or_class_name_fails_in_one_line(monkeypatch, owner, name):
    monkeypatch.delattr(owner, name)
    with pytest.raises(PrivateAPIError) as e:
        private_api.check()
    _check_message(e.value, "ray", name)


@pytest.mark.parametrize(
    ("cls", "name", "package"), INSTANCE_NAMES, ids=[n for _, n, _ in INSTANCE_NAMES]
)
def test_a_missing_instance_attribute_fails_in_one_line(monkeypatch, cls, name, package):
    _without_instance_attr(monkeypatch, cls, name)
    with pytest.raises(PrivateAPIError) as e:
        private_api.check()
    _check_message(e.value, package, name)


def test_the_searcher_refuses_an_optuna_search_without_its_state(monkeypatch):
    _without_instance_attr(monkeypatch, OptunaSearch, "_ot_trials")
    with pytest.raises(PrivateAPIError, match="_ot_trials"):
        TrialStateOptunaSearch(max_epochs=3)


def test_the_credential_filter_fails_loudly_instead_of_letting_credentials_through(monkeypatch):
    before = set(class_cache.ENV_VARS_TO_PROPAGATE)
    assert "AWS_SECRET_ACCESS_KEY" in before  # what Tune copies into every trial's runtime_env
    with ray_cluster.no_credentials_through_ray():
        inside = set(class_cache.ENV_VARS_TO_PROPAGATE)
    assert inside == {v for v in before if not v.startswith("AWS_")} and inside
    assert before == class_cache.ENV_VARS_TO_PROPAGATE  # put back

    monkeypatch.delattr(class_cache, "ENV_VARS_TO_PROPAGATE")
    with pytest.raises(PrivateAPIError) as e, ray_cluster.no_credentials_through_ray():
        pytest.fail("ran with no filter")
    _check_message(e.value, "ray", "ENV_VARS_TO_PROPAGATE")


def test_a_sweep_says_so_in_one_line_before_ray_starts(monkeypatch, tmp_path, capsys):
    monkeypatch.delattr(importlib.import_module("ray.air.integrations.wandb"), "_clean_log")
    argv = ["--storage-path", str(tmp_path), "--name", "x", "--wandb-mode", "disabled"]
    with pytest.raises(SystemExit) as e:
        ae_sweep.main(argv)
    assert e.value.code == 2 and not ray.is_initialized()
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ray ") and "_clean_log" in line
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_wandb_rows_are_split_as_rays_own_w_and_b_callback_splits_them():
    """The hub splits a result itself (sweeps.fit.wandb_hub.wandb_row) instead of calling Ray's
    private _WandbLoggingActor._handle_result with a stand-in self: the same row, the same
    config update."""
    import types

    import numpy as np
    import wandb
    from ray.air.integrations.wandb import _WandbLoggingActor

    from sweeps.fit.wandb_hub import wandb_row

    result = {
        "val_mse": 0.1,
        "epoch": 3,
        "training_iteration": 3,
        "diverged": False,
        "trial_id": "t1",
        "done": False,
        "error": "why",
        "one": np.array([2.0]),
        "many": np.array([1.0, 2.0]),
        "config": {"lr": 1e-3, "optimizer": "adam", "nested": {"a": 1}, "callbacks": [1]},
        "info": {"learner": {"loss": 0.5}},
    }
    exclude, to_config = ["done", "trial_id", "info/learner"], ["config"]
    keys = types.SimpleNamespace(_exclude=set(exclude), _to_config=set(to_config))
    ours = wandb_row(result, exclude, to_config, wandb)
    assert ours == _WandbLoggingActor._handle_result(keys, result)
    assert set(ours[0]) == {"val_mse", "epoch", "training_iteration", "diverged", "one"}


def test_snapshots_are_3_s_apart_while_cheap_and_take_5_percent_when_not():
    """The sweeps' snapshot period (``ray_cluster.tune_environment``): Tune's own "auto" rule, 19
    times the last snapshot's time, with a 3 s floor for Tune's 10 s. Run on Tune's real
    checkpoint manager; outside the context Tune's rule is back."""
    from ray.tune.execution.experiment_state import _ExperimentCheckpointManager

    manager = _ExperimentCheckpointManager(storage=None, checkpoint_period="auto")
    with private_api.snapshot_period_floor(ray_cluster.SNAPSHOT_FLOOR_S):
        manager._update_auto_checkpoint_time(0.02)  # a small sweep's snapshot
        assert manager._checkpoint_period == 3.0
        manager._update_auto_checkpoint_time(1.5)  # thousands of trials
        assert manager._checkpoint_period == pytest.approx(28.5)
        fixed = _ExperimentCheckpointManager(storage=None, checkpoint_period=3)
        fixed._update_auto_checkpoint_time(1.5)  # a period the user set stays
        assert fixed._checkpoint_period == 3.0
    manager._update_auto_checkpoint_time(0.02)
    assert manager._checkpoint_period == 10.0
