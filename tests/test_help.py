"""``--help`` of every entry point: the three sweep scripts, analysis/report.py and every bench/
script exit 0 and describe each flag (the trainables' own, generated from their configs, are
checked field by field in tests/test_trainables.py). Each runs as a user runs it, from another
folder than the project's, so nothing depends on the current directory."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sweeps.request.settings import Settings

pytestmark = pytest.mark.slow  # each starts a script: seconds of Ray and torch imports

REPO = Path(__file__).resolve().parents[1]
SWEEPS = ["sweeps/ae_sweep.py", "sweeps/classifier_sweep.py", "sweeps/gan_sweep.py"]
OTHERS = [
    "analysis/report.py",
    *sorted(  # bench's scripts; a module they import (bench/competitors.py) is not one
        str(p.relative_to(REPO))
        for p in REPO.glob("bench/*.py")
        if 'if __name__ == "__main__":' in p.read_text()
    ),
]


def help_entries(text: str) -> dict[str, str]:
    """``--flag`` -> its help text, from argparse's ``--help`` output (continuation lines joined)."""
    entries, flag = {}, None
    for line in text.splitlines():
        start = re.match(r"  (-\S+)(?: [A-Z_{},]+)?(.*)", line)
        if start:
            flag = start.group(1).rstrip(",")
            entries[flag] = start.group(2).strip()
        elif flag and line.startswith("   "):
            entries[flag] = f"{entries[flag]} {line.strip()}".strip()
        else:
            flag = None
    return entries


def run_help(argv: list[str], cwd) -> dict[str, str]:
    """``python ARGV --help`` run from ``cwd``: exit 0, and every flag it lists has help text.
    Returns ``--flag`` -> its help."""
    proc = subprocess.run(
        [sys.executable, *argv, "--help"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    entries = help_entries(proc.stdout)
    assert entries, f"no flags in {argv} --help:\n{proc.stdout}"
    for flag, text in entries.items():
        assert text.strip(), f"{argv}: {flag} has no help text"
    return entries


@pytest.mark.parametrize("script", SWEEPS)
def test_every_sweep_flag_has_help(script, tmp_path):
    entries = run_help([str(REPO / script)], tmp_path)
    for name in Settings.flag_names():  # every setting a sweep reads is a flag of its own
        assert "--" + name.replace("_", "-") in entries, f"--{name} missing from {script} --help"


@pytest.mark.parametrize("script", OTHERS)
def test_every_other_entry_point_has_help(script, tmp_path):
    assert "-h" in run_help(
        [str(REPO / script)], tmp_path
    )  # argparse's own: the script parses its flags
