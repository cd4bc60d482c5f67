"""Shared fixtures: where the real FashionMNIST is (tests marked realdata skip without it), and
W&B kept offline in every test."""

import os
from pathlib import Path

import pytest

from trainables import data


@pytest.fixture(autouse=True)
def _wandb_offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", os.environ.get("WANDB_MODE", "offline"))
    monkeypatch.setenv("WANDB_SILENT", "true")


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
