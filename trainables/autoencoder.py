"""Ray Tune trainable for the report's convolutional autoencoder (metric: per-pixel MSE on [0, 1]).

    python -m trainables.autoencoder --latent-dim 16 --epochs 60 --out runs/ae
    python -m trainables.autoencoder --preset report --out runs/ae_report

Inside Tune: ``tune.with_parameters(train_autoencoder, data=splits)``; each epoch reports
``train_mse`` and ``val_mse`` with a checkpoint. The test split is only read by
``evaluate_checkpoint``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from models import ConvAutoencoder
from trainables import checkpoints, training
from trainables.config import TrainConfig, check_field, param
from trainables.data import DeviceSplit, Splits
from trainables.kinds import ModelKind
from trainables.optim import make_optimizer

KIND = "autoencoder"
MODEL_KIND = ModelKind(
    KIND,
    curves=(("per-pixel MSE", ("train_mse", "val_mse")),),
    figures=("autoencoder",),
    build=ConvAutoencoder,
    encoder=True,
)


@dataclass
class AutoencoderConfig(TrainConfig):
    latent_dim: int = param(16, "size of the latent code (2 for the latent-space figures)")
    epochs: int = param(20, "epochs to train; ASHA may stop a trial earlier")
    batch_size: int = param(256, "images per optimiser step")
    lr: float = param(1e-3, "Adam/SGD learning rate per step of batch_size images")

    FIXED_ON_RESUME: ClassVar[tuple[str, ...]] = (*TrainConfig.FIXED_ON_RESUME, "latent_dim")

    def validate(self) -> None:
        super().validate()
        check_field(self, self.latent_dim >= 1, "latent_dim", "must be at least 1")


# The report's section I.B best model: Adam, lr 0.00099, weight decay 3.5237e-5, 60 epochs.
PRESETS = {
    "report": dict(latent_dim=16, optimizer="adam", lr=0.00099, weight_decay=3.5237e-5, epochs=60),
}
REPORT_TEST_MSE = 0.017237  # that model's test MSE in the report (section I.B)


def reconstruction_loss(model, x, _y):
    return F.mse_loss(model(x).float(), x)


def train_epoch(model, optimizer, data: DeviceSplit, cfg, generator, device) -> float:
    """One epoch of per-pixel MSE; returns the epoch's mean training MSE."""
    return training.train_epoch(model, optimizer, data, cfg, generator, device, reconstruction_loss)


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
    run = training.start(KIND, cfg, data, reporter)

    def build() -> dict[str, Any]:
        model = ConvAutoencoder(cfg.latent_dim).to(run.device)
        return {"model": model, "optimizer": make_optimizer(cfg, model.parameters())}

    modules, restored = training.initialise(run, build)
    model, optimizer = modules["model"], modules["optimizer"]
    # its size, constant: costs a sweep's --objectives may weigh against val_mse
    size = {"latent_dim": cfg.latent_dim, "params": training.count_parameters(model)}

    def one_epoch(epoch: int, generator, history) -> dict[str, float]:
        train_mse = train_epoch(model, optimizer, run.train, cfg, generator, run.device)
        return {"train_mse": train_mse, "val_mse": evaluate(model, run.val), **size}

    training.run_epochs(run, modules, restored, {"latent_dim": cfg.latent_dim}, one_epoch)


CONFIG = AutoencoderConfig
TRAINABLE = train_autoencoder


def load_model(path, map_location="cpu") -> tuple[ConvAutoencoder, dict[str, Any]]:
    """The trained autoencoder in a checkpoint, in eval mode, with the checkpoint's payload."""
    return checkpoints.load_model(
        path, KIND, lambda args: ConvAutoencoder(**args), "model", map_location
    )


def score_test(model, test: DeviceSplit, cfg=None) -> dict[str, float]:
    """``evaluate_checkpoint``'s metrics of ``model`` on the test split (``cfg`` is not needed)."""
    return {"test_mse": evaluate(model, test)}


def evaluate_checkpoint(path, data: Splits | None = None, device: str = "auto") -> dict[str, float]:
    """Test-split MSE of a checkpoint: the only place the test images are used."""
    return checkpoints.evaluate_checkpoint(path, load_model, CONFIG, score_test, data, device)


if __name__ == "__main__":
    from trainables.cli import main

    main(KIND)
