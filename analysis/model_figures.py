"""Figures of one trained model, drawn from its checkpoint and the FashionMNIST test split.

Autoencoder: reconstructions, a 2-D latent space coloured by class, a latent interpolation
between two classes, PCA and t-SNE of the latent codes. Classifier: the confusion matrix and
per-class accuracy. GAN: losses and FID-FM over epochs, the stored fixed-noise sample grids, and
generated samples passed through an autoencoder.

The functions take tensors and models and return matplotlib Figures; what to load is decided by
``analysis/inputs.py`` and ``analysis/figures.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from matplotlib.ticker import MaxNLocator

from analysis.plotting import CLASS_COLOURS, CLASSES, Figure, image_grid, plt, to_uint8
from analysis.sweep_folder import MissingInput

# ---------------------------------------------------------------------------------------------
# Running the models


@torch.no_grad()
def encode(model, images: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
    """Latent codes (N, latent_dim) of images in [0, 1] (N, 1, 28, 28)."""
    model.eval()
    return torch.cat([model.encode(x) for x in images.split(batch_size)])


@torch.no_grad()
def decode(model, codes: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
    model.eval()
    return torch.cat([model.decode(z) for z in codes.split(batch_size)])


@torch.no_grad()
def generate(generator, n: int, seed: int = 0, batch_size: int = 2000) -> torch.Tensor:
    """``n`` generated images in [0, 1] (N, 1, 28, 28) from seeded noise."""
    generator.eval()
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn(n, generator.latent_size, generator=rng)
    return torch.cat([(generator(b) + 1) / 2 for b in z.split(batch_size)]).clamp(0, 1)


def one_per_class(labels: torch.Tensor) -> list[int]:
    """Index of the first image of each class present, in class order."""
    return [int(torch.nonzero(labels == c)[0]) for c in range(len(CLASSES)) if (labels == c).any()]


# ---------------------------------------------------------------------------------------------
# Autoencoder


def reconstructions(model, images: torch.Tensor, labels: torch.Tensor) -> Figure:
    """One test image per class (top row) above its reconstruction (bottom row)."""
    pick = one_per_class(labels)
    originals = images[pick]
    decoded = decode(model, encode(model, originals))
    mse = float(((decode(model, encode(model, images)) - images) ** 2).mean())
    fig, axes = plt.subplots(2, len(pick), figsize=(1.3 * len(pick), 3.8), squeeze=False)
    for col, i in enumerate(pick):
        for row, batch in enumerate((originals, decoded)):
            ax = axes[row, col]
            ax.imshow(
                to_uint8(batch[col : col + 1])[0],
                cmap="gray",
                vmin=0,
                vmax=255,
                interpolation="nearest",
            )
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, col].set_title(CLASSES[int(labels[i])], fontsize=9)
    axes[0, 0].set_ylabel("original")
    axes[1, 0].set_ylabel("reconstruction")
    fig.suptitle(
        f"Test images and their reconstructions (latent_dim={model.latent_dim}; "
        f"per-pixel MSE {mse:.4f} over {len(images)} test images)"
    )
    fig.tight_layout()
    return fig


def latent_scatter(
    points: np.ndarray, labels: torch.Tensor | np.ndarray, title: str, axis: str
) -> Figure:
    """2-D points coloured by class, with the class names in the legend."""
    labels = np.asarray(labels)
    fig, ax = plt.subplots(figsize=(9, 6.5))
    for c, name in enumerate(CLASSES):
        mask = labels == c
        if mask.any():
            ax.scatter(*points[mask].T, s=5, alpha=0.6, color=CLASS_COLOURS[c], label=name)
    ax.legend(title="class", loc="upper left", bbox_to_anchor=(1.01, 1), markerscale=3)
    ax.set_xlabel(f"{axis} 1")
    ax.set_ylabel(f"{axis} 2")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def latent_2d(model, images: torch.Tensor, labels: torch.Tensor, title: str) -> Figure:
    if model.latent_dim != 2:
        raise MissingInput(
            f"a 2-D latent plot needs latent_dim 2, this model has {model.latent_dim}"
        )
    codes = encode(model, images).numpy()
    return latent_scatter(codes, labels, f"{title} ({len(codes)} test images)", "latent dimension")


def class_index(name: str) -> int:
    """A class by name (case-insensitive) or index 0-9."""
    if name.isdigit() and int(name) < len(CLASSES):
        return int(name)
    for i, c in enumerate(CLASSES):
        if c.lower() == name.lower():
            return i
    raise ValueError(f"unknown class {name!r}; choose one of {', '.join(CLASSES)} or 0-9")


def interpolation(
    model, images: torch.Tensor, labels: torch.Tensor, start: int, end: int, steps: int = 10
) -> Figure:
    """Decoded points on the segment between two class means in latent space (top row), above
    the test image whose code is nearest to each point (bottom row)."""
    codes = encode(model, images)
    for c in (start, end):
        if not (labels == c).any():
            raise MissingInput(f"no {CLASSES[c]} among the test images used; use more of them")
    mean_a, mean_b = codes[labels == start].mean(0), codes[labels == end].mean(0)
    t = torch.linspace(0, 1, steps)
    path = (1 - t)[:, None] * mean_a + t[:, None] * mean_b
    decoded = decode(model, path)
    nearest = torch.cdist(path, codes).argmin(1)
    fig, axes = plt.subplots(2, steps, figsize=(1.3 * steps, 3.9), squeeze=False)
    for col in range(steps):
        for row, image in enumerate((decoded[col], images[nearest[col]])):
            ax = axes[row, col]
            ax.imshow(
                to_uint8(image[None])[0], cmap="gray", vmin=0, vmax=255, interpolation="nearest"
            )
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, col].set_title(f"t={float(t[col]):.2f}", fontsize=9)
        axes[1, col].set_xlabel(CLASSES[int(labels[nearest[col]])], fontsize=8)
    axes[0, 0].set_ylabel("decoded")
    axes[1, 0].set_ylabel("nearest test\nimage")
    fig.suptitle(
        f"Latent interpolation {CLASSES[start]} → {CLASSES[end]} between class means "
        f"(latent_dim={model.latent_dim})"
    )
    fig.tight_layout()
    return fig


def latent_pca(codes: torch.Tensor, labels: torch.Tensor) -> Figure:
    from sklearn.decomposition import PCA

    if codes.shape[1] < 2:
        raise MissingInput("PCA to 2-D needs latent_dim >= 2")
    pca = PCA(n_components=2).fit(codes.numpy())
    points = pca.transform(codes.numpy())
    share = pca.explained_variance_ratio_
    fig = latent_scatter(
        points,
        labels,
        f"PCA of {codes.shape[1]}-D latent codes ({len(codes)} test images; "
        f"{share.sum():.0%} of variance shown)",
        "principal component",
    )
    ax = fig.axes[0]
    ax.set_xlabel(f"principal component 1 ({share[0]:.0%} of variance)")
    ax.set_ylabel(f"principal component 2 ({share[1]:.0%} of variance)")
    return fig


def latent_tsne(codes: torch.Tensor, labels: torch.Tensor, samples: int, seed: int = 0) -> Figure:
    """t-SNE of a fixed random subsample of the codes (t-SNE is quadratic in the points)."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    n = min(samples, len(codes))
    if n < 5:
        raise MissingInput(f"t-SNE needs at least 5 points, got {n}; raise --tsne-samples")
    pick = np.sort(np.random.default_rng(seed).choice(len(codes), size=n, replace=False))
    tsne = TSNE(
        n_components=2,
        perplexity=min(30.0, (n - 1) / 3),
        init="pca",
        learning_rate="auto",
        random_state=seed,
    )
    # One OpenMP thread: for a few thousand points it is faster than several, and several
    # spin-wait badly on shared cores (measured 5x slower for 2,000 points on 2 busy cores).
    with threadpool_limits(limits=1, user_api="openmp"):
        points = tsne.fit_transform(codes[pick].numpy())
    return latent_scatter(
        points,
        labels[pick],
        f"t-SNE of {codes.shape[1]}-D latent codes ({n} test images, seed {seed})",
        "t-SNE dimension",
    )


