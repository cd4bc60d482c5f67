"""The Optuna study's storage: which database holds it, opening it, and keeping the study file
beside an experiment that lives in object storage.

``--study-storage URL`` names any SQLAlchemy database (PostgreSQL for a study several drivers
share) or a journal file (``journal:///path``); without it the study is Optuna's journal storage
in ``<experiment>/optuna.journal`` (``JournalStorage`` on a ``JournalFileBackend``: each
operation one line appended under a file lock, the whole study replayed in memory; Optuna's
answer for one writing process, which a sweep's driver is, and for NFS; ``SweepJournalFile``
syncs it to disk once a second instead of at every line). It costs the
driver about a third of what SQLite did per trial (``bench/study_storage.py``, BENCHMARKS.md);
optuna-dashboard and ``optuna.load_study`` read it while the sweep runs. Folders written before
it keep their SQLite ``optuna.db`` (sweep.json's ``study_file`` says which file a folder has),
and resume and open in the report as they did. A study file cannot live in object storage, so
for an s3:// or gs:// experiment it is kept on the driver's disk and copied to the experiment
folder when the sweep ends (and back, to resume elsewhere). Passwords never reach a file or a
log: ``masked_url`` is what sweep.json records.

``--resume DIR`` finds the study in ``DIR`` (``DIR/<study_file>``), wherever the folder was when
the sweep started: Ray Tune pickles the searcher, and with it the study's storage and its URL or
path, into the folder, and Optuna's storages reopen that URL or path the moment they are
unpickled (they would open, or create, the study at the folder's old path). The storage a sweep
gives its searcher is a ``SweepStudyStorage`` or a ``SweepJournalStorage``, which --resume
points at the study it found (``resume_study_at``) before Tune unpickles anything.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pyarrow.fs as pafs
import sqlalchemy
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal import _file as optuna_journal_file

from sweeps.cluster import private_api
from sweeps.folder.layout import STUDY_FILE
from sweeps.folder.storage import Folder
from sweeps.folder.study_url import (
    file_study_url,
    is_masked,
    journal_path,
    masked_url,
    study_file_path,
)
from sweeps.request.settings import Settings
from trainables.data import cache_dir
from trainables.errors import UsageError


def study_storage_url(settings: Settings, exp: Folder, study_file: str = STUDY_FILE) -> str:
    """--study-storage, else the study file in the experiment folder (on the driver's disk for
    a remote experiment): ``study_file``, a new sweep's journal or the file an earlier sweep's
    sweep.json names (``optuna.db`` for one written before the journal)."""
    if settings.study_storage:
        return settings.study_storage
    if exp.local is not None:
        return file_study_url(exp.local / study_file)
    key = hashlib.sha1(exp.uri.encode()).hexdigest()[:8]
    path = cache_dir() / "studies" / f"{settings.name}-{key}{Path(study_file).suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    return file_study_url(path)


# The study a --resume in this process continues (None: the URL the storage was pickled with).
_resumed_study_url: str | None = None


def resume_study_at(url: str | None) -> None:
    """Before Ray Tune restores a sweep: every ``SweepStudyStorage`` unpickled from now on (the
    searcher's, from tuner.pkl and searcher-state-*.pkl) opens the study at ``url``, not the URL
    it was pickled with; None keeps the pickled URL (a database named by --study-storage).
    --resume calls it each time, so a later resume in the same process sets its own study."""
    global _resumed_study_url
    _resumed_study_url = url


_PICKLED = "optuna.storages.RDBStorage's pickled state"


class SweepJournalFile(JournalFileBackend):
    """Optuna's journal file, each operation appended under Optuna's lock as Optuna appends it
    (readers and other writers see it at once), but synced to disk (fsync) at most once a
    second, and when the sweep ends (``close_study_file``), instead of after every line.

    A sweep appends about 8 lines a trial. In a profile of a 300-trial sweep on 2 CPUs, the
    fsync of each took 7 ms of the driver's time per trial, more than TPE's ask (BENCHMARKS.md,
    section 6): each flushed the file system's journal, with the trials' checkpoint writes in
    it. What a sync guards against is a machine that loses power, not a killed driver (the
    lines are in the operating system's hands when ``append_logs`` returns): then the study may
    lose its last second, and Tune's own experiment state, results and checkpoints, which Tune
    writes without a sync, are no safer. ``repair_journal`` cuts a line left half-written."""

    SYNC_EVERY_S = 1.0

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path
        self._synced = -float("inf")  # the first append syncs
        self._holding = False  # inside held()
        # Optuna's own lock on the file and its context manager, looked up once
        lock = private_api.private(
            self, "_lock", "optuna.storages.journal.JournalFileBackend", "optuna"
        )
        locked = private_api.private(
            optuna_journal_file, "get_lock_file", "optuna.storages.journal._file", "optuna"
        )
        self._locked = lambda: locked(lock)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Inside, appends share one hold of Optuna's lock instead of taking it each time: the
        sweep's searcher appends several lines in one call (a new trial: the trial, each
        parameter, its Tune id), and a release (a rename and an unlink of the lock's symlink)
        took 5 ms of the driver per trial in a profile on 2 busy CPUs. Re-entrant."""
        if self._holding:
            yield
            return
        with self._locked():
            self._holding = True
            try:
                yield
            finally:
                self._holding = False

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs)
        lock = contextlib.nullcontext() if self._holding else self._locked()
        with lock, open(self.path, "ab") as f:
            f.write(text.encode("utf-8"))
            f.flush()
            if time.monotonic() - self._synced >= self.SYNC_EVERY_S:
                os.fsync(f.fileno())
                self._synced = time.monotonic()


class SweepJournalStorage(JournalStorage):
    """Optuna's ``JournalStorage`` on a file, pickled as the file's path alone (Optuna pickles
    the backend with its offset of every line read: a dict that grows with the study, which Tune
    would write into every searcher-state-*.pkl), and unpickled during a --resume on the study
    that ``resume_study_at`` named (the folder given, wherever it was when pickled). Tune
    pickles it by this module path: keep the name importable."""

    def __init__(self, path: Path) -> None:
        self._file = SweepJournalFile(str(path))
        super().__init__(self._file)

    def held(self) -> contextlib.AbstractContextManager:
        """The study's writes inside under one hold of its file's lock (``SweepJournalFile``)."""
        return self._file.held()

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self._file.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        path = Path(state["path"])
        if _resumed_study_url is not None:
            path = journal_path(_resumed_study_url)
            if path is None:  # restore_tuner refuses this before Tune unpickles anything
                raise UsageError(
                    f"--resume: the sweep's study is a journal file, not {masked_url(_resumed_study_url)}",
                    "resume without --study-storage",
                )
        if not path.is_file():  # JournalFileBackend would start an empty study there
            raise UsageError(
                f"--resume: the sweep's Optuna study {path} is missing",
                "put the sweep's optuna.journal back into its folder",
            )
        self.__init__(path)


class SweepStudyStorage(optuna.storages.RDBStorage):
    """Optuna's ``RDBStorage``, but pickled without its password, and unpickled during a
    --resume it opens the study that ``resume_study_at`` named: ``<the folder given>/optuna.db``
    for a sweep whose study is in its experiment folder, even if the folder has moved since it
    was pickled, or the database URL with its password given again (``resumed_database_url``).
    Tune pickles it (tuner.pkl, searcher-state-*.pkl) by this module path: keep the name
    importable."""

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        private_api.private(types.SimpleNamespace(**state), "url", _PICKLED, "optuna")
        return {**state, "url": masked_url(state["url"])}  # the password is written nowhere

    def __setstate__(self, state: dict[str, Any]) -> None:
        if _resumed_study_url is not None:
            # RDBStorage pickles its __dict__ and reconnects to its "url" in __setstate__
            private_api.private(types.SimpleNamespace(**state), "url", _PICKLED, "optuna")
            state = {**state, "url": _resumed_study_url}
        super().__setstate__(state)


SCHEMA_RACE_RETRIES = 4
STUDY_STORAGE_ENV = "LATENTSWEEP_STUDY_STORAGE"  # the full URL, password included, on --resume


def resumed_database_url(settings: Settings, record: dict[str, Any]) -> str:
    """The database a resumed sweep's study is in, password included: --study-storage given
    again with --resume, else $LATENTSWEEP_STUDY_STORAGE, else sweep.json's URL when it has no
    password (sweep.json records it masked, and Tune's pickles hold it masked too)."""
    recorded = record.get("study_storage") or ""
    for given in (settings.study_storage, os.environ.get(STUDY_STORAGE_ENV)):
        if not given or is_masked(given):  # not given again: sweep.json's masked URL
            continue
        if masked_url(given) != recorded:
            raise UsageError(
                f"--resume: the study storage given, {masked_url(given)}, is not the sweep's "
                f"({recorded})",
                f"give the URL of the sweep's own database in --study-storage or ${STUDY_STORAGE_ENV}",
            )
        return given
    if is_masked(recorded):
        raise UsageError(
            f"--resume: the sweep's study is in {recorded}, whose password is written nowhere",
            f"set {STUDY_STORAGE_ENV}='<the full URL>' (or pass --study-storage '<the full "
            "URL>' with --resume)",
        )
    return recorded


def open_study_storage(url: str, study_name: str) -> optuna.storages.BaseStorage:
    """The storage of a new sweep's study, a journal file or a database; a study of that name
    must not exist there yet.

    Optuna creates its tables in a new database the first time it opens it; two sweeps started
    together on one new PostgreSQL database race to create them, and the loser's CREATE fails
    (a unique violation). The tables are there then, so opening again succeeds."""
    try:
        for attempt in range(SCHEMA_RACE_RETRIES + 1):
            try:
                journal = journal_path(url)
                storage = SweepJournalStorage(journal) if journal else SweepStudyStorage(url)
                break
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
                if attempt == SCHEMA_RACE_RETRIES:
                    raise
                time.sleep(0.5 * (attempt + 1))  # the other driver finishes its CREATEs
    except Exception as e:
        raise UsageError(
            f"cannot open the Optuna study storage {masked_url(url)} ({type(e).__name__}: {e})",
            "pass a SQLAlchemy URL that works (sqlite:///path.db, postgresql://..., mysql://...) "
            "or journal:///path",
        ) from None
    if study_name in optuna.study.get_all_study_names(storage):
        raise UsageError(
            f"the study storage {masked_url(url)} already has a study named {study_name!r}",
            "pick another --name, or delete that study (optuna delete-study)",
        )
    return storage


def repair_journal(path: Path) -> None:
    """Before a resume writes to a journal whose writer was killed: remove the lock file the
    writer may have held (Optuna's symlink lock; left behind, the next append waits out a grace
    period, and, dangling after the folder moved, spins forever), and cut a last line that was
    cut short (a full disk, a machine that lost power: Optuna would refuse the whole journal
    once another line follows it). A resume is the study's only writer."""
    lock = Path(f"{path}.lock")
    if lock.is_symlink() or lock.exists():
        lock.unlink()
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        end = size
        while end > 0:  # back to the last whole line
            start = max(0, end - 65536)
            f.seek(start)
            chunk = f.read(end - start)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                f.truncate(start + cut + 1)
                return
            end = start
        f.truncate(0)


def close_study_file(exp: Folder, record: dict[str, Any]) -> None:
    """At the end of a sweep: a journal study synced to disk (``SweepJournalFile`` syncs at
    most once a second), and a remote experiment's study file copied into the experiment
    folder (as sweep.json's ``study_file``)."""
    journal = journal_path(record.get("study_storage") or "")
    if journal is not None and journal.is_file():
        with open(journal, "rb") as f:
            os.fsync(f.fileno())
    if record.get("study_file") and exp.local is None:
        local = study_file_path(record["study_storage"])
        exp.copy_in(pafs.LocalFileSystem(), str(local), record["study_file"])


def fetch_study_copy(exp: Folder, url: str, study_file: str) -> None:
    """Resuming a remote experiment on another machine (or from another bucket path): put its
    study file (``study_file``) where the resumed sweep's ``url`` (``study_storage_url``)
    expects it. A copy already there (this machine ran the sweep from this folder) is the
    newest: kept."""
    if exp.local is not None:
        return
    local = study_file_path(url)
    if local.exists():
        return
    if not exp.exists(study_file):  # the driver died before it could copy the study up
        raise UsageError(
            f"--resume {exp.uri}: its Optuna study {local} is not on this machine, and "
            f"{exp.uri_of(study_file)} does not exist (the sweep's driver was killed)",
            "resume it on the machine whose driver started it; for sweeps that must resume "
            "anywhere, pass --study-storage postgresql://... when you start them",
        )
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(exp.read_bytes(study_file))
