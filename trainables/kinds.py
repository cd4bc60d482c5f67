"""The model kinds, found rather than listed: a module of ``trainables/`` that defines
``MODEL_KIND`` (a ``ModelKind``) is one, and the sweeps, ``python -m trainables``, ``load_model``
and the report take it from there. Adding a model is its ``models/`` module and its
``trainables/`` module (docs/adding-a-model.md).
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch


@dataclass(frozen=True)
class ModelKind:
    """What the framework needs to know of a model kind beyond its module's functions.

    * ``curves``: the panels of its training curves in the report (y-axis label, metric names).
    * ``figures``: the report's figure families it gets (``analysis/figures.py``, ``FAMILIES``):
      "autoencoder" (reconstructions and latent codes: a model with ``encode`` and ``decode``),
      "generator" (FID-FM over epochs and sample grids: ``fid`` in its history, ``samples`` in
      its checkpoints, ``test_fid``), "gan" (its two losses, samples through an autoencoder),
      "classifier" (the confusion matrix).
    * ``build``: the untrained network from a checkpoint's ``model_args`` (the latent-2
      figure's "untrained" panel).
    * ``encoder``: its model has an ``encoder`` of the report's shape (``models.Encoder``) that
      the classifier can build on.
    * ``label``: what the report's sections and captions call it (default: ``name``).
    """

    name: str
    curves: tuple[tuple[str, tuple[str, ...]], ...]
    figures: tuple[str, ...] = ()
    build: Callable[..., torch.nn.Module] | None = None
    encoder: bool = False
    label: str = ""

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", self.name)


@functools.cache
def kinds() -> dict[str, ModelKind]:
    """Every model kind of ``trainables/``, by name, in the order of its modules' names."""
    found: dict[str, ModelKind] = {}
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if info.name.startswith("_") or info.ispkg:
            continue
        kind = getattr(importlib.import_module(f"trainables.{info.name}"), "MODEL_KIND", None)
        if isinstance(kind, ModelKind):
            if info.name != kind.name:
                raise RuntimeError(f"trainables/{info.name}.py declares the kind {kind.name!r}")
            found[kind.name] = kind
    return found


def kind_of(name: str) -> ModelKind:
    """The kind called ``name``; ValueError naming the kinds there are."""
    if name not in kinds():
        raise ValueError(f"unknown model kind {name!r}; choose one of {tuple(kinds())}")
    return kinds()[name]


def module_for(name: str) -> ModuleType:
    """The trainable module of the kind ``name`` (``trainables/<name>.py``)."""
    return importlib.import_module(f"trainables.{kind_of(name).name}")
