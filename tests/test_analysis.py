"""analysis/report.py on tiny sweep folders built here the way the sweep runner writes them:
checkpoints trained by the real command lines (1-2 epochs on 1,000 images), sweep.json,
best.json and results.parquet written by hand, and an Optuna study with COMPLETE, PRUNED and
FAIL trials in SQLite. Each figure must be a real PNG of readable size, listed in index.html; a
missing input is skipped with a reason; a folder that is neither a sweep nor a checkpoint is a
one-line error with exit status 2."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
import torch

from analysis import report
from models import FMReferenceCNN
from trainables import fid

REPO = Path(__file__).resolve().parents[1]
FAST = ["--max-test-images", "1000", "--tsne-samples", "150", "--fid-samples", "200"]
SWEEP_FIGURES = [
    "optimization_history.png",
    "parallel_coordinate.png",
    "asha_rungs.png",
    "param_importances.png",
    "learning_curves.png",
    "best_trial_curves.png",
]
AE_FIGURES = [
    "reconstructions.png",
    "latent2_trained.png",
    "latent2_untrained.png",
    "interpolation.png",
    "latent_pca.png",
    "latent_tsne.png",
]
CLASSIFIER_FIGURES = ["confusion_matrix.png", "per_class_accuracy.png"]
GAN_FIGURES = ["gan_losses.png", "gan_fid.png", "gan_samples.png", "gan_autoencoder.png"]
GAN_FIGURES += ["gan_compare.png"]
METRICS = {
    "autoencoder": ("val_mse", "min", ("train_mse", "val_mse")),
    "classifier": ("val_acc", "max", ("train_loss", "val_loss", "val_acc")),
    "gan": ("fid", "min", ("d_loss", "g_loss", "fid")),
}


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk of a PNG file; fails if it is not one."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    assert head[12:16] == b"IHDR", f"{path.name} has no IHDR chunk first"
    return struct.unpack(">II", head[16:24])


def assert_report(out: Path, figures: list[str], skipped: list[str] = ()) -> str:
    page = (out / "index.html").read_text()
    for name in figures:
        width, height = png_size(out / name)
        assert width >= 400 and height >= 300, f"{name} is only {width}x{height}"
        assert f'href="{name}"' in page and "data:image/png;base64," in page, name
    for name in skipped:
        assert not (out / name).exists(), name
        assert f"<b>{name}</b>" in page, f"{name} not listed as skipped"
    return page


# ---------------------------------------------------------------------------------------------
# Building sweep folders like the sweep runner's


def write_study(path: Path, name: str, mode: str, trials: list[tuple[str, list[float]]]) -> str:
    """An Optuna study in SQLite: (state, per-epoch values) per trial, searched params drawn."""
    url = f"sqlite:///{path}"
    study = optuna.create_study(
        storage=url,
        study_name=name,
        direction="minimize" if mode == "min" else "maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    space = {
        "lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
        "weight_decay": optuna.distributions.FloatDistribution(1e-6, 1e-3, log=True),
        "batch_size": optuna.distributions.CategoricalDistribution([64, 128, 256]),
    }
    for i, (state, values) in enumerate(trials):
        trial = study.ask(space)
        trial.set_user_attr("trial_id", f"t_{i:05d}")
        for epoch, value in enumerate(values, 1):
            trial.report(value, epoch)
        if state == "COMPLETE":
            study.tell(trial, values[-1])
        else:
            study.tell(trial, state=getattr(optuna.trial.TrialState, state))
    return url


def make_sweep(root: Path, model: str, checkpoint: Path | None, with_study: bool = True) -> Path:
    """A sweep folder following the runner's contract. The best trial (t_00000) has a copy of
    ``checkpoint``'s checkpoint in ``root/best`` (none when ``checkpoint`` is None)."""
    metric, mode, names = METRICS[model]
    root.mkdir(parents=True)
    sign = 1 if mode == "min" else -1
    # (Optuna state, epochs run, stopped early by ASHA) per trial
    plan = [("COMPLETE", 4, False), ("COMPLETE", 4, False), ("PRUNED", 1, True)]
    plan += [("PRUNED", 2, True), ("COMPLETE", 4, False), ("FAIL", 1, False)]
    curves = [
        [0.5 + 0.1 * i + sign * 0.2 / e for e in range(1, n + 1)]
        for i, (_, n, _) in enumerate(plan)
    ]
    rows = []
    for i, ((state, _, stopped), curve) in enumerate(zip(plan, curves, strict=True)):
        for epoch, value in enumerate(curve, 1):
            rows.append(
                {
                    "trial_id": f"t_{i:05d}",
                    "status": "ERROR" if state == "FAIL" else "TERMINATED",
                    "stopped_early": stopped,
                    "epoch": epoch,
                    "training_iteration": epoch,
                    **{n: value * (1.1 if n.startswith("train") else 1.0) for n in names},
                    "config/lr": 1e-3 * (i + 1),
                    "config/batch_size": 128,
                }
            )
    pd.DataFrame(rows).to_parquet(root / "results.parquet")
    storage = f"sqlite:///{root / 'optuna.db'}"
    if with_study:
        states = [state for state, _, _ in plan]
        write_study(root / "optuna.db", root.name, mode, list(zip(states, curves, strict=True)))
    spec = {
        "model": model,
        "script": f"sweeps/{model}_sweep.py",
        "experiment": root.name,
        "metric": metric,
        "mode": mode,
        "search_space": {"lr": "loguniform(1e-4, 1e-2)", "batch_size": "choice([64, 128, 256])"},
        "num_samples": len(plan),
        "max_epochs": 4,
        "scheduler": {
            "name": "ASHA, revising",
            "time_attr": "training_iteration",
            "grace_period": 1,
            "reduction_factor": 2,
        },
        "study_storage": storage,
        "study_name": root.name,
    }
    (root / "sweep.json").write_text(json.dumps(spec, indent=2))
    config, test = {"lr": 1e-3, "batch_size": 128}, {}
    if checkpoint is not None:
        (root / "best").mkdir()
        shutil.copy(checkpoint / "checkpoint.pt", root / "best" / "checkpoint.pt")
        config = torch.load(checkpoint / "checkpoint.pt", weights_only=True)["config"]
        test = json.loads((checkpoint / "test_metrics.json").read_text())
    best = {
        "model": model,
        "experiment": root.name,
        "metric": metric,
        "mode": mode,
        "trial_id": "t_00000",
        "stopped_early": False,
        "config": config,
        "val": {metric: curves[0][-1], "training_iteration": 4},
        "test": test,
        "checkpoint": str(root / "best" / "checkpoint.pt"),
        "study_storage": storage,
        "study_name": root.name,
    }
    (root / "best.json").write_text(json.dumps(best, indent=2))
    (root / f"{model}_t_00000").mkdir()  # Ray's own trial folders live here too
    return root


