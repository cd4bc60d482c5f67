"""Matplotlib set-up shared by the figure modules: the Agg backend (no display), class colours,
image grids and saving a PNG at a readable size."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from trainables.data import CLASSES

# Files only, no display. Importing pyplot picks no backend (the first figure does), so this need
# not precede that import.
matplotlib.use("Agg")

DPI = 120  # 9x5.5 in -> 1080x660 px
CLASS_COLOURS = plt.get_cmap("tab10").colors  # one per FashionMNIST class, in CLASSES order

__all__ = ["CLASSES", "CLASS_COLOURS", "Figure", "image_grid", "plt", "save", "to_uint8"]


def to_uint8(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """Images in [0, 1] (float) or 0..255 (uint8), shaped (N, 28, 28) or (N, 1, 28, 28)."""
    a = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    a = a.reshape(len(a), 28, 28)
    if a.dtype != np.uint8:
        a = (a.clip(0, 1) * 255).round().astype(np.uint8)
    return a


def image_grid(images: torch.Tensor | np.ndarray, cols: int = 8, pad: int = 2) -> np.ndarray:
    """Tile N images into one (rows*(28+pad)-pad, cols*(28+pad)-pad) uint8 picture."""
    tiles = to_uint8(images)
    rows = -(-len(tiles) // cols)
    size = 28 + pad
    grid = np.full((rows * size - pad, cols * size - pad), 255, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        grid[r * size : r * size + 28, c * size : c * size + 28] = tile
    return grid


def save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    return path
