"""Ray Tune function trainables for the autoencoder, the latent classifier and the GAN.

Each module (one per model kind, ``KINDS``) exposes ``train_<kind>(config, data=None,
reporter=None)`` (the Tune trainable, also ``TRAINABLE``), its typed config (``CONFIG``),
``PRESETS``, ``load_model(path)``, ``evaluate_checkpoint(path, data=None, device="auto")``,
optionally ``check_inputs(cfg)`` (what a run needs beyond its config, e.g. the classifier's
encoder, checked before anything is written) and a command line (``python -m trainables.<kind>`` or ``python -m trainables <kind>``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

KINDS = ("autoencoder", "classifier", "gan")


def load_model(path, map_location: str = "cpu"):
    """The trained model at ``path`` (a sweep's folder or best.json, a run's --out folder, a
    checkpoint): ``.model``, ``.config``, ``.metrics`` (``trainables/best.py``)."""
    from trainables.best import load_model as load

    return load(path, map_location)


def module_for(kind: str) -> ModuleType:
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {KINDS}")
    return importlib.import_module(f"trainables.{kind}")
