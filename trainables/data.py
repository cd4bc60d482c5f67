"""FashionMNIST for latentsweep: find the files, read and validate them, split, put them on a device.

Resolution order (first that works wins):
  1. an explicit directory: ``data_dir=`` / ``--data-dir`` / ``$LATENTSWEEP_DATA``;
  2. Debian's package ``dataset-fashion-mnist`` in ``/usr/share/datasets/fashion-mnist/``;
  3. torchvision's download into ``$LATENTSWEEP_CACHE`` (default ``~/.cache/latentsweep``),
     under a file lock so parallel trials on one node download once and never read half a file.

Splits: a seeded, class-stratified validation split (5,000 by default) is held out from the
60,000 training images; the 10,000 test images are for final evaluation only.

Images stay uint8 on the host (55 MB in all, cheap to ship through Ray's object store) and are
moved to the trial's device once, where they are scaled (``DeviceSplit``, ``to_unit_float``).
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainables.errors import UsageError

CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
EXPECTED_COUNTS = {"train": 60000, "test": 10000}
HOW_TO_GET = (
    "install Debian's package (apt-get install dataset-fashion-mnist), "
    "pass --data-dir / set LATENTSWEEP_DATA to a folder with the four IDX files, "
    "or allow torchvision to download it (needs internet)"
)


class DataError(UsageError, RuntimeError):
    """FashionMNIST could not be found or a file is not a valid IDX file."""


# ---------------------------------------------------------------------------------------------
# IDX reading


def _open_idx(path: Path) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot read ({e}); delete it and fetch the dataset again") from e


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (raw or gzipped) into a uint8 array, validating its header and size."""
    path = Path(path)
    raw = _open_idx(path)
    if len(raw) < 4:
        raise DataError(f"{path}: truncated IDX file ({len(raw)} bytes); fetch the dataset again")
    zero, dtype_code, ndim = raw[0] << 8 | raw[1], raw[2], raw[3]
    if zero != 0 or dtype_code != 0x08 or ndim not in (1, 3):
        raise DataError(
            f"{path}: bad IDX magic number 0x{raw[:4].hex()} (expected 0x00000801 for labels "
            "or 0x00000803 for images); this is not a FashionMNIST IDX file"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header; fetch the dataset again")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape)) + header
    if len(raw) != expected:
        raise DataError(
            f"{path}: size {len(raw)} bytes does not match its header {shape} "
            f"(expected {expected}); the file is truncated or corrupt, fetch the dataset again"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    raw = directory / "FashionMNIST" / "raw"  # torchvision's layout under its root
    if raw.is_dir():
        return _find(raw, stem)
    return None


def _has_all(directory: Path) -> bool:
    return all(_find(directory, stem) for stem in FILES.values())


def read_split(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) int64 of ``split`` ('train' or 'test')."""
    prefix = "train" if split == "train" else "test"
    img_path = _find(directory, FILES[f"{prefix}_images"])
    lbl_path = _find(directory, FILES[f"{prefix}_labels"])
    if img_path is None or lbl_path is None:
        raise DataError(f"{directory}: missing {split} IDX files; {HOW_TO_GET}")
    images, labels = read_idx(img_path), read_idx(lbl_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{img_path}: images have shape {images.shape}, expected (N, 28, 28)")
    if labels.ndim != 1:
        raise DataError(f"{lbl_path}: labels have shape {labels.shape}, expected (N,)")
    if len(images) != len(labels):
        raise DataError(
            f"{img_path} has {len(images)} images but {lbl_path} has {len(labels)} labels; "
            "the files do not belong together"
        )
    if labels.size and labels.max() > 9:
        raise DataError(f"{lbl_path}: label {int(labels.max())} outside 0-9; not FashionMNIST")
    return images, labels.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Locating the files


def cache_dir() -> Path:
    return Path(os.environ.get("LATENTSWEEP_CACHE", Path.home() / ".cache" / "latentsweep"))


def _download(root: Path) -> Path:
    """torchvision's download into ``root``, once per node. A file lock serialises processes,
    and the files are fetched into a private folder that is renamed into place whole, so a
    process that looks at ``root`` without the lock (``resolve_data_dir``) never sees half a file.
    """
    from filelock import FileLock

    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / ".download.lock")):
        if _has_all(root):  # another process finished while we waited
            return root
        staging = Path(tempfile.mkdtemp(prefix=".download-", dir=root))
        try:
            from torchvision.datasets import FashionMNIST

            # torchvision writes into <root>/FashionMNIST/raw; it checks MD5s of what it fetched.
            FashionMNIST(str(staging), train=True, download=True)
            FashionMNIST(str(staging), train=False, download=True)
            target = root / "FashionMNIST"
            if target.exists():  # incomplete (else _has_all): an older, interrupted download
                shutil.rmtree(target)
            os.replace(staging / "FashionMNIST", target)
        except Exception as e:  # network errors come in many types
            raise DataError(
                f"FashionMNIST not found and download failed ({e}); {HOW_TO_GET}"
            ) from e
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return root


def resolve_data_dir(data_dir: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The folder holding the four FashionMNIST IDX files (see the module docstring)."""
    explicit = data_dir or os.environ.get("LATENTSWEEP_DATA")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_dir():
            raise DataError(f"data directory {path} does not exist; {HOW_TO_GET}")
        if not _has_all(path):
            raise DataError(
                f"data directory {path} lacks the four FashionMNIST IDX files; {HOW_TO_GET}"
            )
        return path
    if _has_all(DEBIAN_DIR):
        return DEBIAN_DIR
    if _has_all(cache_dir()):
        return cache_dir()
    if not download:
        raise DataError(f"FashionMNIST not found; {HOW_TO_GET}")
    return _download(cache_dir())


# ---------------------------------------------------------------------------------------------
# Splits


def stratified_split(labels: np.ndarray, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) with ``val_size`` validation items spread over classes as in ``labels``."""
    n = len(labels)
    if not 0 <= val_size < n:
        raise ValueError(
            f"val_size={val_size} must be in [0, {n}); choose a smaller validation split"
        )
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    # Largest-remainder allocation so per-class shares sum to exactly val_size.
    exact = counts * val_size / n
    take = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - take))[: val_size - take.sum()]:
        take[i] += 1
    val = []
    for c, k in zip(classes, take, strict=True):
        idx = np.flatnonzero(labels == c)
        val.append(rng.choice(idx, size=k, replace=False))
    val_idx = np.sort(np.concatenate(val)) if val else np.array([], dtype=np.int64)
    mask = np.ones(n, dtype=bool)
    mask[val_idx] = False
    return np.flatnonzero(mask), val_idx


@dataclass(frozen=True)
class Splits:
    """FashionMNIST as uint8 tensors on the host: train / val (held out of train) / test.

    ``without_test()`` gives the same splits with no test images (``test_x``/``test_y`` None):
    what a sweep ships to its trials, which train and select on train and val only."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor | None
    test_y: torch.Tensor | None
    source: str

    @property
    def has_test(self) -> bool:
        return self.test_x is not None and self.test_y is not None

    def without_test(self) -> Splits:
        """These splits without the test images (the tensors are shared, not copied)."""
        return dataclasses.replace(self, test_x=None, test_y=None)

    def describe(self) -> str:
        test = len(self.test_y) if self.has_test else "none"
        return (
            f"FashionMNIST from {self.source}: train {len(self.train_y)}, "
            f"val {len(self.val_y)}, test {test}"
        )


def load_splits(
    data_dir: str | os.PathLike | None = None,
    val_size: int = 5000,
    seed: int = 0,
    subset: int | None = None,
) -> Splits:
    """Load and split FashionMNIST. ``subset`` keeps a stratified ``subset`` of the training images
    (and a proportional share of val; the test split is never cut) for smoke tests."""
    directory = resolve_data_dir(data_dir)
    train_x, train_y = read_split(directory, "train")
    test_x, test_y = read_split(directory, "test")
    train_idx, val_idx = stratified_split(train_y, val_size, seed)
    if subset is not None:
        if subset <= 0:
            raise ValueError(f"subset={subset} must be positive; omit it to use all the data")
        full_train = len(train_idx)
        if subset < full_train:
            _, pick = stratified_split(train_y[train_idx], subset, seed)
            train_idx = train_idx[pick]
        # Validation shrinks in proportion (at least 10 images) so smoke runs stay quick.
        n_val = max(10, len(val_idx) * len(train_idx) // full_train)
        if n_val < len(val_idx):
            _, vpick = stratified_split(train_y[val_idx], n_val, seed)
            val_idx = val_idx[vpick]

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(a))  # a copy: IDX buffers are read-only

    return Splits(
        train_x=t(train_x[train_idx]),
        train_y=t(train_y[train_idx]),
        val_x=t(train_x[val_idx]),
        val_y=t(train_y[val_idx]),
        test_x=t(test_x),
        test_y=t(test_y),
        source=str(directory),
    )


def to_unit_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, 28, 28) or (N, 1, 28, 28) as float32 (N, 1, 28, 28) in [0, 1]: the
    pixels divided by 255, on the images' device (move uint8 images first: 4x fewer bytes)."""
    if images.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images, got {images.dtype}")
    if images.ndim == 3:
        images = images.unsqueeze(1)
    return images.float().div_(255.0)


class DeviceSplit:
    """One split on the trial's device: images scaled to [0, 1] float (N, 1, 28, 28), labels int64.

    Batches are slices of a ``torch.randperm`` on the same device: no DataLoader, no host copies.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, device: torch.device):
        self.x = to_unit_float(x.to(device, non_blocking=True))
        self.y = y.to(device, non_blocking=True)
        self.device = device

    @classmethod
    def of(cls, x: torch.Tensor, y: torch.Tensor) -> DeviceSplit:
        """A split over tensors already on their device (e.g. precomputed latent codes)."""
        split = cls.__new__(cls)
        split.x, split.y, split.device = x, y, x.device
        return split

    def __len__(self) -> int:
        return len(self.y)

    def batches(self, batch_size: int, shuffle: bool, generator: torch.Generator | None = None):
        n = len(self)
        if shuffle:
            order = torch.randperm(n, device=self.device, generator=generator)
            for idx in order.split(batch_size):
                yield self.x[idx], self.y[idx]
        else:
            for start in range(0, n, batch_size):
                yield self.x[start : start + batch_size], self.y[start : start + batch_size]
