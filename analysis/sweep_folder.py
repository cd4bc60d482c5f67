"""Reading what a sweep or a training run left behind: sweep folders (``sweep.json``, ``best.json``,
``results.parquet``), Optuna storage, checkpoints and the FashionMNIST test split. Nothing here
writes a file, and nothing imports a sweep script.

The file names of a sweep folder come from ``sweeps.folder.layout``, the one module of ``sweeps/`` that
analysis imports.

Two kinds of failure:
  * ``UsageError`` (``trainables.errors``): the path given is unusable (neither a sweep folder
    nor a checkpoint, a checkpoint of the wrong kind); the command line prints
    ``error: <problem>; <fix>`` and exits 2.
  * ``MissingInput``: one input a figure needs is absent (no Optuna storage, no latent-2 run, no
    best checkpoint, no dataset); its message says what would produce it and the report lists
    the figure as skipped.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from sweeps.folder import outcome
from sweeps.folder.layout import (
    BEST_CHECKPOINT,
    BEST_DIR,
    BEST_FILE,
    EARLIER_TRIAL_ATTR,
    RESULTS_FILE,
    SQLITE_STUDY_FILE,
    STUDY_FILE,
    SWEEP_FILE,
)
from sweeps.folder.old_folders import check_format
from sweeps.folder.storage import Folder
from sweeps.folder.study_url import file_study_url, is_masked, loadable, study_file_path
from trainables import checkpoints, data
from trainables.errors import UsageError


class MissingInput(Exception):
    """An input one figure needs is absent; the message says what would produce it."""


def a(noun: str) -> str:
    """The noun with its indefinite article: 'an autoencoder', 'a gan'."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UsageError(
            f"{path}: not readable JSON ({e})", "rewrite it or rerun the sweep that made it"
        ) from None
    if not isinstance(value, dict):
        raise UsageError(f"{path}: expected a JSON object", "rerun the sweep that made it")
    return value


# ---------------------------------------------------------------------------------------------
# Sweep folders


