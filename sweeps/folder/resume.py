"""``--resume``: continuing an interrupted sweep from its experiment folder.

Before Ray starts, ``check_restorable`` makes sure Ray Tune's state files and the Optuna study
are there and whole; then ``restore_tuner`` points the searcher at the study in the folder
given, notes the resume in sweep.json and asks Tune to restore the experiment (the searcher,
the scheduler, the callbacks and every trial), retrying errored trials from their last
checkpoint.

The folder given is the only one read or written, wherever the sweep ran before: Tune moves
its trials to the folder it restores from, and the study is ``<folder>/<study_file>`` (sweep.json's:
``optuna.journal``, or ``optuna.db`` for a folder written before the journal; for a remote
folder, its copy on this machine: ``study_storage.study_storage_url``) whatever path sweep.json
or Tune's pickles hold (``study_storage.SweepJournalStorage``, ``SweepStudyStorage``).

Folders written by older versions resume as they are: ``sweeps/folder/old_folders.py`` makes the
names their pickles hold importable first (tests/test_old_experiment_resumes.py).
"""

from __future__ import annotations

import fnmatch
import json
import pickletools
from typing import Any

from ray import cloudpickle, tune
from ray.tune.search.sample import Domain

from sweeps.cluster import private_api
from sweeps.folder import old_folders
from sweeps.folder.layout import SWEEP_FILE, TUNE_STATE, TUNER_FILE
from sweeps.folder.record import note_resume
from sweeps.folder.storage import Folder
from sweeps.folder.study_storage import (
    SweepJournalStorage,
    SweepStudyStorage,
    fetch_study_copy,
    repair_journal,
    resume_study_at,
    resumed_database_url,
    study_storage_url,
)
from sweeps.folder.study_url import journal_path, masked_url, study_file_path
from sweeps.request.settings import Settings
from trainables.errors import UsageError


def check_restorable(exp: Folder, settings: Settings | None = None) -> None:
    """Before Ray starts: Ray Tune's state files in ``exp`` are there and whole (the newest of
    each, as Tune reads them), and a sweep whose study is a file in its folder is not given
    another one (``settings``' --study-storage). A truncated file is then an error naming it
    rather than a traceback from inside Ray, or a searcher silently started afresh. Pickles are only parsed
    (``pickletools``), not loaded: nothing in them runs until Tune restores them."""
    if not exp.exists(TUNER_FILE):
        raise UsageError(
            f"--resume {exp.uri}: Ray Tune never started there (no {TUNER_FILE})",
            "start the sweep again without --resume",
        )
    names = exp.files()
    newest = {}
    for pattern, fmt in TUNE_STATE:
        matches = sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))
        if not matches:
            continue
        name = newest[pattern] = matches[-1]  # timestamped names: the last is the newest
        try:
            data = exp.read_bytes(name)
            if fmt == "json":
                json.loads(data)
            else:
                for _ in pickletools.genops(data):
                    pass
        except (ValueError, UnicodeDecodeError, OSError) as e:
            raise UsageError(
                f"--resume {exp.uri}: Ray Tune's state file {exp.uri_of(name)} is truncated or "
                f"corrupt ({type(e).__name__}: {str(e).splitlines()[0][:120]})",
                "restore the folder from a backup; or rerun the sweep under a new --name "
                "(its results.parquet and trial folders here stay readable)",
            ) from None
    # the pickles that hold the searcher, and so the study's storage
    record = exp.read_json(SWEEP_FILE) if exp.exists(SWEEP_FILE) else {}
    _check_study(
        exp, record, [newest[p] for p in (TUNER_FILE, "searcher-state-*.pkl") if p in newest]
    )
    if settings is not None and settings.study_storage and record.get("study_file"):
        raise UsageError(
            f"--resume {exp.uri}: its Optuna study is {record['study_file']} in the folder, not "
            f"{masked_url(settings.study_storage)}",
            "resume without --study-storage (it names the database of a sweep started with one)",
        )


def _check_study(exp: Folder, record: dict[str, Any], pickles: list[str]) -> None:
    """The study of a sweep (``record``, its sweep.json) that keeps it in its (local) folder is
    there; and if the folder has moved, Tune's pickles hold a ``SweepStudyStorage`` or
    ``SweepJournalStorage`` (one that --resume can point at the moved study: folders written
    before it existed pin the study to the old path)."""
    if not record.get("study_file") or exp.local is None:
        return  # another database (--study-storage), or a remote folder (fetch_study_copy)
    study = exp.local / record["study_file"]
    if not study.is_file():
        raise UsageError(
            f"--resume {exp.uri}: its Optuna study {study} is missing",
            f"put the sweep's {record['study_file']} back into the folder (the searcher "
            "continues from the trials it holds)",
        )
    recorded = study_file_path(record.get("study_storage") or "") or study
    moved = recorded.resolve() != study.resolve()
    markers = [cls.__name__.encode() for cls in (SweepStudyStorage, SweepJournalStorage)]
    if moved and not all(any(m in exp.read_bytes(name) for m in markers) for name in pickles):
        raise UsageError(
            f"--resume {exp.uri}: this folder was written by a version of latentsweep whose "
            f"saved searcher opens the Optuna study at {recorded}, where the folder was",
            f"move the folder back to {recorded.parent} to resume it",
        )


