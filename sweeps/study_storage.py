"""The Optuna study's storage: which database holds it, opening it, and keeping a SQLite file
beside an experiment that lives in object storage.

``--study-storage URL`` names any SQLAlchemy database (PostgreSQL for a study several drivers
share); without it the study is SQLite in ``<experiment>/optuna.db``. SQLite cannot live in
object storage, so for an s3:// or gs:// experiment the file is kept on the driver's disk and
copied to ``<experiment>/optuna.db`` when the sweep ends (and back, to resume elsewhere).
Passwords never reach a file or a log: ``masked_url`` is what sweep.json records.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import optuna
import pyarrow.fs as pafs
import sqlalchemy

from sweeps.experiment import Folder
from sweeps.layout import STUDY_FILE
from sweeps.settings import Settings
from trainables.data import cache_dir
from trainables.errors import UsageError


def study_storage_url(settings: Settings, exp: Folder) -> str:
    """--study-storage, else SQLite in <experiment>/optuna.db (on the driver's disk for a remote
    experiment)."""
    if settings.study_storage:
        return settings.study_storage
    if exp.local is not None:
        return f"sqlite:///{exp.local / STUDY_FILE}"
    key = hashlib.sha1(exp.uri.encode()).hexdigest()[:8]
    path = cache_dir() / "studies" / f"{settings.name}-{key}.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def sqlite_path(url: str) -> Path | None:
    """The file of a sqlite:/// URL, else None."""
    parsed = sqlalchemy.engine.make_url(url)
    return Path(parsed.database) if parsed.get_backend_name() == "sqlite" else None


def masked_url(url: str) -> str:
    """The storage URL with any password replaced by ***, for files and logs."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def open_study_storage(url: str, study_name: str) -> optuna.storages.BaseStorage:
    """The storage of a new sweep's study; a study of that name must not exist there yet."""
    try:
        storage = optuna.storages.RDBStorage(url)
    except Exception as e:
        raise UsageError(
            f"cannot open the Optuna study storage {masked_url(url)} ({type(e).__name__}: {e})",
            "pass a SQLAlchemy URL that works (sqlite:///path.db, postgresql://..., mysql://...)",
        ) from None
    if study_name in optuna.study.get_all_study_names(storage):
        raise UsageError(
            f"the study storage {masked_url(url)} already has a study named {study_name!r}",
            "pick another --name, or delete that study (optuna delete-study)",
        )
    return storage


def copy_study_up(exp: Folder, record: dict[str, Any]) -> None:
    """At the end of a remote experiment's sweep: its SQLite study into <experiment>/optuna.db."""
    if record.get("study_file") and exp.local is None:
        local_db = sqlite_path(record["study_storage"])
        exp.copy_in(pafs.LocalFileSystem(), str(local_db), STUDY_FILE)


def fetch_study_copy(exp: Folder, record: dict[str, Any]) -> None:
    """Resuming a remote experiment on another machine: put its optuna.db back where the
    searcher's SQLite URL expects it."""
    if not record.get("study_file") or exp.local is not None:
        return
    local_db = sqlite_path(record["study_storage"])
    if local_db.exists():
        return
    if not exp.exists(STUDY_FILE):  # the driver died before it could copy the study up
        raise UsageError(
            f"--resume {exp.uri}: its Optuna study {local_db} is not on this machine, and "
            f"{exp.uri_of(STUDY_FILE)} does not exist (the sweep's driver was killed)",
            "resume it on the machine whose driver started it; for sweeps that must resume "
            "anywhere, pass --study-storage postgresql://... when you start them",
        )
    local_db.parent.mkdir(parents=True, exist_ok=True)
    local_db.write_bytes(exp.read_bytes(STUDY_FILE))