@dataclass
class SweepFolder:
    """What a sweep left in its folder: ``sweep.json`` (always), the rest read on demand."""

    root: Path
    record: dict[str, Any]  # sweep.json (sweeps/folder/record.py)
    best: dict[str, Any] | None  # best.json, None until the sweep has finished
    storage_override: str | None = None  # --study-storage: a URL with the password sweep.json masks
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, root: str | Path) -> SweepFolder:
        root = Path(root)
        record = _read_json(root / SWEEP_FILE)
        check_format(record, str(root))
        best = _read_json(root / BEST_FILE) if (root / BEST_FILE).is_file() else None
        return cls(root, record, best)

    @property
    def model(self) -> str:
        return str(self.record.get("model") or (self.best or {}).get("model") or "unknown")

    @property
    def name(self) -> str:
        return str(self.record.get("experiment") or self.root.name)

    @property
    def metric(self) -> str:
        return str(self.record.get("metric") or (self.best or {}).get("metric") or "")

    @property
    def mode(self) -> str:
        return str(self.record.get("mode") or (self.best or {}).get("mode") or "min")

    @property
    def scheduler(self) -> dict[str, Any]:
        """sweep.json's ``scheduler``: its name and settings (``grace_period``... for ASHA)."""
        return self.record.get("scheduler") or {}

    @property
    def perturbed(self) -> bool:
        """The scheduler changed trials' configs while they ran (PBT): sweep.json lists what."""
        return "perturbations" in self.scheduler

    @property
    def strategy_words(self) -> str:
        """'a PBT sweep (--scheduler pbt)': the sweep's strategy, as a message names it."""
        flag = (self.record.get("args") or {}).get("scheduler")
        return f"a {self.scheduler.get('name', 'this')} sweep" + (
            f" (--scheduler {flag})" if flag else ""
        )

    def results(self) -> pd.DataFrame:
        """``results.parquet``: one row per trial per epoch."""
        if "results" not in self._cache:
            path = self.root / RESULTS_FILE
            if not path.is_file():
                raise MissingInput(
                    f"no {RESULTS_FILE} in {self.root}; the sweep runner writes it when the "
                    "sweep ends (rerun or finish the sweep)"
                )
            frame = pd.read_parquet(path)
            if frame.empty:
                raise MissingInput(f"{path} has no rows; the sweep finished no epoch")
            self._cache["results"] = frame
        return self._cache["results"]

    def storage_url(self) -> str:
        """``study_storage`` from sweep.json; a study file that moved with the folder is found
        at ``<exp>/<study_file>`` (sweep.json's: ``optuna.journal``, or ``optuna.db`` for a
        folder written before the journal). A file that exists nowhere is never opened, because
        opening it would create an empty study."""
        if self.storage_override:
            return self.storage_override
        if "study_storage" in self.record and self.record["study_storage"] is None:
            raise MissingInput(
                f"{self.strategy_words} has no Optuna study: Optuna has no part in it"
                + (" (pbt_hyperparameters.png shows its trials)" if self.perturbed else "")
            )
        url = self.record.get("study_storage") or (self.best or {}).get("study_storage")
        path = study_file_path(url) if url else None
        local = self.root / (self.record.get("study_file") or (path.name if path else STUDY_FILE))
        if url and path is None:
            if is_masked(url):
                raise MissingInput(
                    f"sweep.json's study storage {url} has its password masked; pass "
                    "--study-storage with the full URL"
                )
            return url  # a database server: let Optuna try it
        if path and path.is_file():
            return url
        if local.is_file():
            return file_study_url(local.resolve(), like=url)
        same = path is None or path.resolve() == local.resolve()
        looked = local if same else f"{path} nor {local}"
        raise MissingInput(
            f"no Optuna storage: no {looked}; a sweep writes it while it runs (or pass "
            "--study-storage URL)"
        )

    def study(self):
        """The Optuna study of the sweep, loaded from its storage."""
        if "study" not in self._cache:
            import optuna

            optuna.logging.set_verbosity(logging.WARNING)
            url = self.storage_url()
            name = self.record.get("study_name") or (self.best or {}).get("study_name")
            try:
                self._cache["study"] = optuna.load_study(study_name=name, storage=loadable(url))
            except KeyError:
                raise MissingInput(
                    f"no study {name!r} in {url}; check study_name in sweep.json"
                ) from None
            except Exception as e:  # SQLAlchemy/Optuna raise many types for a bad database
                raise MissingInput(
                    f"cannot open Optuna storage {url} ({type(e).__name__}: {e}); "
                    "check study_storage in sweep.json"
                ) from None
        return self._cache["study"]

    def trials(self) -> pd.DataFrame:
        """Every COMPLETE or PRUNED trial of the study, at the last epoch it reached
        (``trial_table``)."""
        if "trials" not in self._cache:
            self._cache["trials"] = trial_table(self.study())
        return self._cache["trials"]

    def best_checkpoint(self) -> Path:
        """The best trial's checkpoint: best.json's ``checkpoint``, else ``<exp>/best``."""
        recorded = Path(self.best["checkpoint"]) if (self.best or {}).get("checkpoint") else None
        for candidate in filter(None, (recorded, self.root / BEST_DIR)):  # the folder may move
            try:
                return checkpoints.checkpoint_file(candidate)
            except checkpoints.CheckpointError:
                continue
        raise MissingInput(
            f"no best checkpoint at {recorded or self.root / BEST_DIR}; the sweep writes it when "
            "it finishes, or pass --checkpoint"
        )


def trial_table(study) -> pd.DataFrame:
    """One row per COMPLETE or PRUNED trial of ``study``: ``number``, ``state``, ``epoch`` (the
    last it reported), ``value`` (its metric there; of a multi-objective study, --objectives,
    the first), ``curve`` ({epoch: value}) and
    ``param/<name>`` for each searched hyperparameter; ``attrs["distributions"]``: each
    parameter's Optuna distribution. FAIL trials (errored, diverged, rewound) hold no comparable
    value and are left out."""
    from optuna.trial import TrialState

    rows, distributions = [], {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        if EARLIER_TRIAL_ATTR in t.user_attrs:  # an earlier sweep's (--warm-start-from)
            continue
        distributions.update(t.distributions)
        curve = {  # of a multi-objective trial, the first objective's
            e: float(v[0] if isinstance(v, list) else v)
            for e, v in sorted(outcome.epoch_values(t).items())
        }
        epoch = max(curve, default=None)
        value = t.values[0] if t.values else (curve[epoch] if curve else None)
        if value is None:
            continue
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "epoch": epoch,
                "value": float(value),
                "curve": curve,
                **{f"param/{k}": v for k, v in t.params.items()},
            }
        )
    if not rows:
        raise MissingInput(
            "the study has no COMPLETE or PRUNED trial with a value; run the sweep (or let it "
            "report an epoch)"
        )
    table = pd.DataFrame(rows).sort_values("number").reset_index(drop=True)
    table.attrs["distributions"] = distributions
    return table


