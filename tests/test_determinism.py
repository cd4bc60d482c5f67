"""``deterministic=true``: what each trainable sets before any CUDA work (deterministic
algorithms, cuDNN deterministic without autotuning, cuBLAS's workspace setting), and that the
three trainables run under it. These run on the CPU, where a resumed run replays exactly with or
without the option (tests/test_trainables.py); what it buys on a GPU, bit-identical replay, has
not been run on one yet (docs/reliability.md, docs/performance.md)."""

import os

import pytest
import torch
from synthetic import synthetic_splits

from trainables import autoencoder, checkpoints, classifier, config, devices, gan, reporting


@pytest.fixture(autouse=True)
def _torch_flags(monkeypatch):
    """Each test starts from torch's defaults and leaves them as it found them."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    flags = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    yield
    torch.use_deterministic_algorithms(flags[0])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = flags[1:]


def _state() -> tuple:
    return (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )


def test_the_option_sets_every_flag_and_unsets_them(monkeypatch):
    torch.backends.cudnn.benchmark = True  # e.g. left on by a benchmark in the same process
    devices.set_determinism(config.TrainConfig(deterministic=True))
    assert _state() == (True, True, False)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    devices.set_determinism(config.TrainConfig(deterministic=False))
    assert _state()[:2] == (False, False)

    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # the other valid value: kept
    devices.set_determinism(config.TrainConfig(deterministic=True))
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


def test_each_trainable_runs_under_it_and_says_so_in_its_checkpoint(tmp_path):
    data = synthetic_splits(train=64)
    common = {"epochs": 1, "device": "cpu", "deterministic": True}
    autoencoder.train_autoencoder(
        {**common, "latent_dim": 2}, data, reporting.FolderReporter(tmp_path / "ae", verbose=False)
    )
    assert _state()[:2] == (True, True) and os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    for mode in ("frozen", "finetune"):
        config = {**common, "encoder_checkpoint": str(tmp_path / "ae"), "mode": mode}
        classifier.train_classifier(
            config, data, reporting.FolderReporter(tmp_path / mode, verbose=False)
        )
    gan.train_gan(
        {**common, "fid_samples": 20},
        data,
        reporting.FolderReporter(tmp_path / "gan", verbose=False),
    )
    for run in ("ae", "frozen", "finetune", "gan"):
        assert checkpoints.load_checkpoint(tmp_path / run)["config"]["deterministic"] is True

    autoencoder.train_autoencoder(  # a run without it turns the flags off again
        {**common, "latent_dim": 2, "deterministic": False},
        data,
        reporting.FolderReporter(tmp_path / "plain", verbose=False),
    )
    assert _state()[:2] == (False, False)
