"""The report's fine-tuned autoencoder (section II.A): the encoder, then a fully connected head
latent_dim -> 256 -> 256 -> 128 -> 10 with ReLU between layers and log-softmax at the end.

``mode='frozen'`` (the report): the encoder's weights never get gradients and the encoder stays in
eval mode, so any batch statistics it may hold are untouched. ``mode='finetune'``: the encoder
trains too (the trainable gives it a smaller learning rate).
"""

from __future__ import annotations

import torch
from torch import nn

MODES = ("frozen", "finetune")


class LatentClassifier(nn.Module):
    def __init__(
        self,
        encoder: nn.Module,
        latent_dim: int,
        hidden_sizes: tuple[int, ...] = (256, 256, 128),
        dropout: float = 0.0,
        mode: str = "frozen",
        num_classes: int = 10,
    ):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode={mode!r}; choose one of {MODES}")
        self.mode = mode
        self.encoder = encoder
        layers: list[nn.Module] = []
        width = latent_dim
        for h in hidden_sizes:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers += [nn.Linear(width, num_classes), nn.LogSoftmax(dim=1)]
        self.head = nn.Sequential(*layers)
        if mode == "frozen":
            self.encoder.requires_grad_(False)
            self.encoder.eval()

    def train(self, mode: bool = True) -> LatentClassifier:
        super().train(mode)
        if self.mode == "frozen":
            self.encoder.eval()  # frozen means batch statistics too
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "frozen":
            with torch.no_grad():
                z = self.encoder(x)
        else:
            z = self.encoder(x)
        return self.head(z)
