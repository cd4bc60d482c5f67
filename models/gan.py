"""The report's MLP GAN (section III.A). The generator maps latent_size noise to a 28x28 image in
[-1, 1] (tanh); the discriminator maps an image to one logit (the sigmoid is folded into
BCE-with-logits in training, which is the same model, numerically safer)."""

from __future__ import annotations

import torch
from torch import nn

IMAGE_SIZE = 28 * 28


class Generator(nn.Module):
    def __init__(self, latent_size: int = 100, hidden_size: int = 784):
        super().__init__()
        self.latent_size = latent_size
        self.net = nn.Sequential(
            nn.Linear(latent_size, hidden_size),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_size, hidden_size),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_size, IMAGE_SIZE),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, 1, 28, 28)


class Discriminator(nn.Module):
    def __init__(self, hidden_size: int = 784, negative_slope: float = 0.2):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(IMAGE_SIZE, hidden_size),
            nn.LeakyReLU(negative_slope, inplace=True),
            nn.Linear(hidden_size, hidden_size),
            nn.LeakyReLU(negative_slope, inplace=True),
            nn.Linear(hidden_size, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N,); apply torch.sigmoid for the report's probability."""
        return self.net(x).squeeze(1)
