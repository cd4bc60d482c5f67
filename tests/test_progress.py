"""What a sweep prints while it runs (sweeps/fit/progress.py): in a log, a line per trial's end cut to
100 columns and the status line whole (its best and elapsed time); on a terminal, a view cut to
100 columns; the best trial picked by best.json's rule. The trials are Tune's own ``Trial`` objects."""

import pytest
from ray.tune.experiment import Trial

from sweeps.fit.progress import WIDTH, SweepProgress
from sweeps.folder.outcome import DIVERGED

SEARCHED = ["optimizer", "lr", "weight_decay", "batch_size", "latent_dim", "momentum"]
CONFIG = dict(optimizer="adam", lr=6.2e-4, weight_decay=1.5e-5, batch_size=256, latent_dim=16)
CONFIG["momentum"] = 0.9


def _trial(trial_id: str, status: str, epoch: int, val_mse: float, **result) -> Trial:
    trial = Trial("train_autoencoder", config=dict(CONFIG), trial_id=trial_id, stub=True)
    trial.set_status(status)
    trial.update_last_result({"training_iteration": epoch, "val_mse": val_mse, **result})
    return trial


def _progress() -> SweepProgress:
    progress = SweepProgress(
        name="ae_sweep",
        experiment="/home/someone/with/a/long/path/to/runs/ae_sweep_with_a_long_name",
        metric="val_mse",
        mode="min",
        max_epochs=20,
        searched=SEARCHED,
        columns=["val_mse"],
    )
    progress.setup(total_samples=1000)
    return progress


def test_a_log_gets_a_line_per_trial_and_the_status_whole(capsys):
    trials = [
        _trial("aaaaa_00000", "TERMINATED", 4, 0.031),
        _trial("aaaaa_00001", "TERMINATED", 20, 0.0171),
        _trial("aaaaa_00002", "RUNNING", 3, 0.021),
    ]
    progress = _progress()
    progress.report(trials, done=False)  # stdout here is captured, not a terminal
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("ae_sweep: trial aaaaa_00000 stopped early at epoch 4/20")
    assert lines[1].startswith("ae_sweep: trial aaaaa_00001 finished at epoch 20/20")
    assert lines[0].endswith(", val_mse 0.031 (optimizer=adam lr=0.00062...")
    assert max(len(lines[0]), len(lines[1])) <= WIDTH  # a trial's line fits; the status, whole:
    status = lines[2]
    assert len(status) > WIDTH and not status.endswith("...")
    assert "2/1000 trials done (1 stopped early, 0 errored, 0 diverged), 1 running" in status
    assert "27/20000 trial-epochs; best val_mse 0.0171 (aaaaa_00001); elapsed 0:00:" in status
    progress.report(trials, done=False)
    assert capsys.readouterr().out == ""  # each end once, the status at most every 30 s


def test_a_terminal_view_fits_100_columns():
    lines = _progress().view([_trial("aaaaa_00001", "RUNNING", 3, 0.0171)])
    assert max(map(len, lines)) <= WIDTH
    assert lines[2].startswith("trial-epochs 3/20000 (0%); best val_mse 0.0171 (aaaaa_00001: ")
    assert lines[2].endswith("...")
    assert lines[3] == "  running aaaaa_00001  epoch 3/20  val_mse 0.0171"


@pytest.mark.parametrize(("mode", "best"), [("min", "aaaaa_00001"), ("max", "aaaaa_00003")])
def test_the_best_is_picked_as_best_json_picks_it(mode, best):
    """Lowest (or highest) finite last value; a diverged trial never; a tie to the lowest id."""
    trials = [
        _trial("aaaaa_00003", "TERMINATED", 5, 0.5),
        _trial("aaaaa_00002", "TERMINATED", 2, 0.01),
        _trial("aaaaa_00001", "RUNNING", 2, 0.01),
        _trial("aaaaa_00000", "TERMINATED", 1, 0.001, **{DIVERGED: True}),
        _trial("aaaaa_00004", "ERROR", 1, float("nan")),
    ]
    progress = _progress()
    progress.mode = mode
    assert progress.best(trials).trial_id == best
    assert progress.best([trials[-1]]) is None


def test_each_step_looks_at_the_open_trials_only(capsys, monkeypatch):
    """Tune asks the reporter at every step of its loop. With thousands of ended trials a scan
    of them all at each step made the driver's time per trial grow with the sweep (0.20 s per
    trial at the start of a 10,000-trial sweep, 0.47 s at 4,000: BENCHMARKS.md, section 6); the
    reporter looks at the trials not yet announced and the new ones, and still announces each
    end once, in Tune's order."""
    from sweeps.fit import progress as progress_module

    trials = [_trial(f"aaaaa_{i:05d}", "TERMINATED", 2, 0.02) for i in range(1000)]
    trials.append(_trial("bbbbb_00000", "RUNNING", 1, 0.03))
    progress = _progress()
    progress.report(trials, done=False)
    assert len(capsys.readouterr().out.splitlines()) == 1001  # 1,000 ends and the status
    looked = []
    real = progress_module.outcome.ended
    monkeypatch.setattr(
        progress_module.outcome, "ended", lambda t: looked.append(t.trial_id) or real(t)
    )
    assert not progress.should_report(trials)
    assert looked == ["bbbbb_00000"]
    trials[-1].set_status("TERMINATED")
    trials.append(_trial("ccccc_00000", "RUNNING", 1, 0.04))
    looked.clear()
    assert progress.should_report(trials)
    progress.report(trials, done=False)
    assert set(looked) == {"bbbbb_00000", "ccccc_00000"}
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("ae_sweep: trial bbbbb_00000 stopped early at epoch 1/20")
