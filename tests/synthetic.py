"""Tiny FashionMNIST-shaped splits of seeded random pixels, for tests that need a trainable to run
but not to learn (a real-data test uses ``conftest.small_splits``)."""

import torch

from trainables.data import Splits


def synthetic_splits(train: int = 40, val: int = 20, test: int = 20, seed: int = 0) -> Splits:
    """Seeded uint8 images (N, 28, 28) with labels cycling 0..9, split three ways."""
    gen = torch.Generator().manual_seed(seed)

    def images(n):
        x = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=gen)
        return x, torch.arange(n) % 10

    (train_x, train_y), (val_x, val_y), (test_x, test_y) = images(train), images(val), images(test)
    return Splits(train_x, train_y, val_x, val_y, test_x, test_y, source="synthetic")
