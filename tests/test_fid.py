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
from trainables.data import read_split

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


def _gaussian_features(rng: np.random.Generator, mix: np.ndarray, mean: np.ndarray) -> np.ndarray:
    return rng.normal(size=(fid.FID_SAMPLES, len(mean))) @ mix + mean


# pytorch-fid 0.3.0 passes scipy.linalg.sqrtm the disp argument that SciPy deprecates.
@pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated:DeprecationWarning")
@pytest.mark.parametrize("seed", [0, 1])
def test_frechet_matches_pytorch_fid(seed):
    """Against pytorch-fid's calculate_frechet_distance (the scipy.linalg.sqrtm route; only the
    function: no Inception weights are downloaded) on 128-d Gaussian feature sets of 5,000
    samples, as FID-FM's statistics are made: two samples of one distribution (FID-FM ~1, like
    real against real or a well-trained generator), a slightly moved one (~1.5) and a far one
    (~1900, like an untrained generator). Measured relative differences: at most 1.8e-10 (FID
    ~1) and 4e-14 (far), over seeds 0-3; the tolerance leaves a factor of 50."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(seed)
    d = fid.FEATURE_DIM
    mix, mean = rng.normal(size=(d, d)) / np.sqrt(d), rng.normal(size=d)
    base = fid.activation_stats(_gaussian_features(rng, mix, mean))
    others = {
        "same": (mix, mean),
        "near": (
            mix + 0.05 * rng.normal(size=(d, d)) / np.sqrt(d),
            mean + 0.05 * rng.normal(size=d),
        ),
        "far": (3 * rng.normal(size=(d, d)) / np.sqrt(d), mean + 3 * rng.normal(size=d)),
    }
    for name, (other_mix, other_mean) in others.items():
        other = fid.activation_stats(_gaussian_features(rng, other_mix, other_mean))
        ours = fid.frechet_distance(*base, *other)
        theirs = float(calculate_frechet_distance(*base, *other))
        assert ours == pytest.approx(theirs, rel=1e-8), name
        assert (0.5 < ours < 3) if name != "far" else ours > 1000, (name, ours)


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
    # Like with like: the same batches, so the same float32 arithmetic; only the input differs.
    net = fid.load_reference("cpu")
    raw = torch.randint(0, 256, (10, 28, 28), dtype=torch.uint8)
    for batch_size in (4, 1000):
        feats = fid.features(raw, net, batch_size=batch_size)
        assert feats.shape == (10, fid.FEATURE_DIM) and feats.dtype == np.float64
        scaled = fid.features(raw.float().div(255).unsqueeze(1), net, batch_size=batch_size)
        np.testing.assert_array_equal(feats, scaled)


def _float32_tolerance(net, images: torch.Tensor) -> np.ndarray:
    """How far float32 rounding may move each feature (N, 128) when it is summed in another order.

    Feature j is relu(b_j + sum_i W_ji h_i) over the K = 3136 inputs h of the last linear layer
    (the convolutions before it sum 9 to 576 terms each, fewer). Another batch size (or thread
    count) makes the kernels block, and so sum, in another order. Two orders of a K-term float32
    sum differ by at most about K u A_j and typically by sqrt(K) u A_j, with A_j = |b_j| +
    sum_i |W_ji h_i| the total magnitude of the terms and u = 2**-24 float32's unit roundoff
    (rounding errors that are independent add up like a random walk; Higham, "Accuracy and
    Stability of Numerical Algorithms", sections 3.1 and 4.2). The relu never amplifies a
    difference. So the tolerance is sqrt(K) u A_j: on this CPU, at 1 and 2 threads and batches
    1, 3 and 4 against 1000, the largest difference seen was 0.063 of it."""
    linear = net.body[-2]
    assert isinstance(linear, torch.nn.Linear) and linear.out_features == fid.FEATURE_DIM
    with torch.inference_mode():
        h = net.body[:-2](fid._as_images01(images)).double()
    magnitude = h.abs() @ linear.weight.double().abs().T + linear.bias.double().abs()
    u = 2.0**-24
    return (np.sqrt(linear.in_features) * u * magnitude).numpy()


def test_features_depend_on_the_batch_size_only_through_float32_rounding():
    net = fid.load_reference("cpu")
    images = torch.randint(
        0, 256, (10, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    reference = fid.features(images, net, batch_size=1000)
    tolerance = _float32_tolerance(net, images)
    for batch_size in (1, 3, 4):
        diff = np.abs(fid.features(images, net, batch_size=batch_size) - reference)
        worst = np.unravel_index(np.argmax(diff / tolerance), diff.shape)
        assert (diff <= tolerance).all(), (
            f"batch {batch_size}: feature {worst} moved by {diff[worst]:.3g}, beyond float32 "
            f"rounding ({tolerance[worst]:.3g})"
        )


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


@pytest.fixture(scope="module")
def test_split(real_data_dir):
    images, labels = read_split(real_data_dir, "test")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels)


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


@pytest.mark.parametrize("script", ["gan_sweep", "vae_sweep"])
def test_a_sweep_without_the_weights_stops_in_one_line_before_ray(
    script, tmp_path, monkeypatch, capsys
):
    """Both FID-FM sweeps check the weights once, before Ray starts, and say it the same way:
    one ``error:`` line naming the file and how to restore it, exit status 2."""
    import importlib

    module = importlib.import_module(f"sweeps.{script}")
    monkeypatch.setattr(fid, "WEIGHTS_PATH", tmp_path / "absent.pt")
    with pytest.raises(SystemExit) as info:
        module.main(["--storage-path", str(tmp_path), "--wandb-mode", "disabled"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: ")
    assert str(tmp_path / "absent.pt") in err and "restore the committed file" in err
    assert not (tmp_path / script).exists()  # nothing started
