"""Population Based Bandits (``--scheduler pb2``): the bounds its GP bandit gets from a script's
PERTURBATIONS (lists left out), no check at a trial's last epoch (as for PBT), bad PB2 flags one
line, and a real PB2 sweep (the autoencoder script, smoke-sized) that exploits and explores
inside the bounds."""

import json
import math

import pandas as pd
import pytest
from ray import tune

from sweeps import ae_sweep, classifier_sweep, gan_sweep
from sweeps.search.pb2 import pb2_bounds
from tests.helpers import pbt_checked_epochs


def test_pb2_bounds_each_continuous_axis_and_leaves_the_lists_out():
    """The GAN's axes: lr_g, lr_d and beta1 bounded as written; batch_size and d_steps (lists)
    not bounded (Ray would refuse a list of three, and read [1, 2] as a continuous range); an
    integer axis spans its highest value too (Ray truncates a proposal to int)."""
    assert pb2_bounds(gan_sweep.PERTURBATIONS["default"]) == {
        "lr_g": [5e-5, 1e-3],
        "lr_d": [5e-5, 1e-3],
        "beta1": [0.0, 0.9],
    }
    assert pb2_bounds({"n": tune.randint(1, 4), "q": tune.qrandint(2, 8, 2)}) == {
        "n": [1, 4],  # samples 1..3
        "q": [2, 9],  # samples 2..8
    }


def _settings(argv, tmp_path):
    from sweeps.request import cli

    argv = [*argv, "--storage-path", str(tmp_path)]
    return cli.parse_settings(ae_sweep.SWEEP, cli.build_parser(ae_sweep.SWEEP), argv)


def test_pb2_makes_no_check_at_a_trials_last_epoch(tmp_path):
    """The sweep's PB2 (its strategy's scheduler, --max-epochs 4) shares PBT's rule: the last
    epoch's result is no check, so no trial is cloned from a final checkpoint."""
    from sweeps.search.pb2 import PB2ToMaxEpochs
    from sweeps.search.strategies import strategy_for

    argv = ["--scheduler", "pb2", "--max-epochs", "4", "--perturbation-interval", "1"]
    settings = _settings(argv, tmp_path)
    pb2 = strategy_for(settings).scheduler(settings, dict(ae_sweep.PERTURBATIONS["report"]))
    assert isinstance(pb2, PB2ToMaxEpochs)
    assert pbt_checked_epochs(pb2, {"lr": 1e-3, "weight_decay": 1e-4}) == [1, 2, 3, 3]


# ---------------------------------------------------------------------------------------------
# Bad PB2 flags: one line, exit 2, before Ray starts


