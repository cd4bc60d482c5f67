"""The encoder a classifier sweep builds on: an autoencoder checkpoint given by
``--encoder-checkpoint``, the best of an autoencoder sweep given by ``--encoder-from``, or, with
``--smoke-test`` and neither, a small one trained first on the sweep's own training images.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from types import MappingProxyType

from sweeps.folder.layout import BEST_CHECKPOINT, BEST_FILE, SWEEP_FILE
from sweeps.folder.storage import Folder, check_new, check_writable
from sweeps.request.settings import Settings, SweepSpec
from trainables import autoencoder, checkpoints, classifier, reporting
from trainables.data import load_splits
from trainables.errors import UsageError
from trainables.kinds import kinds

# The encoder --smoke-test trains when none is given: on the 8,000 smoke images, 3 epochs of
# batch 64 (375 steps) reach val_mse 0.027 (the mean image scores 0.088) in a few seconds on one
# core (tests/test_learning.py trains the same); on an untrained encoder all four smoke trials
# sat at val_acc 0.099 with every test image in one class.
SMOKE_ENCODER = dict(latent_dim=16, epochs=3, batch_size=64, lr=2e-3)


def resolve_encoder(checkpoint: str | None, sweep_dir: str | None) -> str:
    """The autoencoder checkpoint a classifier sweep builds on, as an absolute file path:
    ``checkpoint`` itself, or the best checkpoint of the autoencoder sweep in ``sweep_dir``
    (``sweep_dir/best/checkpoint.pt``, which its best.json names). Raises UsageError."""
    if bool(checkpoint) == bool(sweep_dir):
        raise UsageError(
            "the classifier needs an encoder: give exactly one of --encoder-checkpoint and "
            "--encoder-from",
            "e.g. --encoder-from runs/ae_sweep (the best of an autoencoder sweep)",
        )
    if sweep_dir:
        folder = Folder(sweep_dir)
        if folder.local is None:
            raise UsageError(
                f"--encoder-from {sweep_dir} is remote; trials need a local file",
                "download its best/checkpoint.pt and pass --encoder-checkpoint PATH",
            )
        if not folder.exists(BEST_FILE):
            raise UsageError(
                f"--encoder-from {sweep_dir}: no {BEST_FILE} (not a finished sweep folder)",
                "pass the folder of a finished autoencoder sweep, or --encoder-checkpoint PATH",
            )
        best = folder.read_json(BEST_FILE)
        model = kinds().get(best.get("model"))
        if model is None or not model.encoder:
            raise UsageError(
                f"--encoder-from {sweep_dir} is a {best.get('model')} sweep, whose model has no "
                "encoder",
                "pass the folder of an autoencoder or VAE sweep (e.g. runs/ae_sweep)",
            )
        checkpoint = str(folder.local / BEST_CHECKPOINT)
    path = Path(checkpoint).expanduser().resolve()
    if not path.exists():
        raise UsageError(
            f"encoder checkpoint {path} does not exist",
            "train one (python -m trainables.autoencoder --out DIR) or run sweeps/ae_sweep.py",
        )
    try:
        return classifier.encoder_payload(path)["path"]
    except checkpoints.CheckpointError as e:
        fix = "pass an autoencoder checkpoint (python -m trainables.autoencoder writes one)"
        raise UsageError(str(e), None if "; " in str(e) else fix) from None


def resolve_encoder_flags(extra: dict, resuming: bool) -> dict:
    """--encoder-checkpoint as an absolute file (a resumed sweep's is in its sweep.json); None
    when neither flag is given (``main`` then trains a smoke encoder or refuses)."""
    encoder = extra["encoder_checkpoint"], None if resuming else extra["encoder_from"]
    if not resuming and not any(encoder):
        return {**extra, "encoder_checkpoint": None}
    return {**extra, "encoder_checkpoint": resolve_encoder(*encoder)}


def with_smoke_encoder(spec: SweepSpec, settings: Settings) -> Settings:
    """Train ``SMOKE_ENCODER`` on the sweep's own training split (same data folder, val_size,
    data_seed and subset, so the encoder never sees the classifier's validation images) into
    ``<storage-path>/<name>_encoder`` and return ``settings`` naming its checkpoint (recorded in
    sweep.json, so --resume uses it). The storage path and the experiment are checked first;
    the folder belongs to the new experiment ``<name>``, so an older one there is replaced."""
    storage = Folder(settings.storage_path)
    if storage.local is None:
        raise UsageError(
            f"--smoke-test trains its encoder into --storage-path, but {storage.uri} is remote "
            "and trials need a local file",
            "pass --encoder-checkpoint PATH (a local autoencoder checkpoint)",
        )
    check_writable(storage)
    check_new(Folder(settings.experiment_uri), SWEEP_FILE)
    out = storage.local / f"{settings.name}_encoder"
    splits = load_splits(settings.data_dir, settings.val_size, settings.data_seed, settings.subset)
    config = {
        **SMOKE_ENCODER,
        "data_dir": splits.source,
        "val_size": settings.val_size,
        "data_seed": settings.data_seed,
        "subset": settings.subset,
    }
    t0 = time.time()
    autoencoder.train_autoencoder(config, splits, reporting.FolderReporter(out, verbose=False))
    checkpoint = resolve_encoder(str(out / checkpoints.CHECKPOINT_FILE), None)
    val_mse = checkpoints.load_checkpoint(checkpoint)["history"][-1]["val_mse"]
    print(
        f"{spec.name}: --smoke-test without an encoder: trained one ({SMOKE_ENCODER['epochs']} "
        f"epochs on {len(splits.train_y):,} images, val_mse {val_mse:.4f}, "
        f"{time.time() - t0:.0f} s) into {Path(checkpoint).parent}; "
        "--encoder-checkpoint or --encoder-from uses yours",
        flush=True,
    )
    extra = {**settings.extra, "encoder_checkpoint": checkpoint}
    return dataclasses.replace(settings, extra=MappingProxyType(extra))
