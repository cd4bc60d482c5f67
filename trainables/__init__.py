"""Ray Tune function trainables for the autoencoder, the latent classifier and the GAN.

Each module exposes ``train_<kind>(config, data=None, reporter=None)`` (the Tune trainable),
its typed config, ``PRESETS``, ``evaluate_checkpoint(path, data=None)`` and a command line
(``python -m trainables.<kind>`` or ``python -m trainables <kind>``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

KINDS = ("autoencoder", "classifier", "gan")


def module_for(kind: str) -> ModuleType:
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {KINDS}")
    return importlib.import_module(f"trainables.{kind}")


def evaluate_checkpoint(path, data=None, device: str = "auto") -> dict:
    """Test-split metrics of any latentsweep checkpoint, dispatched on the kind it records."""
    from trainables.core import load_checkpoint

    kind = load_checkpoint(path)["kind"]
    return module_for(kind).evaluate_checkpoint(path, data=data, device=device)