def restore_tuner(
    exp: Folder,
    record: dict[str, Any],
    settings: Settings,
    trainable,
    space: dict[str, Any],
    wandb_mode: str,
) -> tuple[tune.Tuner, str | None]:
    """The interrupted sweep's Tuner, restored from ``exp`` (and only from there), and the URL
    of its study (None: no study); ``record`` is its sweep.json, to which the resume is added
    (and written back)."""
    old_folders.install()  # before Tune unpickles what an older version wrote
    if not record.get("study_storage"):  # no study (PBT): nothing pickled opens one
        study_url = None
    elif record.get("study_file"):
        # <exp>/<study_file>, or its local copy
        study_url = study_storage_url(settings, exp, record["study_file"])
        fetch_study_copy(exp, study_url, record["study_file"])
        journal = journal_path(study_url)
        if journal is not None:  # its writer was killed, or stopped
            repair_journal(journal)
    else:  # a database of its own (--study-storage), its password given again
        study_url = resumed_database_url(settings, record)
    resume_study_at(study_url)
    _rewrite_search_state(exp, settings.num_samples)
    note_resume(exp, record, settings, wandb_mode, study_url)
    space = recorded_space(space, record)
    tuner = tune.Tuner.restore(exp.uri, trainable=trainable, resume_errored=True, param_space=space)
    return tuner, study_url


def recorded_space(space: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """``space`` as the sweep began it: each fixed value as sweep.json's ``fixed_config`` holds
    it, and a fixed key it lacks left out (the trainable's default, as before), so that trials
    started after a resume get what the first ones did even where this version's defaults moved
    (--smoke-test's batch size: 256 before 0.3, 32 since). Searched axes stay as given, and
    data_dir is where the data is now (the driver loads it and ships it to the trials)."""
    fixed = record.get("fixed_config")
    if not isinstance(fixed, dict):
        return space
    here = {"data_dir"}
    out = {k: v for k, v in space.items() if isinstance(v, Domain) or k in fixed or k in here}
    out.update(
        {k: v for k, v in fixed.items() if not isinstance(space.get(k), Domain) and k not in here}
    )
    return out


def _rewrite_search_state(exp: Folder, num_samples: int) -> None:
    """What the search algorithm pickled (the newest ``search_gen_state-*.json``, a
    ``SearchGenerator``'s state), made to fit the resume; the file is written back in place
    only if something changed.

    - Its place: Ray Tune (2.60) moves the trials it restores to the folder it restores from,
      but not the experiment its search algorithm pickled, from which it makes every trial it
      starts after the resume: those trials would write their results and checkpoints where the
      folder was. If that experiment names another folder than ``exp``, it is pointed at
      ``exp`` (the change Tune makes to each restored trial's storage).
    - Its size: Tune keeps the ``num_samples`` a sweep began with in ``total_samples`` (and
      ends the search once that many trials were made). A resume with a larger --num-samples
      raises it, so the searcher proposes the trials added, from the study that holds the
      others."""
    names = sorted(fnmatch.filter(exp.files(), "search_gen_state-*.json"))
    if not names:
        return
    state = cloudpickle.loads(exp.read_bytes(names[-1]))
    # SearchGenerator.get_state()["experiment"]: an Experiment, whose StorageContext says where
    # its trials go (what Ray's TuneController._restore_trials changes on each restored trial).
    where = "ray.tune.search.SearchGenerator's saved experiment"
    experiment = state.get("experiment") if isinstance(state, dict) else None
    storage = private_api.private(experiment, "storage", where, "ray")
    for attr in ("storage_filesystem", "storage_fs_path", "experiment_dir_name"):
        private_api.private(storage, attr, f"{where}.storage", "ray")
    changed = False
    parent, _, name = exp.path.rstrip("/").rpartition("/")
    if (storage.storage_fs_path, storage.experiment_dir_name) != (parent, name):
        storage.storage_filesystem, storage.storage_fs_path = exp.fs, parent
        storage.experiment_dir_name = name
        if hasattr(getattr(storage, "syncer", None), "storage_filesystem"):
            storage.syncer.storage_filesystem = exp.fs  # its uploads go the same way
        changed = True
    if num_samples > state["total_samples"]:  # SearchGenerator.get_state's keys
        state["total_samples"], state["finished"] = num_samples, False
        changed = True
    if changed:
        exp.write_bytes(names[-1], cloudpickle.dumps(state))
