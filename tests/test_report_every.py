"""--report-every N (issue #23, part 5: the driver's cheapest relief at cluster scale): a trial
reports, with a checkpoint, every N-th epoch, ASHA's rungs and its last epoch, and trains the
others without a word to the driver. A real smoke-sized sweep (about 30 s on 2 CPUs): every
reported epoch is one the rule names, Tune's ``training_iteration`` is the epoch (so ASHA, the
study and the charts count epochs, not reports), the study holds exactly the reported values,
and a checkpoint's history still holds every epoch."""

import json
import math

import pyarrow.parquet as pq
import pytest
from helpers import study_of
from optuna.trial import TrialState
from ray import tune

from sweeps import ae_sweep
from sweeps.fit.trainable import end_on_divergence
from sweeps.folder.outcome import DIVERGED
from sweeps.request.cli import build_parser, parse_settings
from sweeps.search.strategies import strategy_for
from trainables import checkpoints, reporting, training
from trainables.config import TrainConfig

pytestmark = pytest.mark.slow

# 7 epochs, rungs at 1 and 3 (grace 1, reduction factor 3), every 3rd epoch: 1, 3, 6 and 7.
FLAGS = [
    "--max-epochs",
    "7",
    "--grace-period",
    "1",
    "--reduction-factor",
    "3",
    "--report-every",
    "3",
]
REPORTED = [1, 3, 6, 7]


def test_a_trial_reports_every_nth_epoch_the_rungs_and_the_last():
    cfg = TrainConfig.from_dict({"epochs": 7, "report_every": 3, "report_at": "1,3"})
    assert [e for e in range(1, 8) if cfg.reports(e)] == REPORTED
    assert all(TrainConfig.from_dict({"epochs": 7}).reports(e) for e in range(1, 8))
    settings = parse_settings(ae_sweep.SWEEP, build_parser(ae_sweep.SWEEP), FLAGS)
    assert strategy_for(settings).decision_epochs(settings) == (1, 3)
    # a checkpoint's lineage covers the epochs trained between reports
    lineage = reporting.extend_lineage([], "a", 3)
    assert lineage == [{"trial_id": "a", "first_epoch": 1, "last_epoch": 3}]
    cloned = reporting.extend_lineage(lineage, "b", 6)
    assert cloned[-1] == {"trial_id": "b", "first_epoch": 4, "last_epoch": 6}


@pytest.mark.realdata
def test_a_sweep_reporting_every_third_epoch(local_ray, tmp_path):
    argv = ["--smoke-test", "--wandb-mode", "disabled", "--storage-path", str(tmp_path)]
    summary = ae_sweep.main([*argv, "--name", "every3", "--subset", "512", *FLAGS])
    assert summary["complete"] and summary["trials"] == 4 and summary["errored"] == 0
    exp = tmp_path / "every3"
    table = pq.read_table(exp / "results.parquet").to_pandas()
    assert (table["epoch"] == table["training_iteration"]).all()
    for trial_id, rows in table.groupby("trial_id"):
        epochs = sorted(rows["epoch"])
        assert epochs == REPORTED[: len(epochs)], (trial_id, epochs)
        if not rows["stopped_early"].any():
            assert epochs == REPORTED, trial_id
    # the trial-epochs count epochs, not reports: each trial's last reported epoch
    assert summary["trial_epochs"] == int(table.groupby("trial_id")["epoch"].max().sum())
    # the study: one trial each, holding the reported epochs' values, pruned if ASHA stopped it
    by_id = {t.user_attrs["trial_id"]: t for t in study_of(exp).trials}
    assert set(by_id) == set(table["trial_id"])
    for trial_id, rows in table.groupby("trial_id"):
        ot = by_id[trial_id]
        values = dict(zip(rows["epoch"], rows["val_mse"], strict=True))
        assert ot.intermediate_values == pytest.approx(values), trial_id
        pruned = bool(rows["stopped_early"].iloc[0])
        assert ot.state == (TrialState.PRUNED if pruned else TrialState.COMPLETE), trial_id
    best = json.loads((exp / "best.json").read_text())
    payload = checkpoints.load_checkpoint(best["checkpoint"])
    assert payload["epoch"] in REPORTED
    assert [h["epoch"] for h in payload["history"]] == list(range(1, payload["epoch"] + 1))
    assert payload["lineage"][0]["first_epoch"] == 1


def _diverges_at_epoch_5():
    """A trainable that reports epochs 1 and 3 as a trial at --report-every 3 does, then diverges
    in epoch 5. It runs in Ray's workers: a nested function, so Ray ships it by value."""

    def trainable(config):
        for epoch in (1, 3):
            tune.report({"epoch": epoch, "training_iteration": epoch, "val_mse": 0.1})
        raise training.DivergedError(
            "val_mse became nan at epoch 5; the trial diverged",
            epoch=5,
            metrics={"epoch": 5, "val_mse": math.nan},
        )

    return trainable


def test_a_trial_diverging_between_reports_ends_at_its_epoch(local_ray, tmp_path):
    """The result a diverged trial ends with names its epoch, not Tune's count of its reports
    (3 here), which the study would have taken for a rewind and results.parquet for another
    epoch's row. Real Tune, the sweeps' own wrapper."""
    trainable = end_on_divergence(_diverges_at_epoch_5(), "val_mse")
    run = tune.RunConfig(storage_path=str(tmp_path), name="diverges", verbose=0)
    (result,) = tune.Tuner(trainable, run_config=run).fit()
    assert result.metrics["training_iteration"] == 5 and result.metrics[DIVERGED] is True
    assert result.metrics["epoch"] == 5
