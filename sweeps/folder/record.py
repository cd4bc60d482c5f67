"""``sweep.json``, the experiment's record: written first when a sweep starts (its presence marks a
sweep folder), read by ``--resume`` (the settings to continue with) and by ``analysis/`` (what
the sweep was: model, metric, space, study)."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

import optuna
import ray

from sweeps.folder.layout import STUDY_FILE, SWEEP_FILE, SWEEP_FORMAT
from sweeps.folder.old_folders import check_format
from sweeps.folder.storage import Folder
from sweeps.folder.study_url import masked_url
from sweeps.request.search_space import describe_space
from sweeps.request.settings import Settings, SweepSpec
from trainables.errors import UsageError

if TYPE_CHECKING:
    from sweeps.cluster.ray_cluster import TrialResources


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def sweep_record(
    spec: SweepSpec,
    settings: Settings,
    resources: TrialResources,
    space: dict[str, Any],
    study_url: str | None,
    wandb_mode: str,
    strategy: dict[str, Any],
) -> dict[str, Any]:
    """sweep.json: what analysis needs to recognise and read this sweep, and what --resume needs.
    ``strategy``: its ``scheduler`` and ``searcher`` fields (``Strategy.record``). A sweep with
    no study (``study_url`` None: PBT) has null study fields."""
    axes, fixed = describe_space(space)
    saved_args = {**settings.as_args(), "gpus_per_trial": resources.gpu}
    if settings.study_storage:
        saved_args["study_storage"] = masked_url(settings.study_storage)
    return {
        "format": SWEEP_FORMAT,
        "model": spec.kind,
        "script": spec.script,
        "experiment": settings.name,
        "experiment_dir": settings.experiment_uri,
        "metric": spec.metric,
        "mode": spec.mode,
        "space": settings.space,
        "search_space": axes,
        "fixed_config": fixed,
        "num_samples": settings.num_samples,
        "max_epochs": settings.max_epochs,
        "scheduler": strategy["scheduler"],
        "searcher": strategy["searcher"],
        "max_concurrent": settings.max_concurrent,
        "resources_per_trial": {"cpu": resources.cpu, "gpu": resources.gpu},
        "study_storage": masked_url(study_url) if study_url else None,
        "study_name": settings.name if study_url else None,
        # the study as a file inside the experiment folder, optuna.journal (optuna.db before
        # the journal storage; None: only in study_storage, or no study: PBT)
        "study_file": None if settings.study_storage or not study_url else STUDY_FILE,
        "wandb": {
            "project": settings.wandb_project,
            "entity": settings.wandb_entity,
            "group": settings.name,
            "mode": wandb_mode,
        },
        "smoke_test": settings.smoke_test,
        "started": now(),
        "versions": {"ray": ray.__version__, "optuna": optuna.__version__},
        "args": saved_args,
    }


def describe_perturbations(mutations: dict[str, Any]) -> dict[str, Any]:
    """PBT's perturbation space as plain JSON: an axis as ``describe_space`` writes it, a list as
    ``{"neighbours": [...]}`` (PBT steps to an adjacent value)."""
    axes, lists = describe_space(mutations)
    return {k: axes.get(k) or {"neighbours": list(lists[k])} for k in mutations}


def read_sweep_file(spec: SweepSpec, directory: str) -> dict[str, Any]:
    """The record of the sweep in ``directory``, which --resume continues; UsageError if the
    folder is not a sweep of this script's model."""
    exp = Folder(directory)
    if not exp.exists(SWEEP_FILE):
        raise UsageError(
            f"--resume {directory}: no {SWEEP_FILE} there, so it is not a sweep's experiment folder",
            "pass the folder a sweep created (<storage-path>/<name>)",
        )
    try:
        saved = exp.read_json(SWEEP_FILE)
    except (ValueError, UnicodeDecodeError) as e:
        raise UsageError(
            f"--resume {directory}: {exp.uri_of(SWEEP_FILE)} is not valid JSON ({e}); the file "
            "is truncated or was edited",
            "restore it from a backup (--resume reads the sweep's settings from it)",
        ) from None
    if not isinstance(saved, dict) or not isinstance(saved.get("args"), dict):
        raise UsageError(
            f"--resume {directory}: {exp.uri_of(SWEEP_FILE)} is not a sweep record",
            "pass the folder a sweep created (<storage-path>/<name>)",
        )
    check_format(saved, f"--resume {directory}")
    if saved.get("model") != spec.kind:
        raise UsageError(
            f"--resume {directory} is a {saved.get('model')} sweep, not a {spec.kind} sweep",
            f"resume it with {saved.get('script', 'its own script')}",
        )
    return saved


def note_resume(
    exp: Folder,
    record: dict[str, Any],
    settings: Settings,
    wandb_mode: str,
    study_url: str | None = None,
) -> None:
    """Append this resume (when, from where, W&B's mode) to the record in sweep.json. A folder
    resumed somewhere else than it ran gets its new place recorded (``experiment_dir``, and
    ``study_storage`` when the resumed sweep's study is ``study_url``), a grown sweep its
    ``num_samples`` (and ``args``); the entry of the resume keeps the old values."""
    entry = {"time": now(), "address": settings.address, "wandb_mode": wandb_mode}
    moved = {"experiment_dir": exp.uri, "num_samples": settings.num_samples}  # grown
    if study_url is not None:
        moved["study_storage"] = masked_url(study_url)
    for key, value in moved.items():
        if record.get(key) != value:
            entry[f"{key}_before"] = record.get(key)
            record[key] = value
    record["args"]["num_samples"] = settings.num_samples
    record.setdefault("resumes", []).append(entry)
    exp.write_json(SWEEP_FILE, record)
