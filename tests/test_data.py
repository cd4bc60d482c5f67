"""IDX reader, dataset resolution and splits. The corrupt-file tests write their own small files."""

import gzip
import struct

import numpy as np
import pytest

from trainables import data
from trainables.data import DataError, read_idx, stratified_split


def write_idx(path, array, magic_dtype=0x08, gz=False):
    array = np.asarray(array, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, magic_dtype, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    raw = header + array.tobytes()
    (gzip.open if gz else open)(path, "wb").write(raw)
    return path


def write_dataset(directory, n_train=50, n_test=20, gz=True):
    rng = np.random.default_rng(0)
    sfx = ".gz" if gz else ""
    write_idx(
        directory / f"train-images-idx3-ubyte{sfx}", rng.integers(0, 256, (n_train, 28, 28)), gz=gz
    )
    write_idx(directory / f"train-labels-idx1-ubyte{sfx}", np.arange(n_train) % 10, gz=gz)
    write_idx(
        directory / f"t10k-images-idx3-ubyte{sfx}", rng.integers(0, 256, (n_test, 28, 28)), gz=gz
    )
    write_idx(directory / f"t10k-labels-idx1-ubyte{sfx}", np.arange(n_test) % 10, gz=gz)
    return directory


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip(tmp_path, gz):
    a = np.arange(2 * 28 * 28).reshape(2, 28, 28) % 256
    out = read_idx(write_idx(tmp_path / ("x.gz" if gz else "x"), a, gz=gz))
    assert out.dtype == np.uint8 and out.shape == (2, 28, 28)
    np.testing.assert_array_equal(out, a)


def test_bad_magic_is_named(tmp_path):
    p = write_idx(tmp_path / "bad", np.zeros((3, 28, 28)), magic_dtype=0x0D)  # float dtype code
    with pytest.raises(DataError, match=r"bad.*magic"):
        read_idx(p)


def test_truncated_file_is_named(tmp_path):
    p = write_idx(tmp_path / "trunc", np.zeros((3, 28, 28)))
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"trunc.*truncated"):
        read_idx(p)


def test_corrupt_gzip_is_named(tmp_path):
    p = tmp_path / "broken.gz"
    p.write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(DataError, match="broken.gz"):
        read_idx(p)


def test_mismatched_counts_and_bad_labels(tmp_path):
    write_dataset(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(49) % 10, gz=True)
    with pytest.raises(DataError, match="50 images but .* 49 labels"):
        data.read_split(tmp_path, "train")
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.full(50, 11), gz=True)
    with pytest.raises(DataError, match="label 11 outside 0-9"):
        data.read_split(tmp_path, "train")


def test_explicit_dir_wins_and_missing_dir_is_clear(tmp_path, monkeypatch):
    write_dataset(tmp_path, gz=False)
    assert data.resolve_data_dir(tmp_path) == tmp_path
    monkeypatch.setenv("LATENTSWEEP_DATA", str(tmp_path))
    assert data.resolve_data_dir() == tmp_path
    with pytest.raises(DataError, match="does not exist"):
        data.resolve_data_dir(tmp_path / "nope")
    (tmp_path / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(DataError, match="lacks the four"):
        data.resolve_data_dir(tmp_path)


def test_no_data_and_no_download_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("LATENTSWEEP_DATA", raising=False)
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "debian")
    monkeypatch.setenv("LATENTSWEEP_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        data.resolve_data_dir(download=False)


def test_stratified_split_sizes_shares_and_seed():
    labels = np.repeat(np.arange(10), [600, 500, 700, 600, 600, 600, 600, 600, 400, 400])
    tr, va = stratified_split(labels, 600, seed=3)
    assert len(va) == 600 and len(tr) == len(labels) - 600
    assert not set(tr) & set(va)
    counts = np.bincount(labels[va], minlength=10)
    expected = np.bincount(labels, minlength=10) * 600 / len(labels)
    assert np.all(np.abs(counts - expected) <= 1)
    np.testing.assert_array_equal(va, stratified_split(labels, 600, seed=3)[1])
    assert not np.array_equal(va, stratified_split(labels, 600, seed=4)[1])


def test_load_splits_on_synthetic_dir(tmp_path):
    write_dataset(tmp_path, n_train=100, n_test=30)
    s = data.load_splits(tmp_path, val_size=20, seed=0)
    assert (len(s.train_y), len(s.val_y), len(s.test_y)) == (80, 20, 30)
    assert s.train_x.dtype.is_floating_point is False and s.train_x.shape[1:] == (28, 28)
    assert np.all(np.bincount(s.val_y.numpy(), minlength=10) == 2)


@pytest.mark.realdata
def test_real_fashion_mnist_splits(real_data_dir):
    s = data.load_splits(real_data_dir)
    assert (len(s.train_y), len(s.val_y), len(s.test_y)) == (55000, 5000, 10000)
    assert np.all(np.bincount(s.val_y.numpy(), minlength=10) == 500)
    assert int(s.test_x.float().mean()) in range(60, 80)  # FashionMNIST's mean pixel is ~73


def test_to_unit_float_scales_uint8_and_adds_the_channel_axis():
    import torch

    images = torch.tensor([[[0, 51], [255, 102]]], dtype=torch.uint8)  # (1, 2, 2)
    x = data.to_unit_float(images)
    assert x.dtype == torch.float32 and x.shape == (1, 1, 2, 2)
    torch.testing.assert_close(x, torch.tensor([[[[0.0, 0.2], [1.0, 0.4]]]]))
    assert data.to_unit_float(images.unsqueeze(1)).shape == (1, 1, 2, 2)
    split = data.DeviceSplit(images, torch.tensor([3]), torch.device("cpu"))
    assert torch.equal(split.x, x)
    with pytest.raises(TypeError, match="uint8"):
        data.to_unit_float(x)