def fid_weights(folder: Path) -> tuple[str, str]:
    """(weights path, sha256) for FID-FM: the committed weights when present; until they are,
    a seeded untrained stand-in so the GAN code paths run (values then mean nothing)."""
    try:
        fid.load_reference("cpu")
        return str(fid.WEIGHTS_PATH), fid.REFERENCE_SHA256
    except fid.FIDError:
        torch.manual_seed(0)
        path = folder / "fm_reference.pt"
        torch.save(FMReferenceCNN().state_dict(), path)
        return str(path), hashlib.sha256(path.read_bytes()).hexdigest()


GAN_CLI = (
    "import sys, trainables.fid as f; f.WEIGHTS_PATH, f.REFERENCE_SHA256 = sys.argv[1:3]; "
    "from trainables.cli import main; main('gan', sys.argv[3:])"
)


def start(*args: str) -> subprocess.Popen:
    """A command line in the background, one thread each: several run at once on few cores."""
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc: subprocess.Popen) -> None:
    output = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, output[-3000:]


@pytest.fixture(scope="module")
def runs(real_data_dir, tmp_path_factory):
    """Checkpoints from the real command lines, and sweep folders around them."""
    tmp = tmp_path_factory.mktemp("analysis")
    weights = fid_weights(tmp)
    common = ["--subset", "1000", "--data-dir", str(real_data_dir)]
    ae = ["-m", "trainables.autoencoder", "--epochs", "1", *common]
    jobs = [
        start(*ae, "--latent-dim", "2", "--out", str(tmp / "ae2")),
        start(*ae, "--latent-dim", "16", "--out", str(tmp / "ae16")),
    ]
    gan_args = ["--epochs", "2", "--hidden-size", "64", "--fid-samples", "200"]
    gan_args += ["--sample-every", "1", *common, "--out", str(tmp / "gan")]
    jobs.append(start("-c", GAN_CLI, *weights, *gan_args))
    finish(jobs[1])
    clf = start(
        "-m",
        "trainables.classifier",
        "--encoder-checkpoint",
        str(tmp / "ae16"),
        "--epochs",
        "1",
        "--lr",
        "3e-3",
        *common,
        "--out",
        str(tmp / "clf"),
    )
    for job in (jobs[0], jobs[2], clf):
        finish(job)
    return {
        "tmp": tmp,
        "fid_weights": weights,
        "ae2": tmp / "ae2",
        "ae16": tmp / "ae16",
        "clf": tmp / "clf",
        "gan": tmp / "gan",
        "ae_sweep": make_sweep(tmp / "ae_sweep", "autoencoder", tmp / "ae16"),
        "clf_sweep": make_sweep(tmp / "clf_sweep", "classifier", tmp / "clf"),
        "gan_sweep": make_sweep(tmp / "gan_sweep", "gan", tmp / "gan"),
    }


