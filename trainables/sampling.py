"""What the kinds that generate images share (the GAN, the VAE): FID-FM of generated images
against the validation images, scored every ``fid_every`` epochs, and 64-image grids from fixed
noise kept in the checkpoints for the figures."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from trainables import fid
from trainables.config import TrainConfig, check_field, param
from trainables.data import DeviceSplit

SAMPLE_SEED = 4321  # fixed noise for the stored sample grids
SAMPLE_COUNT = 64


@dataclass
class SampledConfig(TrainConfig):
    """The fields of a kind whose model generates images."""

    fid_every: int = param(
        1, "compute FID-FM every N epochs (and at the first and last); others repeat the last"
    )
    fid_samples: int = param(
        fid.FID_SAMPLES, "generated and real images per FID-FM (capped by the val size)"
    )
    sample_every: int = param(
        10, "keep a 64-image fixed-noise grid every N epochs (and epochs 1 and last)"
    )

    def validate(self) -> None:
        super().validate()
        check_field(self, self.fid_every >= 1, "fid_every", "must be at least 1")
        check_field(self, self.fid_samples >= 2, "fid_samples", "must be at least 2")
        check_field(self, self.sample_every >= 1, "sample_every", "must be at least 1")


@torch.no_grad()
def fixed_samples(generator, latent_size: int, device) -> torch.Tensor:
    """64 images from fixed noise as uint8 (64, 28, 28): small enough to keep in checkpoints.
    ``generator`` maps noise to images in [-1, 1] (a GAN's tanh range)."""
    gen = torch.Generator(device="cpu").manual_seed(SAMPLE_SEED)
    z = torch.randn(SAMPLE_COUNT, latent_size, generator=gen).to(device)
    generator.eval()
    images = (generator(z).squeeze(1) + 1) * 127.5
    return images.clamp(0, 255).round().to(torch.uint8).cpu()


class EpochSamples:
    """One trial's FID-FM and sample grids: the validation images' statistics computed once,
    then ``score`` at each epoch; ``samples`` (epoch -> grid) goes into the checkpoint."""

    def __init__(self, cfg: SampledConfig, val: DeviceSplit, restored: dict[str, Any]):
        self.cfg, self.device = cfg, val.device
        self.n = min(cfg.fid_samples, len(val))
        self.reference = fid.real_stats(val.x, val.device, n=self.n)
        self.samples = dict(restored.get("samples", {}))

    def score(self, epoch: int, history: list[dict], generator, latent_size: int) -> dict:
        """``fid``, ``fid_epoch`` and ``fid_seconds`` of ``epoch``: scored at the first epoch, every
        ``fid_every`` and the last, else the last value repeated (so that ASHA and PBT can compare
        at any epoch); and a grid kept at epoch 1, every ``sample_every`` and the last."""
        cfg = self.cfg
        if epoch % cfg.fid_every == 0 or epoch == cfg.epochs or not history:
            started = time.perf_counter()  # the value is a host float: no extra sync to time it
            value = fid.fid_from_generator(
                generator, latent_size, self.n, self.reference, self.device
            )
            metrics = {
                "fid": value,
                "fid_epoch": epoch,
                "fid_seconds": time.perf_counter() - started,
            }
        else:
            metrics = {"fid": history[-1]["fid"], "fid_epoch": history[-1]["fid_epoch"]}
            metrics["fid_seconds"] = 0.0
        if epoch == 1 or epoch % cfg.sample_every == 0 or epoch == cfg.epochs:
            self.samples[epoch] = fixed_samples(generator, latent_size, self.device)
        return metrics


def test_fid(generator, latent_size: int, test: DeviceSplit, cfg: SampledConfig) -> float:
    """FID-FM of ``generator`` against a seeded ``cfg.fid_samples`` of the test images, from as
    many fixed-noise samples: a checkpoint's ``test_fid``."""
    n = min(cfg.fid_samples, len(test))
    reference = fid.real_stats(test.x, test.device, n=n)  # a seeded n of the 10,000 test images
    return fid.fid_from_generator(generator, latent_size, n, reference, test.device)
