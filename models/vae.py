"""A variational autoencoder with the report's encoder and decoder (section I.A).

The encoder's trunk (conv 1->8->16->32, linear 288 -> 64) feeds two heads: the posterior's mean,
which is the autoencoder's last layer (so ``encoder`` is an ``Encoder`` of the autoencoder's
shape, giving the mean code), and its log-variance. The decoder is the autoencoder's, its
sigmoid read as the pixels' Bernoulli means.
"""

from __future__ import annotations

import torch
from torch import nn

from models.autoencoder import ConvAutoencoder


class VAE(ConvAutoencoder):
    """Images (N, 1, 28, 28) in [0, 1] -> a Gaussian posterior over codes (N, latent_dim) ->
    images in [0, 1]. The autoencoder with a second head: ``forward``, ``encode`` and ``decode``
    are the autoencoder's, on the posterior's mean, so everything that draws an autoencoder's
    codes and reconstructions draws a VAE's; ``posterior`` and ``decoder_logits`` are what its
    loss needs."""

    def __init__(self, latent_dim: int = 16):
        super().__init__(latent_dim)  # the encoder's last layer is the mean's head
        self.logvar = nn.Linear(64, latent_dim)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The posterior's mean and log-variance, each (N, latent_dim)."""
        hidden = self.encoder.fc[:-1](self.encoder.conv(x))
        return self.encoder.fc[-1](hidden), self.logvar(hidden)

    def decoder_logits(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder without its sigmoid: the pixels' Bernoulli logits."""
        return self.decoder.deconv[:-1](self.decoder.fc(z))


class PriorSampler(nn.Module):
    """A VAE's decoder as a generator: codes from the prior N(0, I) -> images in [-1, 1], the
    GAN generator's range, so FID-FM and the sample grids treat both alike."""

    def __init__(self, vae: VAE):
        super().__init__()
        self.vae = vae
        self.latent_size = vae.latent_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z) * 2 - 1