# ---------------------------------------------------------------------------------------------
# Reports of each kind of sweep


@pytest.mark.realdata
@pytest.mark.slow
def test_autoencoder_sweep_report_has_every_figure(runs, capsys):
    out = runs["tmp"] / "ae_report"
    page = report.main(
        [str(runs["ae_sweep"]), "--latent2-checkpoint", str(runs["ae2"]), "--out", str(out), *FAST]
    )
    assert page == out / "index.html"
    html = assert_report(out, SWEEP_FIGURES + AE_FIGURES)
    assert "Skipped figures" not in html
    assert not [line for line in capsys.readouterr().out.splitlines() if line.startswith("skipped")]
    assert "Ankle boot" in html and "val_mse" in html and "t_00000" in html
    assert not (runs["ae_sweep"] / "report").exists()  # --out was honoured


@pytest.mark.realdata
@pytest.mark.slow
def test_classifier_and_gan_sweep_reports(runs, monkeypatch):
    out = runs["tmp"] / "clf_report"
    report.main([str(runs["clf_sweep"]), "--out", str(out), *FAST])
    html = assert_report(out, SWEEP_FIGURES + CLASSIFIER_FIGURES)
    assert "Per-class test accuracy" in html and "Ankle boot" in html

    monkeypatch.setattr(fid, "WEIGHTS_PATH", runs["fid_weights"][0])
    monkeypatch.setattr(fid, "REFERENCE_SHA256", runs["fid_weights"][1])
    ae, other = ["--ae-checkpoint", str(runs["ae_sweep"])], ["--compare-gan", str(runs["gan"])]
    report.main([str(runs["gan_sweep"]), *ae, *other, *FAST])
    out = runs["gan_sweep"] / "report"
    html = assert_report(out, SWEEP_FIGURES + GAN_FIGURES)
    assert "Skipped figures" not in html
    assert "FID-FM against 200 test images" in html, html[-3000:]
    assert "FID-FM not computed" not in html
    assert "test_fid" in html


