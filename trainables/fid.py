"""FID-FM: the Fréchet distance between two image sets in the feature space of a fixed reference
FashionMNIST classifier (``models.fm_reference.FMReferenceCNN``, its 128-d penultimate layer).

It is built like Inception FID (Heusel et al., 2017), but with a small CNN trained on FashionMNIST
instead of Inception-v3 on ImageNet. **FID-FM values are NOT comparable to Inception FID** (nor to
any other "FID on FashionMNIST" in a paper): they are comparable only with other FID-FM values
computed with the same committed weights (pinned by ``REFERENCE_SHA256``), the same sample count
(``FID_SAMPLES`` = 5,000 each side) and the same noise seed (``FID_SEED``). See docs/fid.md.

Use in a GAN trainable: real-side statistics once per trial, the fake side every epoch::

    real = real_stats(splits.test_x, device)            # uint8 or [0, 1] images; 5,000 of them
    fid = fid_from_generator(generator, latent_size, FID_SAMPLES, real, device)

The weights are produced by ``python -m trainables.fid_reference`` (docs/fid.md says how to check
a reproduction); this module never trains and refuses a file whose checksum differs.
``python -m trainables.fid`` checks the committed weights against the pinned checksum.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from models.fm_reference import FEATURE_DIM, FMReferenceCNN
from trainables.data import to_unit_float
from trainables.errors import UsageError, cli_errors

WEIGHTS_PATH = Path(__file__).resolve().parent / "assets" / "fm_reference.pt"
REFERENCE_SHA256 = "289db5ee4ae1c369f31f094fc586e6ad118e2561a4c742bb1f2e0e261ad7ee85"
FID_SAMPLES = 5000  # images on each side; FID is biased by sample size, so keep it fixed
FID_SEED = 1234  # seeds the generator's noise and the choice of real images
# The standard deviation of one FID-FM value over the seeds of the generator's noise and of the
# choice of real images, both moved (bench/fid_spread.py; docs/fid.md "How noisy is one value"):
# the largest measured. A difference between two values smaller than about twice it decides nothing.
FID_SPREAD_SD = 8.5

_CACHE: dict[tuple[str, str], FMReferenceCNN] = {}


class FIDError(RuntimeError):
    """The FID-FM reference weights are missing or altered, or the inputs are unusable."""


class FIDWeightsError(FIDError, UsageError):
    """The FID-FM reference weights are missing or altered: the user's to fix (restore the
    committed file), so a command line reports it as one line. Bad inputs stay plain FIDErrors."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_reference(device: str | torch.device = "cpu") -> FMReferenceCNN:
    """The reference net on ``device``, in eval mode with frozen parameters; cached per device and
    process. Raises FIDWeightsError (a FIDError) if the weights file is missing or its sha256 is not
    REFERENCE_SHA256."""
    device = torch.device(device)
    path = Path(WEIGHTS_PATH)  # read at call time so tests can point it at a copy
    key = (str(path), str(device))
    if key in _CACHE:
        return _CACHE[key]
    if not path.is_file():
        raise FIDWeightsError(
            f"{path}: FID-FM reference weights not found; restore the committed file "
            "(git checkout / reinstall latentsweep). Do not retrain: FID-FM values are only "
            "comparable with the committed weights"
        )
    digest = _sha256(path)
    if digest != REFERENCE_SHA256:
        raise FIDWeightsError(
            f"{path}: sha256 {digest} differs from the pinned {REFERENCE_SHA256}; the file is "
            "corrupt or was replaced. Re-download it (git checkout the committed "
            "trainables/assets/fm_reference.pt); do not retrain it, since FID-FM values are only "
            "comparable when computed with the committed weights"
        )
    net = FMReferenceCNN()
    # weights_only: no code in the file can run; the checksum already says it is ours.
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    net.to(device).eval()
    net.requires_grad_(False)
    _CACHE[key] = net
    return net


