"""What the report's figures are drawn from: the sweep folder or checkpoint given on the command
line, the checkpoints named by its flags, and what is computed from them (the test split, the
models, their latent codes, the confusion matrix), each loaded or evaluated on first use.

A flag's checkpoint that is unusable is a ``UsageError`` as soon as ``Inputs`` is made; an input
a figure needs that is absent is ``MissingInput`` when that figure asks for it.
"""

from __future__ import annotations

import argparse
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from analysis import model_figures as mf
from analysis.sweep_folder import (
    MissingInput,
    SweepFolder,
    a,
    load_input_checkpoint,
    open_input,
    test_images,
)
from sweeps.folder.layout import SWEEP_FILE
from trainables import autoencoder, classifier
from trainables.best import test_metrics_beside
from trainables.data import DeviceSplit
from trainables.errors import UsageError
from trainables.kinds import kinds, module_for

LATENT2_HINT = (
    "train one (python -m trainables.autoencoder --latent-dim 2 --out runs/ae_latent2, or "
    "trainables.vae) and pass --latent2-checkpoint runs/ae_latent2"
)


def load_of_family(path: str, family: str, flag: str) -> dict[str, Any]:
    """A checkpoint given with ``flag`` whose kind gets the report's ``family`` of figures
    (``trainables/kinds.py``): an autoencoder's or a VAE's for "autoencoder", a GAN's or a
    VAE's for "generator"."""
    payload = load_input_checkpoint(path)
    fits = [name for name, kind in kinds().items() if family in kind.figures]
    if payload["kind"] not in fits:
        raise UsageError(
            f"{flag} {path} is {a(payload['kind'])} checkpoint",
            f"pass a checkpoint or sweep folder of one of: {', '.join(fits)}",
        )
    return payload


def compared_gan(path: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A --compare-gan input (a GAN's or a VAE's): (its name: the folder's, its checkpoint, its
    test metrics: best.json's for a sweep folder, else the test_metrics.json beside the
    checkpoint)."""
    payload = load_of_family(path, "generator", "--compare-gan")
    folder = Path(path)
    if (folder / SWEEP_FILE).is_file():
        best = SweepFolder.open(folder).best or {}
        return f"{folder.name} (best)", payload, dict(best.get("test") or {})
    name = Path(payload["path"]).parent.name
    return name, payload, test_metrics_beside(payload["path"])


class Inputs:
    """The report's inputs: ``sweep`` (a ``SweepFolder``, or None for a checkpoint given alone),
    the flags' checkpoints, and ``notes`` that drawing a figure leaves for the page."""

    def __init__(self, args: argparse.Namespace, source: SweepFolder | Path):
        self.args = args
        self.sweep = source if isinstance(source, SweepFolder) else None
        self._checkpoint_file = None if self.sweep else source
        self.given_checkpoint = load_input_checkpoint(args.checkpoint) if args.checkpoint else None
        self.latent2 = (
            load_of_family(args.latent2_checkpoint, "autoencoder", "--latent2-checkpoint")
            if args.latent2_checkpoint
            else None
        )
        if self.latent2 and self.latent2["model_args"]["latent_dim"] != 2:
            raise UsageError(
                f"--latent2-checkpoint {args.latent2_checkpoint} has latent_dim "
                f"{self.latent2['model_args']['latent_dim']}, not 2",
                LATENT2_HINT,
            )
        self.ae = (
            load_input_checkpoint(args.ae_checkpoint, autoencoder.KIND)
            if args.ae_checkpoint
            else None
        )
        self.compared_gans = [compared_gan(path) for path in args.compare_gan]
        if self.sweep and self.given_checkpoint:
            kind = self.given_checkpoint["kind"]
            if kind != self.sweep.model:
                model = self.sweep.model
                raise UsageError(
                    f"--checkpoint {args.checkpoint} is {a(kind)} checkpoint but "
                    f"{self.sweep.root} is {a(model)} sweep",
                    f"pass {a(model)} checkpoint",
                )
        self.notes: list[str] = []

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Inputs:
        """The inputs ``args.path`` and the flags name; ``UsageError`` when one is unusable."""
        source = open_input(args.path)
        if isinstance(source, SweepFolder):
            source.storage_override = args.study_storage
        return cls(args, source)

    @property
    def kind(self) -> str:
        if self.sweep:
            return self.sweep.model
        return self.payload["kind"]

    @property
    def folder(self) -> Path:
        """The sweep folder, or the folder of the checkpoint given alone."""
        return self.sweep.root if self.sweep else Path(self.payload["path"]).parent

    # -- the checkpoint -------------------------------------------------------------------------

    @cached_property
    def payload(self) -> dict[str, Any]:
        """The checkpoint the model figures are drawn from: --checkpoint, the sweep's best, or
        the checkpoint given as input."""
        if self.given_checkpoint:
            return self.given_checkpoint
        if self.sweep:
            return load_input_checkpoint(self.sweep.best_checkpoint(), self.sweep.model)
        return load_input_checkpoint(self._checkpoint_file)

    def checkpoint(self) -> dict[str, Any]:
        try:
            return self.payload
        except UsageError as e:  # a best checkpoint that is there but unreadable
            raise MissingInput(str(e)) from None

    def payload_or_none(self) -> dict[str, Any] | None:
        try:
            return self.payload
        except (MissingInput, UsageError):
            return None

    def history(self) -> pd.DataFrame:
        return pd.DataFrame(self.checkpoint()["history"])

    def test_metrics(self) -> dict[str, Any]:
        """The test metrics known without evaluating: best.json's for a sweep's best, else the
        ``test_metrics.json`` beside the checkpoint."""
        if self.sweep and self.sweep.best and not self.given_checkpoint:
            return dict(self.sweep.best.get("test") or {})
        payload = self.payload_or_none()
        return test_metrics_beside(payload["path"]) if payload else {}

    # -- the test split and what the models make of it ------------------------------------------

    def test(self) -> tuple[torch.Tensor, torch.Tensor]:
        data_dir = self.args.data_dir
        if data_dir is None:  # where the checkpoint was trained from, when that still exists
            config_dir = (self.payload_or_none() or {}).get("config", {}).get("data_dir")
            data_dir = config_dir if config_dir and Path(config_dir).is_dir() else None
        return test_images(data_dir, self.args.max_test_images)

    @cached_property
    def model(self) -> torch.nn.Module:
        """The model the figures are drawn from, as its kind's ``load_model`` gives it."""
        payload = self.checkpoint()
        return module_for(payload["kind"]).load_model(payload["path"])[0]

    @cached_property
    def codes(self) -> torch.Tensor:
        return mf.encode(self.model, self.test()[0])

    def latent2_model(self) -> tuple[torch.nn.Module, str]:
        if self.latent2 is not None:
            latent2 = module_for(self.latent2["kind"]).load_model(self.latent2["path"])[0]
            return latent2, self.latent2["path"]
        try:
            payload = self.checkpoint()
        except MissingInput:
            raise MissingInput(
                f"no latent-2 autoencoder and no checkpoint; {LATENT2_HINT}"
            ) from None
        if payload["model_args"]["latent_dim"] == 2:
            return self.model, payload["path"]
        raise MissingInput(
            f"no latent-2 autoencoder (the checkpoint has latent_dim "
            f"{payload['model_args']['latent_dim']}); {LATENT2_HINT}"
        )

    @cached_property
    def confusion(self) -> np.ndarray:
        model = classifier.load_model(self.checkpoint()["path"])[0]
        x, y = self.test()
        return classifier.evaluate(model, DeviceSplit.of(x, y))["confusion"].numpy()
