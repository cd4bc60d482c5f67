"""The searcher sees a rewound trial (Tune ran it again from an older checkpoint than its last
reported epoch) from the epochs alone: a replayed epoch is a rewind whether it gives another value
(a GPU without deterministic kernels) or the same one (a bit-exact CPU), and neither a trial that
goes on where it stopped nor Tune's final result (the last result handed over again) is one.

The results are shaped as Tune makes them: ``training_iteration`` goes on from the checkpoint a
trial was restored from, ``iterations_since_restore`` starts again at 1, and ``time_total_s``
goes on from the checkpoint's."""

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from ray import tune

from sweeps.search.searcher import TrialStateOptunaSearch


def _searcher(tmp_path, max_epochs=3) -> TrialStateOptunaSearch:
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/optuna.db")
    searcher = TrialStateOptunaSearch(
        max_epochs=max_epochs, study_name="s", storage=storage, seed=0
    )
    searcher.set_search_properties("val_mse", "min", {"lr": tune.loguniform(1e-4, 1e-2)})
    return searcher


def _snapshot(tmp_path, searcher) -> Path:
    """Tune's snapshot of the searcher, taken now."""
    searcher.save(tmp_path / "searcher.pkl")
    return tmp_path / "searcher.pkl"


def _resume(snapshot: Path, max_epochs=3) -> TrialStateOptunaSearch:
    """The searcher as a resumed driver has it: restored from the snapshot, after the study got
    whatever the killed driver told it since."""
    resumed = TrialStateOptunaSearch(max_epochs=max_epochs)
    resumed.restore(snapshot)
    return resumed


def result(step: int, value: float, since_restore: int, total_s: float) -> dict:
    return {
        "val_mse": value,
        "training_iteration": step,
        "iterations_since_restore": since_restore,
        "time_total_s": total_s,
    }


def _trials(searcher, trial_id="t") -> list:
    return [t for t in searcher._study.get_trials() if t.user_attrs["trial_id"] == trial_id]


def _check_retried(searcher, lost: dict, kept: dict, state: TrialState) -> None:
    first, retry = _trials(searcher)
    assert first.state == TrialState.FAIL and first.intermediate_values == lost
    assert first.user_attrs["fail_reason"].startswith("rewound: Ray Tune ran epoch 2 again")
    assert retry.user_attrs["retry_of"] == first.number and retry.params == first.params
    assert retry.state == state and retry.intermediate_values == kept


@pytest.mark.parametrize("replayed", [0.4, 0.41], ids=["same-value", "other-value"])
def test_an_epoch_run_again_after_a_resume_is_a_rewind_whatever_its_value(tmp_path, replayed):
    """The driver dies after the trial reported epoch 2, but Tune's snapshot (and the trial's
    checkpoint in it) is from epoch 1: the resumed sweep runs epoch 2 again."""
    s = _searcher(tmp_path)
    s.suggest("t")
    s.on_trial_result("t", result(1, 0.5, 1, 1.0))
    snapshot = _snapshot(tmp_path, s)
    s.on_trial_result("t", result(2, 0.4, 2, 2.0))  # after the snapshot; then the driver dies
    r = _resume(snapshot)
    r.on_trial_result("t", result(2, replayed, 1, 2.1))
    r.on_trial_complete("t", result(3, 0.3, 2, 3.1))
    _check_retried(r, {1: 0.5, 2: 0.4}, {1: 0.5, 2: replayed, 3: 0.3}, TrialState.COMPLETE)


@pytest.mark.parametrize("replayed", [0.4, 0.41], ids=["same-value", "other-value"])
def test_an_epoch_run_again_that_ends_the_trial_is_a_rewind_too(tmp_path, replayed):
    """As above, but ASHA stops the trial on the replayed epoch, so Tune hands that result only
    to on_trial_complete."""
    s = _searcher(tmp_path)
    s.suggest("t")
    s.on_trial_result("t", result(1, 0.5, 1, 1.0))
    snapshot = _snapshot(tmp_path, s)
    s.on_trial_result("t", result(2, 0.4, 2, 2.0))
    r = _resume(snapshot)
    r.on_trial_complete("t", result(2, replayed, 1, 2.1))
    _check_retried(r, {1: 0.5, 2: 0.4}, {1: 0.5, 2: replayed}, TrialState.PRUNED)


@pytest.mark.parametrize("replayed", [0.4, 0.41], ids=["same-value", "other-value"])
def test_a_worker_restarted_from_an_older_checkpoint_is_a_rewind(tmp_path, replayed):
    """No driver restart: the worker died after reporting epoch 2, and Tune restarted the trial
    from its epoch-1 checkpoint (the epoch-2 one was lost)."""
    s = _searcher(tmp_path)
    s.suggest("t")
    s.on_trial_result("t", result(1, 0.5, 1, 1.0))
    s.on_trial_result("t", result(2, 0.4, 2, 2.0))
    s.on_trial_result("t", result(2, replayed, 1, 2.1))
    s.on_trial_complete("t", result(3, 0.3, 2, 3.1))
    _check_retried(s, {1: 0.5, 2: 0.4}, {1: 0.5, 2: replayed, 3: 0.3}, TrialState.COMPLETE)


def test_a_trial_that_goes_on_where_it_stopped_is_not_a_rewind(tmp_path):
    """Resumed from a snapshot that holds every epoch Optuna has; the trial's final result (Tune
    hands its last result to on_trial_complete again) repeats epoch 3 without being a rewind."""
    s = _searcher(tmp_path)
    s.suggest("t")
    s.on_trial_result("t", result(1, 0.5, 1, 1.0))
    r = _resume(_snapshot(tmp_path, s))
    r.on_trial_result("t", result(2, 0.4, 1, 2.1))
    r.on_trial_result("t", result(3, 0.3, 2, 3.1))
    r.on_trial_complete("t", {**result(3, 0.3, 2, 3.1), "done": True})
    (only,) = _trials(r)
    assert only.state == TrialState.COMPLETE and only.intermediate_values == {
        1: 0.5,
        2: 0.4,
        3: 0.3,
    }


def test_a_finished_trial_handed_over_again_after_a_resume_is_not_a_rewind(tmp_path):
    """Tune's snapshot was taken after the trial's last epoch but before it ended; the resumed
    driver restores it at that epoch, it has nothing left to run, and Tune hands its last result
    over again: the study keeps the one COMPLETE trial, no retry."""
    s = _searcher(tmp_path)
    s.suggest("t")
    for step in (1, 2, 3):
        s.on_trial_result("t", result(step, 0.5 - step / 10, step, float(step)))
    snapshot = _snapshot(tmp_path, s)
    s.on_trial_complete("t", {**result(3, 0.2, 3, 3.0), "done": True})  # then the driver dies
    r = _resume(snapshot)
    r.on_trial_complete("t", {**result(3, 0.2, 3, 3.0), "done": True})
    (only,) = _trials(r)
    assert only.state == TrialState.COMPLETE and only.value == pytest.approx(0.2)
