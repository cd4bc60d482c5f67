"""The one error a user can fix, and the one way every entry point reports it.

Every command line of the project (``python sweeps/<model>_sweep.py``, ``python -m
trainables.<model>``, ``python analysis/report.py``) turns a ``UsageError`` into one line on
stderr, ``error: <problem>; <fix>``, and exit status 2: no stack trace, nothing started. The
errors of the lower layers (``ConfigError``, ``CheckpointError``, ``DataError``) are
``UsageError``s, so a sweep or the report need not know each of them.

This module sits at the bottom of ``trainables`` (it imports nothing of the project), so sweeps/
and analysis/ share it without importing each other.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import sys
from collections.abc import Callable, Iterator

EXIT_USAGE = 2  # argparse's own status for a bad command line


class UsageError(Exception):
    """A problem the user can fix. ``str(e)`` reads ``problem; fix`` when a fix is given; a
    message that already names its fix may come whole as ``problem``."""

    def __init__(self, problem: str, fix: str | None = None):
        super().__init__(f"{problem}; {fix}" if fix else problem)


def one_line(e: BaseException, default_fix: Callable[[BaseException], str] | None = None) -> str:
    """``e`` on one line as ``problem; fix``: the message's own fix, else ``default_fix(e)``."""
    text = " ".join(str(e).split())
    if "; " in text or default_fix is None:
        return text
    return f"{text}; {default_fix(e)}"


@contextlib.contextmanager
def cli_errors(
    also: tuple[type[BaseException], ...] = (),
    default_fix: Callable[[BaseException], str] | None = None,
) -> Iterator[None]:
    """Around an entry point's body: a ``UsageError`` (or one of ``also``, the exceptions that
    entry point counts as the user's to fix) becomes ``error: <problem>; <fix>`` on stderr and
    exit status 2."""
    try:
        yield
    except (UsageError, *also) as e:
        print(f"error: {one_line(e, default_fix)}", file=sys.stderr, flush=True)
        sys.exit(EXIT_USAGE)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad command line is the same one line as every other user error
    (``error: <problem>; see <prog> --help``), not usage text plus a message."""

    def error(self, message: str) -> None:
        fix = self.nearest_flags(message) or f"see {self.prog} --help"
        print(f"error: {message}; {fix}", file=sys.stderr, flush=True)
        sys.exit(EXIT_USAGE)

    def nearest_flags(self, message: str) -> str | None:
        """For an unknown flag, the known flags it is nearest to: ``did you mean --max-epochs?``
        (``--epochs`` on a sweep)."""
        prefix = "unrecognized arguments: "
        if not message.startswith(prefix):
            return None
        known = [o for a in self._actions for o in a.option_strings if o.startswith("--")]
        hints = []
        for word in message.removeprefix(prefix).split():
            flag = word.split("=", 1)[0]
            if not flag.startswith("--"):
                continue
            close = difflib.get_close_matches(flag, known, n=1, cutoff=0.6)
            close = close or [k for k in known if flag[2:] and flag[2:] in k]
            if close:
                hints.append(f"did you mean {close[0]} (for {flag})?")
        return " ".join(hints) + f" see {self.prog} --help" if hints else None
