"""Ray Tune function trainables: one module per model kind (the autoencoder, the latent classifier,
the GAN, the VAE), found by ``trainables/kinds.py`` from the ``MODEL_KIND`` each one declares.

Each kind's module exposes ``train_<kind>(config, data=None,
reporter=None)`` (the Tune trainable, also ``TRAINABLE``), its typed config (``CONFIG``),
``PRESETS``, ``load_model(path)``, ``evaluate_checkpoint(path, data=None, device="auto")``,
optionally ``check_inputs(cfg)`` (what a run needs beyond its config, e.g. the classifier's
encoder, checked before anything is written) and a command line (``python -m trainables.<kind>`` or ``python -m trainables <kind>``).
"""

from __future__ import annotations

from trainables.kinds import kinds, module_for

__all__ = ["kinds", "load_model", "module_for"]


def load_model(path, map_location: str = "cpu"):
    """The trained model at ``path`` (a sweep's folder or best.json, a run's --out folder, a
    checkpoint): ``.model``, ``.config``, ``.metrics`` (``trainables/best.py``)."""
    from trainables.best import load_model as load

    return load(path, map_location)
