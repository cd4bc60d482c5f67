"""Learning checks: each model, trained for real on a small but sufficient budget of real
FashionMNIST, does clearly better than a model that learns nothing. The smoke sweeps prove that
the pieces fit together; these prove that training trains: a broken training loop, a head frozen
by mistake, a detached loss or a learning rate that never reaches the optimiser fails here.

- the autoencoder beats predicting the mean training image, on the same validation images;
- the classifier on a briefly trained encoder beats chance (10%) by a wide margin, frozen and
  finetune;
- the GAN's FID-FM falls over its first epochs on the full training set;
- the classifier sweep's --smoke-test, given no encoder, trains one first and its trials learn.

Budgets and bounds were measured on 2 CPU cores (numbers beside each); each bound leaves a wide
margin, and each check fails when the same run is made with learning rates of 1e-9 (checked by
hand: the autoencoder then ends at val_mse 0.148 against the mean image's 0.088, the classifier
at 10.0% frozen and finetune, the GAN's FID-FM at its untrained 1501 every epoch; the smoke
sweep fails when given an untrained encoder). About a minute in all on 2 cores: the GAN ~30 s,
the smoke sweep 16 s (35 s on busy cores), the rest ~6 s."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from models import Generator
from trainables import autoencoder, classifier, data, devices, fid, gan, reporting

pytestmark = [pytest.mark.slow, pytest.mark.realdata]

REPO = Path(__file__).resolve().parents[1]
SUBSET = 8000  # training images for the autoencoder and the classifier (val shrinks to 727)


class Collect(reporting.FolderReporter):
    """The trainable's own folder reporter, keeping each epoch's metrics for the test to read."""

    def __init__(self, out):
        super().__init__(out, verbose=False)
        self.metrics: list[dict] = []

    def report(self, metrics, payload):
        super().report(metrics, payload)
        self.metrics.append(metrics)


@pytest.fixture(scope="module")
def splits(real_data_dir):
    return data.load_splits(real_data_dir, subset=SUBSET)


@pytest.fixture(scope="module")
def encoder(splits, tmp_path_factory):
    """An autoencoder trained briefly: 3 epochs of batch 64 at lr 2e-3 (375 steps, ~3 s);
    val_mse 0.0636, 0.0310, 0.0265 by epoch."""
    out = tmp_path_factory.mktemp("learning") / "ae"
    reporter = Collect(out)
    config = {"epochs": 3, "batch_size": 64, "lr": 2e-3, "latent_dim": 16, "subset": SUBSET}
    autoencoder.train_autoencoder(config, splits, reporter)
    return out, reporter.metrics


def mean_image_mse(splits) -> float:
    """Per-pixel MSE on the validation images of predicting the mean training image: what an
    autoencoder that learned nothing about each image scores at best (~0.088 here)."""
    train = splits.train_x.double() / 255
    val = splits.val_x.double() / 255
    return ((val - train.mean(0)) ** 2).mean().item()


def test_autoencoder_clearly_beats_the_mean_image(splits, encoder):
    _, history = encoder
    baseline = mean_image_mse(splits)
    assert 0.05 < baseline < 0.15  # FashionMNIST's spread around its mean image
    val_mse = history[-1]["val_mse"]
    assert val_mse < 0.5 * baseline, (
        f"val_mse {val_mse:.4f} after {len(history)} epochs does not clearly beat the mean "
        f"image's {baseline:.4f}: the autoencoder is not learning"
    )
    assert history[-1]["train_mse"] < history[0]["train_mse"]


@pytest.mark.parametrize("mode", ["frozen", "finetune"])
def test_classifier_on_a_briefly_trained_encoder_beats_chance(splits, encoder, mode, tmp_path):
    """3 epochs of batch 64 at lr 2e-3: val_acc 0.757 frozen, 0.762 finetune (chance 0.1)."""
    encoder_dir, _ = encoder
    reporter = Collect(tmp_path / mode)
    config = {
        "encoder_checkpoint": str(encoder_dir),
        "mode": mode,
        "epochs": 3,
        "batch_size": 64,
        "lr": 2e-3,
        "subset": SUBSET,
    }
    classifier.train_classifier(config, splits, reporter)
    val_acc = reporter.metrics[-1]["val_acc"]
    assert val_acc >= 0.6, (
        f"{mode}: val_acc {val_acc:.3f}; chance is 0.1, so the head is not learning"
    )
    assert reporter.metrics[-1]["train_loss"] < 2.0  # ln 10 = 2.30 is a uniform guess


def test_gan_fid_fm_falls_over_its_first_epochs(real_data_dir, tmp_path):
    """The full training set (55,000 images), a small GAN (hidden 256, latent 64, batch 64, lr
    1e-3), FID-FM on 2,000 samples each side (not the 5,000 standard: cheaper, and only the trend
    matters here). Measured: FID-FM 1066, 780, 670 over epochs 1-3 (untrained: 1501); ~30 s."""
    splits = data.load_splits(real_data_dir)
    config = {
        "epochs": 3,
        "hidden_size": 256,
        "latent_size": 64,
        "batch_size": 64,
        "lr": 1e-3,
        "fid_samples": 2000,
        "sample_every": 100,
    }
    cfg = gan.GANConfig.from_dict(config)
    devices.seed_epoch(cfg, 0, torch.device("cpu"))  # the generator train_gan starts from
    untrained = Generator(cfg.latent_size, cfg.hidden_size)
    real = fid.real_stats(splits.val_x, "cpu", n=cfg.fid_samples)
    before = fid.fid_from_generator(untrained, cfg.latent_size, cfg.fid_samples, real, "cpu")

    reporter = Collect(tmp_path / "gan")
    gan.train_gan(config, splits, reporter)
    fids = [m["fid"] for m in reporter.metrics]
    assert [m["fid_epoch"] for m in reporter.metrics] == [1, 2, 3]
    assert fids[-1] < fids[0] and fids[-1] < 0.6 * before, (
        f"FID-FM untrained {before:.0f}, then {[round(f) for f in fids]} over epochs 1-3: "
        "the GAN is not learning"
    )


def test_classifier_smoke_sweep_starts_from_an_encoder_that_has_learned(real_data_dir, tmp_path):
    """`python sweeps/classifier_sweep.py --smoke-test` as a user runs it, with no encoder: it
    trains a quick one first (one line says so) and its trials learn. Measured: trials 0.33-0.70
    val_acc, best 0.702 (test 0.675, every class predicted); given an untrained encoder instead
    (one epoch at lr 1e-9), all four trials sat at 9.9% and all 10,000 test images went to one
    class. ~16 s on idle cores."""
    proc = subprocess.run(
        [sys.executable, "sweeps/classifier_sweep.py", "--smoke-test"]
        + ["--storage-path", str(tmp_path), "--wandb-mode", "disabled"],
        cwd=REPO,
        env={**os.environ, "LATENTSWEEP_DATA": str(real_data_dir)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    encoder = tmp_path / "classifier_sweep_smoke_encoder" / "checkpoint.pt"
    (said,) = [line for line in proc.stdout.splitlines() if "without an encoder: trained" in line]
    assert str(encoder.parent) in said
    best = json.loads((tmp_path / "classifier_sweep_smoke" / "best.json").read_text())
    assert best["config"]["encoder_checkpoint"] == str(encoder)
    assert best["val"]["val_acc"] >= 0.5, best["val"]
    predicted = [sum(column) for column in zip(*best["test"]["confusion_matrix"], strict=True)]
    assert max(predicted) < 0.3 * sum(predicted), predicted  # not one class for everything