# ---------------------------------------------------------------------------------------------
# Classifier


def confusion_matrix(confusion: np.ndarray) -> Figure:
    """Counts (left) and row-normalised rates (right); rows are true classes."""
    confusion = np.asarray(confusion)
    rates = confusion / confusion.sum(1, keepdims=True).clip(min=1)
    accuracy = np.trace(confusion) / max(confusion.sum(), 1)
    fig, axes = plt.subplots(1, 2, figsize=(17, 7.5))
    for ax, values, title, fmt in (
        (axes[0], confusion, "counts", "{:d}"),
        (axes[1], rates, "row-normalised (recall per true class)", "{:.2f}"),
    ):
        image = ax.imshow(values, cmap="Blues")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        top = values.max() or 1
        for (r, c), v in np.ndenumerate(values):
            ax.text(
                c,
                r,
                fmt.format(v.item()),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if v > top / 2 else "black",
            )
        ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=45, ha="right")
        ax.set_yticks(range(len(CLASSES)), CLASSES)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(title)
    fig.suptitle(
        f"Confusion matrix on {int(confusion.sum())} test images (accuracy {accuracy:.2%})"
    )
    fig.tight_layout()
    return fig


def per_class_accuracy(confusion: np.ndarray) -> Figure:
    confusion = np.asarray(confusion)
    per_class = np.diag(confusion) / confusion.sum(1).clip(min=1)
    accuracy = np.trace(confusion) / max(confusion.sum(), 1)
    fig, ax = plt.subplots(figsize=(9, 5.5))
    bars = ax.barh(range(len(CLASSES)), per_class, color=CLASS_COLOURS)
    ax.bar_label(bars, labels=[f"{a:.1%}" for a in per_class], padding=3, fontsize=9)
    ax.axvline(accuracy, color="0.2", ls="--", label=f"overall accuracy {accuracy:.1%}")
    ax.set_yticks(range(len(CLASSES)), CLASSES)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.12)
    ax.set_xlabel("test accuracy (fraction of the class classified correctly)")
    ax.set_ylabel("class")
    ax.set_title("Per-class accuracy on the test split")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# GAN


