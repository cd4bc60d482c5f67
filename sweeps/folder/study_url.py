"""The rules of a study storage URL that a sweep and ``analysis/`` share: the file it names (a
SQLite database, or Optuna's journal), its password masked for files and logs (``sweep.json``
records only the masked URL), and what ``optuna.load_study`` takes for it. It imports nothing of
Ray, and Optuna only to open a journal, so ``analysis/`` may import it (pyproject.toml's
contract).

A study in Optuna's journal storage (``JournalStorage`` on a ``JournalFileBackend``: one line
appended per operation) has no SQLAlchemy URL; here it is written ``journal:///<path>`` (the
same form as ``sqlite:///<path>``), which sweep.json records and ``--study-storage`` accepts.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy

MASK = "***"  # what stands for a password in a masked URL


JOURNAL_SCHEME = "journal"


def _file_of(url: str, backend: str) -> Path | None:
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        return None
    return Path(parsed.database) if parsed.get_backend_name() == backend else None


def sqlite_path(url: str) -> Path | None:
    """The file of a sqlite:/// URL, else None."""
    return _file_of(url, "sqlite")


def journal_path(url: str) -> Path | None:
    """The file of a journal:/// URL, else None."""
    return _file_of(url, JOURNAL_SCHEME)


def study_file_path(url: str) -> Path | None:
    """The file a study URL names (SQLite or journal); None for a database server."""
    return sqlite_path(url) or journal_path(url)


def file_study_url(path: Path, like: str | None = None) -> str:
    """The URL of a study file: of the kind of the URL ``like`` (the one a sweep recorded), else
    a journal, or SQLite for a ``.db`` file (sweeps before the journal kept their study in
    ``optuna.db``)."""
    if like is not None and sqlite_path(like) is not None:
        scheme = "sqlite"
    elif like is not None and journal_path(like) is not None:
        scheme = JOURNAL_SCHEME
    else:
        scheme = "sqlite" if Path(path).suffix == ".db" else JOURNAL_SCHEME
    return f"{scheme}:///{path}"


def loadable(url: str):
    """What ``optuna.load_study(storage=...)`` takes for ``url``: Optuna's journal storage on
    the file for a journal URL (Optuna has no URL for it), else the URL itself."""
    path = journal_path(url)
    if path is None:
        return url
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if not path.is_file():  # JournalFileBackend would create an empty study file
        raise FileNotFoundError(f"no Optuna journal {path}")
    return JournalStorage(JournalFileBackend(str(path)))


def masked_url(url: str) -> str:
    """The storage URL with any password replaced by ``MASK``, for files and logs."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def is_masked(url: str) -> bool:
    """The URL's password is ``MASK``: the URL came from a file, and cannot open the database."""
    try:
        return sqlalchemy.engine.make_url(url).password == MASK
    except sqlalchemy.exc.ArgumentError:
        return MASK in url
