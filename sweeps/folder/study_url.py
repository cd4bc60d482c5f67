"""The rules of a study storage URL that a sweep and ``analysis/`` share: the SQLite file it
names, and its password masked for files and logs (``sweep.json`` records only the masked URL).
It imports nothing of Ray or Optuna, so ``analysis/`` may import it (pyproject.toml's contract).
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy

MASK = "***"  # what stands for a password in a masked URL


def sqlite_path(url: str) -> Path | None:
    """The file of a sqlite:/// URL, else None."""
    parsed = sqlalchemy.engine.make_url(url)
    return Path(parsed.database) if parsed.get_backend_name() == "sqlite" else None


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
