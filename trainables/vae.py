"""Ray Tune trainable for a variational autoencoder with the report's encoder and decoder
(``models/vae.py``), scored by its validation ELBO (higher is better).

    python -m trainables.vae --latent-dim 16 --epochs 30 --out runs/vae
    python -m trainables.vae --preset report --out runs/vae_report

Each epoch reports ``train_elbo`` (the training objective's ELBO, with ``beta`` weighting the
KL term), ``val_elbo`` (the true ELBO, beta 1, in nats per image, from one seeded draw of each
image's code), ``val_kl`` and ``val_mse`` (the posterior mean's reconstruction, as the
autoencoder's ``val_mse``), and ``fid``: FID-FM of ``fid_samples`` images decoded from the prior
against as many validation images, every ``fid_every`` epochs and at the last (the other
epochs repeat the last value, as the GAN's do). Checkpoints keep 64 fixed-prior samples every
``sample_every`` epochs for the figures. The test split is only read by ``evaluate_checkpoint``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from models.vae import VAE, PriorSampler
from trainables import checkpoints, sampling, training
from trainables.config import TrainConfig, check_field, param
from trainables.data import DeviceSplit, Splits
from trainables.kinds import ModelKind
from trainables.optim import make_optimizer
from trainables.sampling import EpochSamples, SampledConfig

KIND = "vae"
EVAL_SEED = 2024  # the codes drawn for val_elbo and test_elbo: the same at every epoch

MODEL_KIND = ModelKind(
    KIND,
    curves=(
        ("ELBO, nats per image (higher is better)", ("train_elbo", "val_elbo")),
        ("FID-FM of prior samples (lower is better)", ("fid",)),
    ),
    figures=("autoencoder", "generator"),
    build=VAE,
    encoder=True,
    label="VAE",
)


@dataclass
class VAEConfig(SampledConfig):
    latent_dim: int = param(16, "size of the latent code")
    epochs: int = param(20, "epochs to train; ASHA may stop a trial earlier")
    batch_size: int = param(128, "images per optimiser step")
    lr: float = param(1e-3, "Adam/SGD learning rate per step of batch_size images")
    beta: float = param(1.0, "weight of the KL term in the training loss (val_elbo uses 1)")
    fid_every: int = param(  # not the GAN's 1: ASHA judges a VAE by val_elbo, not FID-FM
        5, "compute FID-FM every N epochs (and at the first and last); others repeat the last"
    )

    FIXED_ON_RESUME: ClassVar[tuple[str, ...]] = (*TrainConfig.FIXED_ON_RESUME, "latent_dim")

    def validate(self) -> None:
        super().validate()
        _c = check_field
        _c(self, self.latent_dim >= 1, "latent_dim", "must be at least 1")
        _c(self, self.beta > 0, "beta", "must be positive")


# The report has no VAE: "report" is its autoencoder's optimiser (section I.B: Adam, lr 0.00099,
# weight decay 3.5237e-5) on the same encoder and decoder.
PRESETS = {
    "report": dict(latent_dim=16, optimizer="adam", lr=0.00099, weight_decay=3.5237e-5, epochs=60),
}


def elbo_terms(model: VAE, x: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per image: the Bernoulli reconstruction's negative log-likelihood and the KL divergence
    of the posterior from N(0, I), in nats, from the codes mean + sd * ``noise``."""
    mean, logvar = model.posterior(x)
    z = mean + torch.exp(0.5 * logvar) * noise
    logits = model.decoder_logits(z).float()
    nll = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    kl = 0.5 * (mean.float().pow(2) + logvar.float().exp() - 1 - logvar.float()).sum(1)
    return nll, kl


def train_epoch(model: VAE, optimizer, data: DeviceSplit, cfg: VAEConfig, rng, device) -> float:
    """One epoch of the beta-weighted negative ELBO; returns the epoch's mean training ELBO
    (with beta) per image, one host sync."""

    def loss(model, x, _y):
        nll, kl = elbo_terms(model, x, torch.randn(len(x), cfg.latent_dim, device=device))
        return (nll + cfg.beta * kl).mean()

    return -training.train_epoch(model, optimizer, data, cfg, rng, device, loss)


@torch.no_grad()
def evaluate(model: VAE, data: DeviceSplit, batch_size: int = 1000) -> dict[str, float]:
    """ELBO (beta 1) and KL per image from codes drawn with ``EVAL_SEED``, and the posterior
    mean's per-pixel MSE, over the whole split; one host sync."""
    model.eval()
    rng = torch.Generator(device=data.device).manual_seed(EVAL_SEED)
    totals = torch.zeros(3, device=data.device)
    for x, _ in data.batches(batch_size, shuffle=False):
        noise = torch.randn(len(x), model.latent_dim, generator=rng, device=data.device)
        nll, kl = elbo_terms(model, x, noise)
        mse = F.mse_loss(model(x), x, reduction="sum")
        totals += torch.stack([(nll + kl).sum(), kl.sum(), mse])
    nelbo, kl, mse = (totals / len(data)).tolist()
    return {"elbo": -nelbo, "kl": kl, "mse": mse / (28 * 28)}


def train_vae(config: dict[str, Any], data: Splits | None = None, reporter=None) -> None:
    cfg = VAEConfig.from_dict(config)
    run = training.start(KIND, cfg, data, reporter)
    device = run.device

    def build() -> dict[str, Any]:
        model = VAE(cfg.latent_dim).to(device)
        return {"model": model, "optimizer": make_optimizer(cfg, model.parameters())}

    modules, restored = training.initialise(run, build)
    model, optimizer = modules["model"], modules["optimizer"]
    prior = PriorSampler(model)
    scoring = EpochSamples(cfg, run.val, restored)  # the validation images' FID-FM stats, once

    def one_epoch(epoch: int, rng, history) -> dict[str, float]:
        metrics = {"train_elbo": train_epoch(model, optimizer, run.train, cfg, rng, device)}
        val = evaluate(model, run.val)
        metrics.update(val_elbo=val["elbo"], val_kl=val["kl"], val_mse=val["mse"])
        training.check_finite({"epoch": epoch, **metrics}, epoch)  # before scoring a diverged one
        metrics.update(scoring.score(epoch, history, prior, cfg.latent_dim))
        return metrics

    training.run_epochs(
        run, modules, restored, {"latent_dim": cfg.latent_dim}, one_epoch, samples=scoring.samples
    )


CONFIG = VAEConfig
TRAINABLE = train_vae


def load_model(path, map_location="cpu") -> tuple[VAE, dict[str, Any]]:
    """The trained VAE in a checkpoint, in eval mode, with the checkpoint's payload."""
    return checkpoints.load_model(path, KIND, lambda args: VAE(**args), "model", map_location)


def score_test(model: VAE, test: DeviceSplit, cfg: VAEConfig) -> dict[str, float]:
    """``evaluate_checkpoint``'s metrics of ``model`` on the test split: ELBO, KL, the mean's
    MSE, and FID-FM of prior samples against a seeded ``cfg.fid_samples`` of the test images."""
    scores = evaluate(model, test)
    test_fid = sampling.test_fid(PriorSampler(model), model.latent_dim, test, cfg)
    return {**{f"test_{k}": v for k, v in scores.items()}, "test_fid": test_fid}


def evaluate_checkpoint(path, data: Splits | None = None, device: str = "auto") -> dict[str, float]:
    """The test split's ELBO, MSE and FID-FM of a checkpoint: the only use of the test set."""
    return checkpoints.evaluate_checkpoint(path, load_model, CONFIG, score_test, data, device)


if __name__ == "__main__":
    from trainables.cli import main

    main(KIND)