# ---------------------------------------------------------------------------------------------
# Inputs: a sweep folder or a checkpoint


# What the report reads of a sweep folder: the files it copies from object storage.
REMOTE_FILES = (
    SWEEP_FILE,
    BEST_FILE,
    RESULTS_FILE,
    STUDY_FILE,
    SQLITE_STUDY_FILE,
    BEST_CHECKPOINT,
)


def copy_remote_sweep(uri: str, into: Path) -> Path:
    """``into``, holding a copy of the files the report reads (``REMOTE_FILES``, those there
    are) of the sweep folder at ``uri`` in object storage (s3://, gs://), read through pyarrow's
    file systems as the sweep wrote them; UsageError if ``uri`` is not a sweep folder."""
    folder = Folder(uri)
    try:
        is_sweep = folder.exists(SWEEP_FILE)
    except OSError as e:  # no such bucket, no credentials, no endpoint
        raise UsageError(
            f"cannot read {uri} ({' '.join(str(e).split())[:200]})",
            "check the URI and the object store's credentials (AWS_* or GOOGLE_* variables)",
        ) from None
    if not is_sweep:
        raise UsageError(
            f"{uri} is not a sweep folder (no {SWEEP_FILE})",
            "pass the storage path and name the sweep printed (e.g. s3://bucket/runs/ae_sweep)",
        )
    for name in REMOTE_FILES:
        if folder.exists(name):
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            (into / name).write_bytes(folder.read_bytes(name))
    return into


def open_input(path: str | Path) -> SweepFolder | Path:
    """A ``SweepFolder`` for a sweep folder, the checkpoint file for a checkpoint file or
    folder."""
    path = Path(path)
    if not path.exists():
        raise UsageError(
            f"{path} does not exist",
            f"pass a sweep folder (with {SWEEP_FILE}) or a checkpoint file or folder",
        )
    if path.is_dir() and (path / SWEEP_FILE).is_file():
        return SweepFolder.open(path)
    try:
        return checkpoints.checkpoint_file(path)
    except checkpoints.CheckpointError:
        raise UsageError(
            f"{path} is not a sweep folder (no {SWEEP_FILE}) nor a checkpoint (no "
            f"{checkpoints.CHECKPOINT_FILE})",
            "pass the folder a sweep wrote or a checkpoint written by python -m trainables.<model>",
        ) from None


def load_input_checkpoint(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    """A checkpoint given on the command line (``checkpoints.load_checkpoint``), any problem the user's
    to fix (``UsageError`` naming the fix); a sweep folder stands for its best checkpoint."""
    path = Path(path)
    if path.is_dir() and (path / SWEEP_FILE).is_file():
        try:
            path = SweepFolder.open(path).best_checkpoint()
        except MissingInput as e:
            raise UsageError(str(e)) from None
    try:
        return checkpoints.load_checkpoint(path, kind)
    except checkpoints.CheckpointError as e:
        fix = (
            None if ";" in str(e) else f"pass {a(kind or 'latentsweep')} checkpoint file or folder"
        )
        raise UsageError(str(e), fix) from None


# ---------------------------------------------------------------------------------------------
# The test split


@functools.cache
def test_images(
    data_dir: str | None = None, max_images: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The FashionMNIST test images as floats in [0, 1] (N, 1, 28, 28) and labels (N,), the
    first ``max_images`` of them (the test file is not ordered by class). Never downloads; no
    dataset is ``MissingInput``."""
    try:
        directory = data.resolve_data_dir(data_dir, download=False)
        images, labels = data.read_split(directory, "test")
    except data.DataError as e:
        raise MissingInput(str(e)) from None
    if max_images is not None:
        images, labels = images[:max_images], labels[:max_images]
    x = data.to_unit_float(torch.from_numpy(images.copy()))  # as DeviceSplit scales them
    return x, torch.from_numpy(labels.copy())