def _one_line_error(main, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and "; " in err[0], err
    return err[0]


def test_a_perturbation_space_of_lists_only_refuses_pb2(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(ae_sweep.PERTURBATIONS, "report", {"batch_size": [64, 128, 256]})
    argv = ["--scheduler", "pb2", "--storage-path", str(tmp_path)]
    assert _one_line_error(ae_sweep.main, argv, capsys) == (
        "error: --scheduler pb2: PERTURBATIONS['report'] of sweeps/ae_sweep.py has no "
        "continuous axis for PB2 to bound (its lists, batch_size, are only copied from a "
        "donor); use --scheduler pbt, or write an axis as tune.uniform/tune.loguniform"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--num-samples", "1"], "--scheduler pb2 with --num-samples 1: a population of one"),
        (["--max-epochs", "3", "--perturbation-interval", "3"], "(PB2 decides every N epochs"),
        (["--study-storage", "sqlite:///x.db"], "--scheduler pb2: PB2 keeps no Optuna study"),
    ],
)
def test_pbts_checks_name_pb2(argv, expected, tmp_path, capsys):
    line = _one_line_error(
        ae_sweep.main, ["--scheduler", "pb2", "--storage-path", str(tmp_path), *argv], capsys
    )
    assert expected in line


def test_a_sweep_without_a_perturbation_space_refuses_pb2(tmp_path, capsys):
    line = _one_line_error(
        classifier_sweep.main, ["--scheduler", "pb2", "--storage-path", str(tmp_path)], capsys
    )
    assert line.startswith(
        "error: --scheduler pb2: sweeps/classifier_sweep.py has no perturbation space"
    )


# ---------------------------------------------------------------------------------------------
# A real PB2 sweep, smoke-sized


@pytest.mark.slow
@pytest.mark.realdata
def test_pb2_sweep_exploits_and_explores_inside_the_bounds(local_ray, tmp_path, capsys):
    """The autoencoder's wide space under synchronous PB2: 2 trials of 4 epochs, a decision
    for both after every epoch but the last, the worse cloning the better. Ray records the
    exploits, the lineage is in results.parquet, every value in force stays inside the script's
    bounds and batch_size, a list, is left to the donor.

    PB2 explores a clone (its GP bandit's lr and weight decay, not the donor's) only once the
    donor has trained an interval with unchanged values (``sweeps/search/pb2.py``). With
    --synch this is certain by the third decision whatever the metric does: at the first no
    trial has (the clone copies its donor's values), at the second the first decision's donor
    has; if the first clone was the donor then, its values were copied and both trials have an
    unchanged interval at the third. Asynchronous PB2 gives no such bound: a donor may be an
    interval behind (CI's run on 7295973 saw 4 trials whose every clone copied)."""
    argv = ["--smoke-test", "--scheduler", "pb2", "--space", "wide", "--max-epochs", "4"]
    argv += ["--num-samples", "2", "--max-concurrent", "2", "--quantile-fraction", "0.5"]
    argv += ["--synch"]
    argv += ["--storage-path", str(tmp_path), "--wandb-mode", "disabled"]
    summary = ae_sweep.main(argv)
    printed = capsys.readouterr().out
    exp = tmp_path / "ae_sweep_smoke"
    assert summary["complete"] and summary["errored"] == 0 and summary["trials"] == 2
    assert "Population Based Bandits" in printed and "batch_size not explored" in printed
    assert " PB2 exploits" in printed

    sweep = json.loads((exp / "sweep.json").read_text())
    scheduler = sweep["scheduler"]
    assert scheduler["name"] == "PB2" and sweep["study_storage"] is None and scheduler["synch"]
    bounds = ae_sweep.PERTURBATIONS["wide"]
    assert scheduler["hyperparam_bounds"] == {
        key: [bounds[key].lower, bounds[key].upper] for key in ("lr", "weight_decay")
    }
    assert scheduler["not_explored"] == ["batch_size"]
    assert not (exp / "optuna.db").exists() and not (exp / "optuna.journal").exists()
    exploits = (exp / "pbt_global.txt").read_text().splitlines()  # Ray's own record
    assert exploits, "PB2 exploited no trial; the smoke budget is too small"

    table = pd.read_parquet(exp / "results.parquet")
    assert table.groupby("trial_id")["epoch"].max().eq(4).all()
    for key in ("lr", "weight_decay"):
        low, high = scheduler["hyperparam_bounds"][key]
        assert table[f"config/{key}"].between(low, high).all(), table[f"config/{key}"]
    assert table["config/batch_size"].eq(32).all()  # the smoke's, never explored

    cloned = table.dropna(subset=["cloned_from"])
    exploits = cloned.drop_duplicates(["trial_id", "cloned_from", "cloned_epoch"])
    # one clone at each decision (epochs 1, 2, 3), each from the donor's checkpoint of that epoch
    assert summary["exploits"] == len(exploits) == 3
    assert sorted(exploits["cloned_epoch"]) == [1, 2, 3]
    # A clone's first rows after the exploit hold the values PB2 chose: the donor's at the first
    # decision, the GP's (more than float32 rounding away, Ray's GP works in float32) by the third.
    explored = {}
    for (_trial_id, donor, k), rows in cloned.groupby(["trial_id", "cloned_from", "cloned_epoch"]):
        assert rows["epoch"].min() == k + 1
        donor_row = table[(table["trial_id"] == donor) & (table["epoch"] == k)].iloc[0]
        first = rows.sort_values("epoch").iloc[0]
        explored[int(k)] = any(
            not math.isclose(donor_row[f"config/{key}"], first[f"config/{key}"], rel_tol=1e-6)
            for key in ("lr", "weight_decay")
        )
    assert not explored[1] and (explored[2] or explored[3]), (
        explored,
        table[["trial_id", "epoch", "cloned_from", "config/lr", "config/weight_decay"]],
    )
