"""Shared fixtures: where the real FashionMNIST is (tests marked realdata skip without it), W&B
kept offline in every test, and Tune's experiment snapshots one a second (the sweeps' default is
3 s; the fault tests interrupt smoke sweeps of a few seconds once a snapshot shows progress)."""

import os
from pathlib import Path

import pytest

from trainables import data


@pytest.fixture(autouse=True)
def _wandb_offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", os.environ.get("WANDB_MODE", "offline"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", os.environ.get("TUNE_GLOBAL_CHECKPOINT_S", "1"))


def _real_dir() -> Path | None:
    try:
        return data.resolve_data_dir(download=False)
    except data.DataError:
        return None


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    directory = _real_dir()
    if directory is None:
        pytest.skip("FashionMNIST not installed (apt-get install dataset-fashion-mnist)")
    return directory


@pytest.fixture(scope="session")
def small_splits(real_data_dir):
    """A stratified 2,000-image training subset of the real data (val shrinks with it)."""
    return data.load_splits(real_data_dir, subset=2000)