def _as_images01(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(N, 1, 28, 28) float in [0, 1]; also takes (N, 28, 28) and uint8 (scaled by 1/255)."""
    images = torch.as_tensor(images)
    if images.dtype == torch.uint8:
        images = to_unit_float(images)
    if images.ndim == 3:
        images = images.unsqueeze(1)
    if images.ndim != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        raise FIDError(f"images have shape {tuple(images.shape)}, expected (N, 1, 28, 28)")
    if not images.is_floating_point():
        raise FIDError(f"images have dtype {images.dtype}, expected float in [0, 1] or uint8")
    if len(images) < 2:
        raise FIDError(f"FID-FM needs at least 2 images per side, got {len(images)}")
    lo, hi = float(images.min()), float(images.max())
    # A generator's tanh output in [-1, 1] passed unmapped is the likely mistake; catch it loudly.
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise FIDError(
            f"images range over [{lo:.3f}, {hi:.3f}], expected [0, 1]; "
            "map generator output with (x + 1) / 2"
        )
    return images.float()


@contextlib.contextmanager
def full_float32(device: torch.device) -> Iterator[None]:
    """Float32 arithmetic as written inside, whatever the caller's settings: no autocast (a bf16
    training loop), no TF32 in cuDNN convolutions nor in matmuls (``"highest"`` float32 matmul
    precision), the caller's settings restored afterwards."""
    conv_tf32, matmul = torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision()
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    try:
        with torch.autocast(device.type, enabled=False):
            yield
    finally:
        torch.backends.cudnn.allow_tf32 = conv_tf32
        torch.set_float32_matmul_precision(matmul)


def features(
    images: torch.Tensor | np.ndarray, net: FMReferenceCNN, batch_size: int = 1000
) -> np.ndarray:
    """FID-FM features (N, 128) float64 of images (N, 1, 28, 28) in [0, 1] (or uint8).

    Computed in full float32 (``full_float32``), so the caller's precision settings do not
    change them. They are not bit-for-bit the same everywhere: other batch sizes, thread counts
    or devices sum in other orders, and the values then agree to float32 rounding (docs/fid.md
    gives the measured spread), not exactly."""
    images = _as_images01(images)
    device = next(net.parameters()).device
    out = []
    with torch.inference_mode(), full_float32(device):
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size].to(device, non_blocking=True)
            out.append(net.features(batch).double())
    return torch.cat(out).cpu().numpy()  # one copy to the host, after the last batch


