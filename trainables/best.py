"""A trained model as a user's own code gets it: ``load_model(path)`` (also ``trainables.load_model``)
reads a sweep's best trial (its folder, or its ``best.json``), a single run's ``--out`` folder, or
one checkpoint file, and gives the module, its config and its metrics; ``best_config`` is what
``python -m trainables.<kind> --from SWEEP`` retrains (trainables/cli.py).

    from trainables import load_model
    best = load_model("runs/ae_sweep")
    best.model(images)            # the ConvAutoencoder, in eval mode, on the CPU
    best.config["lr"], best.metrics["test_mse"]

The sweep writes ``best.json`` and ``best/checkpoint.pt`` (sweeps/folder/results.py); their names are
defined here, and ``sweeps/folder/layout.py`` takes them from here. Only local paths are read: copy a
sweep from s3:// or gs:// first.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainables import module_for
from trainables.checkpoints import CHECKPOINT_FILE, load_checkpoint
from trainables.errors import UsageError

BEST_FILE = "best.json"
BEST_DIR = "best"
BEST_CHECKPOINT = f"{BEST_DIR}/{CHECKPOINT_FILE}"
TEST_METRICS_FILE = "test_metrics.json"  # a single run's test split scores (trainables/cli.py)


@dataclass(frozen=True)
class Trained:
    """A trained model and what describes it."""

    model: Any  # the torch module, in eval mode (the GAN's generator, its weight average if any)
    kind: str  # autoencoder | classifier | gan
    config: dict[str, Any]  # the config it was trained with (a sweep's: the best trial's)
    metrics: dict[str, Any]  # its last epoch's metrics, and the test split's where measured
    checkpoint: str  # the file it was loaded from
    source: dict[str, Any] = field(default_factory=dict)  # best.json, for a sweep


def test_metrics_beside(checkpoint: str | os.PathLike) -> dict[str, Any]:
    """``test_metrics.json`` written next to a checkpoint by ``python -m trainables.<kind>``
    ({} if there is none or it cannot be read)."""
    path = Path(checkpoint).parent / TEST_METRICS_FILE
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def read_best(path: str | os.PathLike) -> tuple[dict[str, Any], Path]:
    """The ``best.json`` of the sweep at ``path`` (its folder or the file) and the sweep's
    folder. UsageError, naming the fix, for anything else."""
    text = os.fspath(path)
    if "://" in text:
        raise UsageError(
            f"{text}: a remote sweep folder",
            "copy it to a local folder first (e.g. aws s3 cp --recursive, gsutil cp -r)",
        )
    p = Path(text)
    file = p if p.name == BEST_FILE else p / BEST_FILE
    if not file.is_file():
        why = "does not exist" if not p.exists() else f"holds no {BEST_FILE}"
        raise UsageError(
            f"{text} {why}, so it is not a finished sweep",
            "pass a sweep's folder (runs/ae_sweep) or its best.json, once the sweep has ended",
        )
    try:
        best = json.loads(file.read_text())
    except ValueError as e:
        raise UsageError(f"{file} is not valid JSON ({e})", "rerun the sweep's --resume") from None
    if not isinstance(best, dict):
        raise UsageError(f"{file} is not a sweep's best.json", "pass a sweep's folder")
    return best, file.parent


def _config_of(best: dict[str, Any], path: str | os.PathLike) -> dict[str, Any]:
    if not isinstance(best.get("config"), dict):
        raise UsageError(f"{path}: its best.json holds no config", "pass a finished sweep's folder")
    return dict(best["config"])


def best_config(kind: str, path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """The config of the best trial of the ``kind`` sweep at ``path``, and its best.json."""
    best, _ = read_best(path)
    if best.get("model") != kind:
        raise UsageError(
            f"{path} is a sweep of the {best.get('model')}, not of the {kind}",
            f"retrain it with python -m trainables.{best.get('model')} --from {path}",
        )
    return _config_of(best, path), best


def load_model(path: str | os.PathLike, map_location: str = "cpu") -> Trained:
    """The trained model at ``path``: a sweep's folder or ``best.json`` (its best trial), a run's
    ``--out`` folder, or a checkpoint file; the kind is read from the checkpoint."""
    p = Path(os.fspath(path))
    source: dict[str, Any] = {}
    if p.name == BEST_FILE or (p.is_dir() and (p / BEST_FILE).is_file()):
        source, folder = read_best(p)
        file = folder / BEST_CHECKPOINT
    elif p.is_dir():
        file = p / CHECKPOINT_FILE
    else:
        file = p
    if not file.is_file() and "://" not in os.fspath(path):
        raise UsageError(
            f"{path}: no checkpoint at {file}",
            "pass a sweep's folder, a run's --out folder or a checkpoint.pt",
        )
    kind = load_checkpoint(file, map_location=map_location)["kind"]
    model, payload = module_for(kind).load_model(file, map_location=map_location)
    if source:
        config = _config_of(source, path)
        metrics = {**source.get("val", {}), **source.get("test", {})}
    else:
        config = dict(payload["config"])
        metrics = dict(payload["history"][-1]) if payload.get("history") else {}
        metrics.update(test_metrics_beside(file))
    for key in ("training_iteration", "time_total_s", "train_seconds"):
        metrics.pop(key, None)
    return Trained(model, kind, config, metrics, str(file), source)
