"""Tests of FID-FM (trainables/fid.py): the Fréchet distance itself, the checksum guard on the
committed reference weights, the generator path, and (on the real test split) sanity values.

    python -m pytest -q tests/test_fid.py                 # all
    python -m pytest -q tests/test_fid.py -m "not slow"   # a few seconds
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from models.gan import Generator
from trainables import fid
from trainables.data import DataError, read_split, resolve_data_dir

# Measured with the committed weights (5,000 vs 5,000 test images): disjoint halves ~6.6,
# uniform noise ~1770 (an untrained GAN generator ~1480). Bounds leave a wide margin.
HALVES_MAX = 15.0
NOISE_MIN = 500.0


def _random_cov(rng: np.random.Generator, d: int, rank: int | None = None) -> np.ndarray:
    a = rng.normal(size=(d, rank or d))
    return a @ a.T / d


# ---------------------------------------------------------------------------------------------
# The Fréchet distance


def test_frechet_of_identical_gaussians_is_zero():
    rng = np.random.default_rng(0)
    mu, sigma = rng.normal(size=64), _random_cov(rng, 64)
    assert fid.frechet_distance(mu, sigma, mu, sigma) < 1e-8 * np.trace(sigma)


def test_frechet_matches_closed_form_for_diagonal_covariances():
    # For diagonal covariances: |mu1 - mu2|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2.
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=16), rng.normal(size=16)
    a, b = rng.uniform(0.1, 4, size=16), rng.uniform(0.1, 4, size=16)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = fid.frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    assert got == pytest.approx(expected, rel=1e-10)


def test_frechet_is_symmetric_and_finite_for_singular_covariances():
    # Dead ReLU units give zero-variance features: rank-deficient covariances must still work.
    rng = np.random.default_rng(2)
    mu1, mu2 = rng.normal(size=32), rng.normal(size=32)
    s1, s2 = _random_cov(rng, 32, rank=5), _random_cov(rng, 32, rank=20)
    d12, d21 = fid.frechet_distance(mu1, s1, mu2, s2), fid.frechet_distance(mu2, s2, mu1, s1)
    assert np.isfinite(d12) and d12 > 0
    assert d12 == pytest.approx(d21, rel=1e-8)
    assert fid.frechet_distance(mu1, s1, mu1, s1) < 1e-8 * np.trace(s1)


def test_frechet_rejects_mismatched_statistics():
    with pytest.raises(fid.FIDError, match="mismatched"):
        fid.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_activation_stats_are_float64_mean_and_covariance():
    feats = torch.randn(500, 8)
    mu, sigma = fid.activation_stats(feats)
    assert mu.dtype == sigma.dtype == np.float64
    assert mu.shape == (8,) and sigma.shape == (8, 8)
    np.testing.assert_allclose(sigma, np.cov(feats.double().numpy(), rowvar=False))


# ---------------------------------------------------------------------------------------------
# The committed reference weights and their checksum guard


def test_reference_weights_match_pinned_checksum_and_metadata():
    meta = json.loads(fid.WEIGHTS_PATH.with_suffix(".json").read_text())
    assert meta["sha256"] == fid.REFERENCE_SHA256
    assert meta["test_acc"] >= 0.91
    net = fid.load_reference("cpu")
    assert not net.training
    assert not any(p.requires_grad for p in net.parameters())
    assert fid.load_reference(torch.device("cpu")) is net  # cached per device


def test_checksum_guard_refuses_a_tampered_copy(tmp_path, monkeypatch):
    copy = tmp_path / "fm_reference.pt"
    shutil.copyfile(fid.WEIGHTS_PATH, copy)
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit inside the tensor data
    copy.write_bytes(bytes(data))
    monkeypatch.setattr(fid, "WEIGHTS_PATH", copy)
    with pytest.raises(fid.FIDError, match="do not retrain") as info:
        fid.load_reference("cpu")
    assert str(copy) in str(info.value)


def test_missing_weights_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(fid, "WEIGHTS_PATH", tmp_path / "absent.pt")
    with pytest.raises(fid.FIDError, match="not found"):
        fid.load_reference("cpu")


def test_features_refuse_images_outside_unit_range():
    net = fid.load_reference("cpu")
    with pytest.raises(fid.FIDError, match=r"\(x \+ 1\) / 2"):
        fid.features(torch.rand(4, 1, 28, 28) * 2 - 1, net)
    with pytest.raises(fid.FIDError, match="shape"):
        fid.features(torch.rand(4, 3, 28, 28), net)


def test_features_accept_uint8_and_match_scaled_floats():
    net = fid.load_reference("cpu")
    raw = torch.randint(0, 256, (10, 28, 28), dtype=torch.uint8)
    feats = fid.features(raw, net, batch_size=4)
    assert feats.shape == (10, fid.FEATURE_DIM) and feats.dtype == np.float64
    np.testing.assert_allclose(feats, fid.features(raw.float().div(255).unsqueeze(1), net))


# ---------------------------------------------------------------------------------------------
# The generator path used by the GAN trainable


def test_fid_from_generator_is_repeatable_and_leaves_state_alone():
    torch.manual_seed(0)
    gen = Generator(latent_size=8, hidden_size=32)
    gen.train()
    real = fid.real_stats(torch.rand(300, 1, 28, 28), "cpu", n=200)
    rng_before = torch.get_rng_state()
    first = fid.fid_from_generator(gen, 8, 200, real, "cpu", batch_size=64)
    second = fid.fid_from_generator(gen, 8, 200, real, "cpu", batch_size=200)
    assert torch.equal(torch.get_rng_state(), rng_before)  # training's RNG stream is untouched
    assert gen.training  # mode restored
    assert np.isfinite(first) and first > 0
    assert first == pytest.approx(second, rel=1e-6)  # same noise whatever the batch size
    other_seed = fid.fid_from_generator(gen, 8, 200, real, "cpu", seed=99)
    assert other_seed != pytest.approx(first, rel=1e-9)


def test_real_stats_takes_the_same_seeded_subset():
    images = torch.rand(50, 1, 28, 28)
    mu1, s1 = fid.real_stats(images, "cpu", n=20)
    mu2, s2 = fid.real_stats(images, "cpu", n=20)
    np.testing.assert_array_equal(mu1, mu2)
    np.testing.assert_array_equal(s1, s2)


# ---------------------------------------------------------------------------------------------
# Real data: the reference net and FID-FM sanity values on the 10,000 test images


def _test_split():
    try:
        directory = resolve_data_dir(download=False)
    except DataError:
        pytest.skip(
            "FashionMNIST not found (install dataset-fashion-mnist or set LATENTSWEEP_DATA)"
        )
    images, labels = read_split(directory, "test")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels)


@pytest.fixture(scope="module")
def test_split():
    return _test_split()


@pytest.fixture(scope="module")
def test_features(test_split):
    return fid.features(test_split[0], fid.load_reference("cpu"))


@pytest.mark.realdata
def test_fid_of_real_images_with_themselves_is_zero(test_split):
    images = test_split[0][:500]
    assert fid.fid_fm(images, images, "cpu") < 0.5


@pytest.mark.realdata
@pytest.mark.slow
def test_reference_net_test_accuracy(test_split, test_features):
    net = fid.load_reference("cpu")
    with torch.inference_mode():
        logits = net.head(torch.from_numpy(test_features).float())
    acc = (logits.argmax(1) == test_split[1]).float().mean().item()
    assert acc >= 0.91


@pytest.mark.realdata
@pytest.mark.slow
def test_fid_of_disjoint_real_halves_is_small(test_features):
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(len(test_features), generator=gen).numpy()
    half = len(order) // 2
    a = fid.activation_stats(test_features[order[:half]])
    b = fid.activation_stats(test_features[order[half:]])
    assert fid.frechet_distance(*a, *b) < HALVES_MAX


@pytest.mark.realdata
@pytest.mark.slow
def test_fid_of_uniform_noise_is_large(test_features):
    noise = torch.rand(fid.FID_SAMPLES, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    real = fid.activation_stats(test_features[: fid.FID_SAMPLES])
    fake = fid.activation_stats(fid.features(noise, fid.load_reference("cpu")))
    assert fid.frechet_distance(*real, *fake) > NOISE_MIN
