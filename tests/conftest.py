"""Shared fixtures: where the real FashionMNIST is, W&B kept offline in every test, and Tune's
experiment snapshots one a second (the sweeps' default is 3 s; the fault tests interrupt smoke
sweeps of a few seconds once a snapshot shows progress).

Tests that need the real data say so with the ``real_data_dir`` fixture or the ``realdata``
marker. Without the data they skip, and the summary ends with one line counting them and saying
how to get it; under CI (``CI=true``) each of them fails instead, with one line saying why, so a
CI run can never pass with the real-data tests skipped."""

import functools
import os
from pathlib import Path

import pytest

from sweeps.cluster import private_api
from trainables import data

# Every Ray the tests start, here (fixtures' ray.init, ray.cluster_utils.Cluster) or in the
# processes they run (which inherit the variable), listens on 127.0.0.1 only, as a local sweep's
# Ray does (sweeps/cluster/private_api.py).
private_api.ray_on_loopback_only()

# Every skip for want of data starts with this, so the summary can count them.
NO_DATA = "FashionMNIST not found"
HOW_TO_GET_IT = (
    "run `make data` (Debian's package dataset-fashion-mnist, else torchvision's download) "
    "or set LATENTSWEEP_DATA to a folder holding the four IDX files"
)


@pytest.fixture(autouse=True)
def _wandb_offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", os.environ.get("WANDB_MODE", "offline"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", os.environ.get("TUNE_GLOBAL_CHECKPOINT_S", "1"))


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@functools.cache
def _find_data() -> tuple[Path | None, str]:
    """(the data folder, '') or (None, why not); never downloads (tests must not)."""
    try:
        return data.resolve_data_dir(download=False), ""
    except data.DataError as e:  # "problem; how to get it": the fix is said once, below
        return None, " ".join(str(e).split()).split("; ")[0]


def _require_data() -> Path:
    """The data folder; without it a skip, or under CI a failure (one line, no traceback)."""
    directory, why = _find_data()
    if directory is None:
        if in_ci():
            pytest.fail(
                f"{NO_DATA} and CI=true, so a real-data test may not skip ({why}); {HOW_TO_GET_IT}",
                pytrace=False,
            )
        pytest.skip(f"{NO_DATA} ({why})")
    return directory


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """A ``realdata`` test is decided before its fixtures start (a Ray, a trained model)."""
    if item.get_closest_marker("realdata") is not None:
        _require_data()


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    return _require_data()


@pytest.fixture(scope="module")
def local_ray(real_data_dir):
    """One local Ray (2 CPUs) shared by a module's in-process sweeps (about 10 s saved per sweep),
    shut down at the module's end: a test that checks that nothing left Ray initialised (e.g.
    tests/test_bad_input.py) never sees another module's."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def small_splits(real_data_dir):
    """A stratified 2,000-image training subset of the real data (val shrinks with it)."""
    return data.load_splits(real_data_dir, subset=2000)


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (path, line, "Skipped: reason")
        return str(longrepr[2]).removeprefix("Skipped: ")
    return ""


def pytest_terminal_summary(terminalreporter):
    """One line: how many tests skipped for want of data, and how to get it."""
    skipped = terminalreporter.stats.get("skipped", [])
    count = sum(_skip_reason(r).startswith(NO_DATA) for r in skipped)
    if count:
        tests = "test" if count == 1 else "tests"
        terminalreporter.write_line(
            f"{count} {tests} skipped for want of FashionMNIST (not run, so not proven): "
            f"{HOW_TO_GET_IT}",
            yellow=True,
            bold=True,
        )