def activation_stats(feats: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,), covariance (D, D)) in float64 of features (N, D)."""
    if torch.is_tensor(feats):
        feats = feats.detach().double().cpu().numpy()
    feats = np.asarray(feats, dtype=np.float64)
    if feats.ndim != 2 or len(feats) < 2:
        raise FIDError(f"features have shape {feats.shape}, expected (N >= 2, D)")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (rounding clipped)."""
    vals, vecs = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2):
    |mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2)).

    tr((s1 s2)^(1/2)) is computed as the sum of square roots of the eigenvalues of the symmetric
    PSD matrix s1^(1/2) s2 s1^(1/2) (same spectrum as s1 s2). Unlike scipy.linalg.sqrtm of the
    non-symmetric product this needs no eps offset and yields no imaginary parts, and it stays
    accurate when covariances are singular (dead ReLU units give zero-variance features)."""
    mu1, mu2 = (np.atleast_1d(np.asarray(m, np.float64)) for m in (mu1, mu2))
    s1, s2 = (np.atleast_2d(np.asarray(s, np.float64)) for s in (sigma1, sigma2))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (len(mu1), len(mu1)):
        raise FIDError(
            f"mismatched statistics: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}"
        )
    if not (np.isfinite(mu1).all() and np.isfinite(mu2).all()):
        raise FIDError("feature means are not finite (NaN/inf images?)")
    if not (np.isfinite(s1).all() and np.isfinite(s2).all()):
        raise FIDError("feature covariances are not finite (NaN/inf images?)")
    root1 = _sqrt_psd(s1)
    middle = root1 @ s2 @ root1
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_covmean = np.sqrt(np.clip(eig, 0, None)).sum()
    diff = mu1 - mu2
    fid = diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean
    return max(float(fid), 0.0)  # FID >= 0; a tiny negative value is only rounding


def _subset(images: torch.Tensor | np.ndarray, n: int | None, seed: int) -> torch.Tensor:
    """A seeded random ``n`` of ``images`` (all of them if n is None or there are not more)."""
    images = torch.as_tensor(images)
    if n is None or len(images) <= n:
        return images
    gen = torch.Generator().manual_seed(seed)
    return images[torch.randperm(len(images), generator=gen)[:n]]


def real_stats(
    images01: torch.Tensor | np.ndarray,
    device: str | torch.device = "cpu",
    n: int | None = FID_SAMPLES,
    seed: int = FID_SEED,
    batch_size: int = 1000,
) -> tuple[np.ndarray, np.ndarray]:
    """FID-FM (mu, sigma) of real images ([0, 1] float or uint8), once per trial. Takes a
    seeded random ``n`` (default 5,000) if more are given, so every trial uses the same ones;
    with ``n`` or fewer images it uses them all (values then differ from the 5,000 standard)."""
    net = load_reference(device)
    return activation_stats(features(_subset(images01, n, seed), net, batch_size))


def generator_stats(
    generator: torch.nn.Module,
    latent_size: int,
    n: int,
    device: str | torch.device = "cpu",
    seed: int = FID_SEED,
    batch_size: int = 1000,
) -> tuple[np.ndarray, np.ndarray]:
    """FID-FM (mu, sigma) of ``n`` images from ``generator`` (tanh output in [-1, 1]).

    The noise is drawn on the CPU from a torch.Generator seeded with ``seed``, so every trial, epoch
    and device (CUDA generators give other numbers) scores the same latent vectors, and the
    global RNG state of the training run is left untouched."""
    device = torch.device(device)
    net = load_reference(device)
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, latent_size, generator=gen)
    was_training = generator.training
    generator.eval()
    fakes = []
    try:
        with torch.inference_mode(), full_float32(device):
            for z in noise.split(batch_size):
                fake = generator(z.to(device)).float()
                fakes.append(((fake + 1) / 2).clamp_(0, 1).view(-1, 1, 28, 28))
    finally:
        generator.train(was_training)
    # All n images (n x 3 kB) stay on the device and are featurised in the same batches: one
    # range check and one copy to the host for the whole set, not one per batch.
    return activation_stats(features(torch.cat(fakes), net, batch_size))


def fid_from_generator(
    generator: torch.nn.Module,
    latent_size: int,
    n: int,
    real_stats: tuple[np.ndarray, np.ndarray],
    device: str | torch.device = "cpu",
    seed: int = FID_SEED,
    batch_size: int = 1000,
) -> float:
    """FID-FM of ``n`` images from ``generator`` against ``real_stats``, from the noise seeded
    with ``seed`` (``generator_stats``)."""
    mu, sigma = generator_stats(generator, latent_size, n, device, seed, batch_size)
    return frechet_distance(mu, sigma, *real_stats)


def fid_fm(
    images_a: torch.Tensor | np.ndarray,
    images_b: torch.Tensor | np.ndarray,
    device: str | torch.device = "cpu",
    batch_size: int = 1000,
) -> float:
    """FID-FM between two image sets in [0, 1] (or uint8), all images of each used as given."""
    net = load_reference(device)
    mu1, s1 = activation_stats(features(images_a, net, batch_size))
    mu2, s2 = activation_stats(features(images_b, net, batch_size))
    return frechet_distance(mu1, s1, mu2, s2)


__all__ = [
    "FEATURE_DIM",
    "FIDError",
    "FIDWeightsError",
    "FID_SAMPLES",
    "FID_SEED",
    "REFERENCE_SHA256",
    "WEIGHTS_PATH",
    "activation_stats",
    "features",
    "fid_fm",
    "fid_from_generator",
    "generator_stats",
    "frechet_distance",
    "full_float32",
    "load_reference",
    "real_stats",
]


if __name__ == "__main__":  # python -m trainables.fid: check the committed weights
    with cli_errors():
        load_reference("cpu")
    print(f"{WEIGHTS_PATH}: sha256 matches REFERENCE_SHA256 {REFERENCE_SHA256}")
