"""Ray Tune trainable for the report's MLP GAN, scored by FID-FM (lower is better).

    python -m trainables.gan --preset report --epochs 20 --out runs/gan
    python -m trainables.gan --lr-g 2e-4 --lr-d 2e-4 --beta1 0.5 --out runs/gan_tuned

Each epoch reports ``d_loss``, ``g_loss`` and ``fid``: FID-FM (see ``trainables/fid.py``) of
``fid_samples`` generated images against as many held-out validation images, from fixed noise,
so values compare across trials, nodes and users. It is not comparable to Inception FID.
``fid_seconds`` is what computing it took (0 at the epochs that repeat the last value).
Checkpoints also keep 64 fixed-noise samples every ``sample_every`` epochs for the figures.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from models import Discriminator, Generator
from trainables import checkpoints, sampling, training
from trainables.config import TrainConfig, check_field, param
from trainables.data import DeviceSplit, Splits
from trainables.devices import autocast
from trainables.kinds import ModelKind
from trainables.sampling import EpochSamples, SampledConfig

KIND = "gan"
MODEL_KIND = ModelKind(
    KIND,
    curves=(("BCE loss", ("d_loss", "g_loss")), ("FID-FM (lower is better)", ("fid",))),
    figures=("generator", "gan"),
    label="GAN",
)


@dataclass
class GANConfig(SampledConfig):
    latent_size: int = param(100, "size of the generator's noise input")
    hidden_size: int = param(784, "width of both hidden layers of generator and discriminator")
    lr: float = param(2e-4, "Adam learning rate of both networks unless lr_g / lr_d are set")
    lr_g: float | None = param(None, "generator learning rate; None -> lr")
    lr_d: float | None = param(None, "discriminator learning rate; None -> lr")
    beta1: float = param(0.5, "Adam beta1 of both networks (0.5 is the DCGAN habit)")
    d_steps: int = param(1, "discriminator updates per generator update")
    epochs: int = param(20, "epochs over the training images; ASHA may stop a trial earlier")
    batch_size: int = param(128, "real images per discriminator step")
    g_ema: float = param(
        0.0,
        "decay of an exponential moving average of the generator's weights, updated after every "
        "generator step; when > 0 the average is what FID-FM, the samples and load_model use "
        "(0.999 is usual; 0 = off)",
    )

    FIXED_ON_RESUME: ClassVar[tuple[str, ...]] = (
        *TrainConfig.FIXED_ON_RESUME,
        "latent_size",
        "hidden_size",
    )

    def validate(self) -> None:
        super().validate()
        _c = check_field
        _c(
            self,
            self.optimizer in ("adam", "adamw"),
            "optimizer",
            "must be adam or adamw for the GAN",
        )
        _c(self, self.latent_size >= 1, "latent_size", "must be at least 1")
        _c(self, self.hidden_size >= 1, "hidden_size", "must be at least 1")
        _c(self, self.lr_g is None or self.lr_g > 0, "lr_g", "must be positive")
        _c(self, self.lr_d is None or self.lr_d > 0, "lr_d", "must be positive")
        _c(self, 0 <= self.beta1 < 1, "beta1", "must be in [0, 1)")
        _c(self, self.d_steps >= 1, "d_steps", "must be at least 1")
        _c(self, 0 <= self.g_ema < 1, "g_ema", "must be in [0, 1) (0 = no average)")


# The report's section III.B: latent 100, hidden 784, lr 1e-4, 300 epochs (Adam; beta1 unstated,
# torch's default 0.9 assumed; batch size unstated).
PRESETS = {
    "report": dict(latent_size=100, hidden_size=784, lr=1e-4, beta1=0.9, epochs=300),
}


def _adam(cfg: GANConfig, params, lr: float) -> torch.optim.Optimizer:
    opt = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return opt(params, lr=lr, betas=(cfg.beta1, 0.999), weight_decay=cfg.weight_decay)


def ema_steps_before(n: int, cfg: GANConfig, epoch: int) -> int:
    """Generator steps before ``epoch`` at the config in force (PBT may have changed the batch
    size or D steps since: then approximately), for the average's warm-up."""
    return (epoch - 1) * (-(-n // cfg.batch_size) // cfg.d_steps)


def ema_decay(cfg: GANConfig, g_step: int) -> float:
    """The average's decay at generator step ``g_step`` (from 0): ``g_ema`` with the usual
    warm-up, min(g_ema, (1 + t) / (10 + t)), so that early on it follows the generator closely
    (an average still mostly of the random initial weights would lose every early ASHA rung)."""
    return min(cfg.g_ema, (1 + g_step) / (10 + g_step))


def train_epoch(
    generator, discriminator, opt_g, opt_d, data: DeviceSplit, cfg, rng, device, ema=None, epoch=1
) -> dict[str, float]:
    """Non-saturating GAN losses; a generator step after every ``d_steps`` discriminator steps,
    each followed by an update of ``ema`` (the generator's weight average, if any)."""
    if ema is not None:
        averaged, live = list(ema.parameters()), list(generator.parameters())
        g_step = ema_steps_before(len(data), cfg, epoch)
    generator.train()
    discriminator.train()
    d_total, g_total = torch.zeros((), device=device), torch.zeros((), device=device)
    d_n = g_n = 0
    for step, (x, _) in enumerate(data.batches(cfg.batch_size, shuffle=True, generator=rng), 1):
        real = x * 2 - 1  # the generator's tanh range
        b = len(real)
        with autocast(cfg, device):
            fake = generator(torch.randn(b, cfg.latent_size, device=device)).detach()
            logits = discriminator(torch.cat([real, fake])).float()
        target = torch.cat([torch.ones(b, device=device), torch.zeros(b, device=device)])
        d_loss = (
            F.binary_cross_entropy_with_logits(logits, target) * 2
        )  # sum of real and fake terms
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        d_total += d_loss.detach()
        d_n += 1
        if step % cfg.d_steps == 0:
            with autocast(cfg, device):
                logits = discriminator(
                    generator(torch.randn(b, cfg.latent_size, device=device))
                ).float()
            g_loss = F.binary_cross_entropy_with_logits(logits, torch.ones(b, device=device))
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            if ema is not None:  # on the device, no host sync (as torch.optim.swa_utils does)
                torch._foreach_lerp_(averaged, live, 1.0 - ema_decay(cfg, g_step))
                g_step += 1
            g_total += g_loss.detach()
            g_n += 1
    return {"d_loss": (d_total / max(d_n, 1)).item(), "g_loss": (g_total / max(g_n, 1)).item()}


def train_gan(config: dict[str, Any], data: Splits | None = None, reporter=None) -> None:
    cfg = GANConfig.from_dict(config)
    run = training.start(KIND, cfg, data, reporter)
    device = run.device

    def build() -> dict[str, Any]:
        generator = Generator(cfg.latent_size, cfg.hidden_size).to(device)
        discriminator = Discriminator(cfg.hidden_size).to(device)
        return {
            "generator": generator,
            "discriminator": discriminator,
            "opt_g": _adam(cfg, generator.parameters(), cfg.lr_g or cfg.lr),
            "opt_d": _adam(cfg, discriminator.parameters(), cfg.lr_d or cfg.lr),
        }

    modules, restored = training.initialise(run, build)
    generator, discriminator = modules["generator"], modules["discriminator"]
    opt_g, opt_d = modules["opt_g"], modules["opt_d"]
    ema = None
    if cfg.g_ema > 0:  # the generator's weight average: never trained, only averaged
        ema = copy.deepcopy(generator).requires_grad_(False).eval()  # as initialised or restored
        if "generator_ema" in restored.get("state", {}):  # else a checkpoint trained without one
            ema.load_state_dict(restored["state"]["generator_ema"])
        modules["generator_ema"] = ema
    shown = generator if ema is None else ema  # what FID-FM and the sample grids see
    scoring = EpochSamples(cfg, run.val, restored)  # the validation images' FID-FM stats, once

    g_params = training.count_parameters(generator)  # a cost a sweep's --objectives may weigh

    def one_epoch(epoch: int, rng, history) -> dict[str, float]:
        metrics = train_epoch(
            generator, discriminator, opt_g, opt_d, run.train, cfg, rng, device, ema, epoch
        )
        metrics["g_params"] = g_params
        training.check_finite({"epoch": epoch, **metrics}, epoch)  # before scoring a diverged one
        metrics.update(scoring.score(epoch, history, shown, cfg.latent_size))
        return metrics

    model_args = {"latent_size": cfg.latent_size, "hidden_size": cfg.hidden_size}
    training.run_epochs(run, modules, restored, model_args, one_epoch, samples=scoring.samples)


CONFIG = GANConfig
TRAINABLE = train_gan


def load_model(path, map_location="cpu") -> tuple[Generator, dict[str, Any]]:
    """The trained generator in a checkpoint (eval mode) and the checkpoint's payload: its
    weight average when it was trained with ``g_ema`` > 0, the generator FID-FM scored."""
    keys = ("generator_ema", "generator")
    return checkpoints.load_model(path, KIND, lambda args: Generator(**args), keys, map_location)


def score_test(generator, test: DeviceSplit, cfg: GANConfig) -> dict[str, float]:
    """``evaluate_checkpoint``'s FID-FM of ``generator`` (``sampling.test_fid``)."""
    return {"test_fid": sampling.test_fid(generator, cfg.latent_size, test, cfg)}


def evaluate_checkpoint(path, data: Splits | None = None, device: str = "auto") -> dict[str, float]:
    """FID-FM of the generator against the test images: the only use of the test set."""
    return checkpoints.evaluate_checkpoint(path, load_model, CONFIG, score_test, data, device)


if __name__ == "__main__":
    from trainables.cli import main

    main(KIND)