@pytest.mark.realdata
@pytest.mark.slow
def test_a_checkpoint_alone_gets_its_model_figures(runs):
    """A latent-2 run is its own latent-2 source; no sweep figures are attempted."""
    out = runs["tmp"] / "ae2_report"
    report.main([str(runs["ae2"] / "checkpoint.pt"), "--out", str(out), *FAST])
    html = assert_report(out, ["training_curves.png", *AE_FIGURES])
    assert "Skipped figures" not in html and "optimization_history" not in html


@pytest.mark.realdata
@pytest.mark.slow
def test_missing_inputs_are_skipped_with_a_reason(runs):
    """No Optuna storage and no latent-2 run: the script still writes the report, exit 0."""
    sweep = runs["tmp"] / "ae_sweep_no_study"
    make_sweep(sweep, "autoencoder", runs["ae16"], with_study=False)
    proc = subprocess.run(
        [sys.executable, "analysis/report.py", str(sweep), *FAST],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    skipped = ["optimization_history.png", "parallel_coordinate.png", "param_importances.png"]
    skipped.append("asha_rungs.png")
    skipped.append("latent2_trained.png")
    drawn = [f for f in SWEEP_FIGURES + AE_FIGURES if f not in skipped]
    html = assert_report(sweep / "report", drawn, skipped)
    assert "Skipped figures" in html and "--latent2-checkpoint" in html
    lines = proc.stdout.splitlines()
    assert any(
        line.startswith("skipped optimization_history.png: no Optuna storage") for line in lines
    )
    assert any(
        "skipped latent2_trained.png:" in line and "--latent2-checkpoint" in line for line in lines
    )
    assert not (sweep / "optuna.db").exists()  # reading never creates a database


# ---------------------------------------------------------------------------------------------
# Without the dataset


@pytest.mark.slow
def test_sweep_figures_without_checkpoint_or_data(tmp_path, capsys):
    """A sweep folder whose study storage moved, with no best checkpoint and no dataset: the
    sweep figures come from results.parquet and the study found beside sweep.json; every model
    figure is skipped with what would produce it."""
    sweep = make_sweep(tmp_path / "ae_sweep", "autoencoder", None)
    spec = json.loads((sweep / "sweep.json").read_text())
    spec["study_storage"] = f"sqlite:///{tmp_path / 'moved' / 'optuna.db'}"
    (sweep / "sweep.json").write_text(json.dumps(spec))
    report.main([str(sweep), "--data-dir", str(tmp_path / "no_data")])
    out = capsys.readouterr().out
    html = assert_report(sweep / "report", SWEEP_FIGURES, AE_FIGURES)
    assert "(from results.parquet)" in html
    assert "skipped reconstructions.png: no best checkpoint" in out
    assert "skipped latent2_untrained.png: data directory" in out
    assert not (tmp_path / "moved").exists()  # the stale storage URL was not opened


def test_learning_curves_mark_trials_asha_stopped():
    from analysis import sweep_figures

    frame = pd.DataFrame(
        {
            "trial_id": ["a", "a", "a", "b", "c", "c"],
            "epoch": [1, 2, 3, 1, 1, 2],
            "val_mse": [0.05, 0.03, 0.02, 0.06, 0.05, 0.04],
            "stopped_early": [False, False, False, True, True, True],
        }
    )
    fig = sweep_figures.learning_curves(frame, "val_mse", best_trial_id="a")
    ax = fig.axes[0]
    crosses = [line for line in ax.lines if line.get_marker() == "x" and len(line.get_xdata())]
    assert sorted(float(line.get_xdata()[0]) for line in crosses) == [1.0, 2.0]
    assert "2 stopped early" in ax.get_title()
    assert any("best trial (a)" in t.get_text() for t in ax.get_legend().get_texts())


@pytest.mark.slow
@pytest.mark.parametrize("make", ["empty_dir", "missing", "not_a_checkpoint"])
def test_not_a_sweep_is_a_one_line_error(tmp_path, make):
    target = tmp_path / "runs" / "ae_sweep"
    if make == "empty_dir":
        target.mkdir(parents=True)
    elif make == "not_a_checkpoint":
        target.parent.mkdir()
        target.write_text("not a checkpoint")
    proc = subprocess.run(
        [sys.executable, "analysis/report.py", str(target)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and "; " in err, err
    assert not (target.parent / "report").exists() and not (target / "report").exists()


def test_study_figures_of_a_single_trial_draw_without_warnings():
    """One trial (or trials all alike): no warning at all. Optuna's own parallel-coordinate plot,
    which these figures replace, warned 'identical low and high ylims' on such a study."""
    import warnings

    from analysis import sweep_figures as sf

    table = pd.DataFrame(
        [
            {
                "number": 0,
                "state": "COMPLETE",
                "epoch": 2,
                "value": 0.1,
                "curve": {1: 0.2, 2: 0.1},
                "param/lr": 1e-3,
                "param/optimizer": "adam",
            }
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sf.optimization_history(table, "val_mse", "min", "one")
        sf.parallel_coordinate(table, "val_mse", "min", "one")
        sf.rung_view(table, "val_mse", "min", [1, 2])


def test_the_fid_figure_draws_one_values_spread_as_error_bars():
    """gan_fid.png: an error bar of +-FID_SPREAD_SD at every epoch where FID-FM was computed, and
    none at the epochs that only repeat the last value."""
    from matplotlib.container import ErrorbarContainer

    from analysis import model_figures
    from trainables.fid import FID_SPREAD_SD

    history = pd.DataFrame(
        {"epoch": [1, 2, 3, 4], "fid": [900.0, 900.0, 700.0, 650.0], "fid_epoch": [1, 1, 3, 4]}
    )
    fig = model_figures.gan_fid(history, 640.0, FID_SPREAD_SD)
    (bars,) = [c for c in fig.axes[0].containers if isinstance(c, ErrorbarContainer)]
    segments = bars.lines[2][0].get_segments()
    assert [s[0][0] for s in segments] == [1, 3, 4]
    for ((_, low), (_, high)), value in zip(segments, [900, 700, 650], strict=True):
        assert (low, high) == pytest.approx((value - FID_SPREAD_SD, value + FID_SPREAD_SD))


def test_the_study_storage_is_found_by_the_url_rules_the_sweep_writes_with(tmp_path):
    """A masked database URL asks for --study-storage; a SQLite file that moved with the folder
    is found beside sweep.json; one that exists nowhere is never opened (nor created)."""
    from analysis.sweep_folder import MissingInput, SweepFolder

    masked = SweepFolder(tmp_path, {"study_storage": "postgresql://u:***@127.0.0.1:5/db"}, None)
    with pytest.raises(MissingInput, match="password masked"):
        masked.storage_url()
    open_url = "postgresql://u@127.0.0.1:5/db"  # no password: Optuna may try it as it is
    assert SweepFolder(tmp_path, {"study_storage": open_url}, None).storage_url() == open_url

    moved = SweepFolder(tmp_path, {"study_storage": "sqlite:////gone/optuna.db"}, None)
    with pytest.raises(MissingInput, match="no /gone/optuna.db nor"):
        moved.storage_url()
    (tmp_path / "optuna.db").write_bytes(b"")
    assert moved.storage_url() == f"sqlite:///{(tmp_path / 'optuna.db').resolve()}"
    assert not Path("/gone/optuna.db").exists()
    # a moved journal (what sweeps write now) is found by sweep.json's study_file
    record = {"study_storage": "journal:////gone/optuna.journal", "study_file": "optuna.journal"}
    (tmp_path / "optuna.journal").write_bytes(b"")
    journal = SweepFolder(tmp_path, record, None).storage_url()
    assert journal == f"journal:///{(tmp_path / 'optuna.journal').resolve()}"
    # a file found by its recorded name keeps the recorded kind, whatever its suffix
    (tmp_path / "study.sqlite").write_bytes(b"")
    record = {"study_storage": "sqlite:////gone/study.sqlite", "study_file": None}
    found = SweepFolder(tmp_path, record, None).storage_url()
    assert found == f"sqlite:///{(tmp_path / 'study.sqlite').resolve()}"
