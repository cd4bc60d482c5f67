"""Ray Tune trainable for the report's convolutional autoencoder (metric: per-pixel MSE on [0, 1]).

    python -m trainables.autoencoder --latent-dim 16 --epochs 60 --out runs/ae
    python -m trainables.autoencoder --preset report --out runs/ae_report

Inside Tune: ``tune.with_parameters(train_autoencoder, data=splits)``; each epoch reports
``train_mse`` and ``val_mse`` with a checkpoint. The test split is only read by
``evaluate_checkpoint``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from models import ConvAutoencoder
from trainables import core
from trainables.data import DeviceSplit, Splits, load_splits

KIND = "autoencoder"


@dataclass
class AutoencoderConfig(core.TrainConfig):
    latent_dim: int = core.param(16, "size of the latent code (2 for the latent-space figures)")
    epochs: int = core.param(20, "epochs to train; ASHA may stop a trial earlier")
    batch_size: int = core.param(256, "images per optimiser step")
    lr: float = core.param(1e-3, "Adam/SGD learning rate per step of batch_size images")

    def validate(self) -> None:
        super().validate()
        core._check(self, self.latent_dim >= 1, "latent_dim", "must be at least 1")


# The report's section I.B best model: Adam, lr 0.00099, weight decay 3.5237e-5, 60 epochs.
PRESETS = {
    "report": dict(latent_dim=16, optimizer="adam", lr=0.00099, weight_decay=3.5237e-5, epochs=60),
}


def reconstruction_loss(model, x, _y):
    return F.mse_loss(model(x).float(), x)


def train_epoch(model, optimizer, data: DeviceSplit, cfg, generator, device) -> float:
    """One epoch of per-pixel MSE; returns the epoch's mean training MSE."""
    return core.train_epoch(model, optimizer, data, cfg, generator, device, reconstruction_loss)


@torch.no_grad()
def evaluate(model, data: DeviceSplit, batch_size: int = 1000) -> float:
    """Per-pixel MSE over the whole split (the report's metric)."""
    model.eval()
    total = torch.zeros((), device=data.device)
    for x, _ in data.batches(batch_size, shuffle=False):
        total += F.mse_loss(model(x), x, reduction="sum")
    return (total / (len(data) * 28 * 28)).item()


def train_autoencoder(config: dict[str, Any], data: Splits | None = None, reporter=None) -> None:
    cfg = AutoencoderConfig.from_dict(config)
    core.set_determinism(cfg)  # before any CUDA work
    reporter = reporter or core.TuneReporter()
    data = data or load_splits(cfg.data_dir, cfg.val_size, cfg.data_seed, cfg.subset)
    device = core.resolve_device(cfg.device)
    train, val = (
        DeviceSplit(data.train_x, data.train_y, device),
        DeviceSplit(data.val_x, data.val_y, device),
    )

    core.seed_epoch(cfg, 0, device)
    model = ConvAutoencoder(cfg.latent_dim).to(device)
    optimizer = core.make_optimizer(cfg, model.parameters())
    modules = {"model": model, "optimizer": optimizer}
    start, history, _ = core.restore_into(reporter, modules, KIND)

    for epoch in range(start + 1, cfg.epochs + 1):
        generator = core.seed_epoch(cfg, epoch, device)
        core.set_epoch_lr(optimizer, cfg, epoch)
        train_mse = train_epoch(model, optimizer, train, cfg, generator, device)
        metrics = {"epoch": epoch, "train_mse": train_mse, "val_mse": evaluate(model, val)}
        core.check_finite(metrics, epoch)
        history.append(metrics)
        payload = core.checkpoint_payload(
            KIND, cfg, {"latent_dim": cfg.latent_dim}, epoch, history, core.state_of(modules)
        )
        reporter.report(metrics, payload)


CONFIG = AutoencoderConfig
TRAINABLE = train_autoencoder


def load_model(path, map_location="cpu") -> tuple[ConvAutoencoder, dict[str, Any]]:
    """The trained autoencoder in a checkpoint, in eval mode, with the checkpoint's payload."""
    return core.load_model(path, KIND, lambda args: ConvAutoencoder(**args), "model", map_location)


def score_test(model, test: DeviceSplit, cfg=None) -> dict[str, float]:
    """``evaluate_checkpoint``'s metrics of ``model`` on the test split (``cfg`` is not needed)."""
    return {"test_mse": evaluate(model, test)}


def evaluate_checkpoint(path, data: Splits | None = None, device: str = "auto") -> dict[str, float]:
    """Test-split MSE of a checkpoint: the only place the test images are used."""
    return core.evaluate_checkpoint(path, load_model, CONFIG, score_test, data, device)


if __name__ == "__main__":
    from trainables.cli import main

    main(KIND)