def gan_losses(history: pd.DataFrame) -> Figure:
    missing = [m for m in ("d_loss", "g_loss") if m not in history]
    if missing:
        raise MissingInput(f"the checkpoint's history has no {missing}; it finished no epoch")
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for name, label in (("d_loss", "discriminator (d_loss)"), ("g_loss", "generator (g_loss)")):
        ax.plot(history["epoch"], history[name], marker="o", markersize=3, label=label)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("BCE loss (mean per step)")
    ax.set_title("Generator and discriminator losses")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def gan_fid(
    history: pd.DataFrame, test_fid: float | None = None, spread: float | None = None
) -> Figure:
    """FID-FM at each epoch where it was computed (others repeat the last value), with an error
    bar of ±``spread`` (one value's standard deviation over its seeds, ``fid.FID_SPREAD_SD``)."""
    if "fid" not in history:
        raise MissingInput("the checkpoint's history has no fid; it finished no epoch")
    rows = history.dropna(subset=["fid"])
    if "fid_epoch" in rows:
        rows = rows[rows["fid_epoch"] == rows["epoch"]]
    fig, ax = plt.subplots(figsize=(9, 5.5))
    label = "fid (validation images)"
    if spread:
        label += f", error bar ±{spread:g}: one value's sd over its seeds (docs/fid.md)"
    ax.errorbar(rows["epoch"], rows["fid"], yerr=spread, marker="o", capsize=3, label=label)
    if test_fid is not None:
        ax.axhline(test_fid, color="tab:red", ls="--", label=f"test_fid {test_fid:.2f}")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("FID-FM (lower is better)")
    ax.set_title("FID-FM of generated samples over training")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def gan_sample_comparison(panels: list[tuple[str, torch.Tensor]]) -> Figure:
    """Several generators' fixed-noise sample grids side by side, each under its title."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 5.4), squeeze=False)
    for ax, (title, grid) in zip(axes[0], panels, strict=True):
        ax.imshow(image_grid(grid), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.suptitle("Generated samples from fixed noise, each generator at its last epoch")
    fig.tight_layout()
    return fig


def gan_samples(samples: dict[int, torch.Tensor], max_grids: int = 4) -> Figure:
    """The checkpoint's fixed-noise sample grids at up to ``max_grids`` epochs, first and last
    included: the same noise at each epoch, so the panels show one generator learning."""
    if not samples:
        raise MissingInput("the checkpoint holds no sample grids; train with the current trainable")
    epochs = sorted(samples)
    picks = np.unique(np.linspace(0, len(epochs) - 1, min(max_grids, len(epochs))).round())
    chosen = [epochs[int(i)] for i in picks]
    fig, axes = plt.subplots(1, len(chosen), figsize=(4.3 * len(chosen), 5), squeeze=False)
    for ax, epoch in zip(axes[0], chosen, strict=True):
        ax.imshow(
            image_grid(samples[epoch]), cmap="gray", vmin=0, vmax=255, interpolation="nearest"
        )
        ax.set_title(f"epoch {epoch}")
        ax.axis("off")
    fig.suptitle(f"Generated samples from fixed noise ({len(samples[chosen[0]])} per epoch)")
    fig.tight_layout()
    return fig


def gan_through_autoencoder(
    raw: torch.Tensor, cleaned: torch.Tensor, fid_raw: str, fid_cleaned: str, shown: int = 64
) -> Figure:
    """Generated samples beside the same samples passed through an autoencoder."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 6.2), layout="constrained")
    for ax, images, title in (
        (axes[0], raw, f"generated (FID-FM {fid_raw})"),
        (axes[1], cleaned, f"through the autoencoder (FID-FM {fid_cleaned})"),
    ):
        ax.imshow(
            image_grid(images[:shown]), cmap="gray", vmin=0, vmax=255, interpolation="nearest"
        )
        ax.set_title(title)
        ax.axis("off")
    fig.suptitle(f"GAN samples before and after the autoencoder ({len(raw)} samples scored)")
    return fig


# ---------------------------------------------------------------------------------------------
# Several objectives: pictures along the Pareto front


def front_pictures(rows: list[tuple[str, torch.Tensor]], top: torch.Tensor | None) -> Figure:
    """One row of images per point of a sweep's front (``rows``: its label and the images), under
    ``top`` (the originals the rows reconstruct; None for generated samples)."""
    grid = ([("original", top)] if top is not None else []) + rows
    cols = max(len(images) for _, images in grid)
    fig, axes = plt.subplots(
        len(grid), cols, figsize=(1.0 * cols + 1.0, 1.05 * len(grid)), squeeze=False
    )
    for r, (label, images) in enumerate(grid):
        pictures = to_uint8(images)
        for c in range(cols):
            ax = axes[r, c]
            if c < len(pictures):
                ax.imshow(pictures[c], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
    fig.tight_layout()
    return fig
