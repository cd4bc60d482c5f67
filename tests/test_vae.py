"""The fourth model kind, a VAE (``models/vae.py``, ``trainables/vae.py``, ``sweeps/vae_sweep.py``),
as docs/adding-a-model.md adds one: the framework finds it (``trainables/kinds.py``), its smoke
sweep learns, the report draws the autoencoder's figures of its codes and the GAN's of its
samples, and the classifier builds on its encoder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
from helpers import mean_image_mse, study_of

from analysis import figures, report
from sweeps import vae_sweep
from trainables import data, kinds, load_model, module_for

REPO = Path(__file__).resolve().parents[1]
FAST = ["--max-test-images", "1000", "--tsne-samples", "150", "--fid-samples", "200"]


def test_every_model_kind_is_found_with_what_the_framework_calls():
    assert set(kinds()) == {"autoencoder", "classifier", "gan", "vae"}
    for name, kind in kinds().items():
        module = module_for(name)
        for attr in ("CONFIG", "TRAINABLE", "PRESETS", "load_model", "evaluate_checkpoint"):
            assert hasattr(module, attr), (name, attr)
        assert set(kind.figures) <= set(figures.FAMILIES), (name, kind.figures)
        if "autoencoder" in kind.figures or kind.encoder:
            assert kind.build is not None and hasattr(kind.build(latent_dim=2), "encoder")


@pytest.mark.slow  # a subprocess
def test_the_command_line_lists_every_kind():
    usage = subprocess.run(
        [sys.executable, "-m", "trainables"], capture_output=True, text=True, cwd=REPO
    )
    assert usage.returncode == 2 and "autoencoder,classifier,gan,vae" in usage.stderr


@pytest.fixture(scope="module")
def vae_smoke(local_ray, tmp_path_factory):
    storage = tmp_path_factory.mktemp("vae")
    argv = ["--smoke-test", "--wandb-mode", "disabled", "--storage-path", str(storage)]
    return vae_sweep.main(argv), storage / "vae_sweep_smoke"


@pytest.mark.slow
@pytest.mark.realdata
def test_the_vae_smoke_sweep_learns_and_its_study_holds_every_trial(vae_smoke, real_data_dir):
    summary, exp = vae_smoke
    assert summary["complete"] and summary["trials"] == 4 and summary["errored"] == 0
    table = pd.read_parquet(exp / "results.parquet")
    subset = int(table["config/subset"].iloc[0])
    baseline = mean_image_mse(data.load_splits(real_data_dir, subset=subset))
    best = table[table["trial_id"] == summary["best"]["trial_id"]].sort_values("epoch")
    assert best["val_mse"].iloc[-1] <= 0.5 * baseline, (best["val_mse"].tolist(), baseline)
    assert best["val_elbo"].iloc[-1] > best["val_elbo"].iloc[0]  # the ELBO rose ...
    assert best["fid"].iloc[-1] < best["fid"].iloc[0]  # ... and the prior's samples improved
    assert summary["best"]["val"]["val_elbo"] == table["val_elbo"].max()  # mode max
    test = summary["best"]["test"]
    assert test["test_elbo"] < 0 and test["test_fid"] > 0 and 0 < test["test_mse"] < baseline
    study = study_of(exp)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert len(study.trials) == 4 and all(t.value is not None for t in study.trials)
    warm = vae_sweep.WARM_STARTS["report"]
    assert study.trials[0].params == {k: warm[k] for k in study.trials[0].params}
    loaded = load_model(exp)  # the README's call works for the new kind too
    assert loaded.kind == "vae" and loaded.model.latent_dim == loaded.config["latent_dim"]


@pytest.mark.slow
@pytest.mark.realdata
def test_the_vae_report_draws_its_codes_and_its_samples(vae_smoke, tmp_path):
    _, exp = vae_smoke
    out = tmp_path / "report"
    # --compare-gan takes any kind that draws samples: here the sweep's own best beside itself
    report.main([str(exp), "--out", str(out), "--compare-gan", str(exp), *FAST])
    for name in ("reconstructions.png", "latent2_untrained.png", "interpolation.png"):
        assert (out / name).is_file(), name
    for name in ("latent_pca.png", "latent_tsne.png", "vae_fid.png", "vae_samples.png"):
        assert (out / name).is_file(), name
    assert (out / "vae_compare.png").is_file()
    page = (out / "index.html").read_text()
    assert "VAE" in page and "gan_losses.png" not in page  # no GAN-only figure


@pytest.mark.slow
@pytest.mark.realdata
def test_a_classifier_builds_on_the_vae_encoder(vae_smoke, tmp_path):
    _, exp = vae_smoke
    out = tmp_path / "clf"
    proc = subprocess.run(
        [sys.executable, "-m", "trainables.classifier", "--encoder-checkpoint", str(exp / "best")]
        + ["--epochs", "1", "--subset", "2000", "--batch-size", "64", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = load_model(out)
    assert payload.kind == "classifier" and payload.metrics["val_acc"] > 0.3
