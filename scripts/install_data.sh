#!/usr/bin/env bash
# FashionMNIST for latentsweep (`make data`, part of `make setup` and `make test`):
#   1. found already where the loader looks (trainables/data.py: $LATENTSWEEP_DATA, Debian's
#      folder, the download cache) -> nothing to do;
#   2. else Debian's package dataset-fashion-mnist, where apt can install it (root or sudo);
#   3. else torchvision's download through the loader, into $LATENTSWEEP_CACHE
#      (default ~/.cache/latentsweep).
# If none works: one line `error: <problem>; <fix>` on stderr and exit status 1, so `make setup`,
# `make test` and CI stop here rather than run the real-data tests without data.
set -uo pipefail
cd "$(dirname "$0")/.."
DEBIAN_DIR=/usr/share/datasets/fashion-mnist
PY="${LATENTSWEEP_PYTHON:-.venv/bin/python}"

fail() {
    echo "error: $1" >&2
    exit 1
}

have_python() { [ -x "$PY" ] && "$PY" -c 'import torchvision' >/dev/null 2>&1; }
# Where the data is (printed), without downloading: the loader's own answer, or without a Python
# to ask (before `make setup`), whether Debian's folder holds the four files.
found() {
    if have_python; then
        "$PY" -c 'from trainables import data; print(data.resolve_data_dir(download=False))' 2>/dev/null
        return
    fi
    [ -z "${LATENTSWEEP_DATA:-}" ] || return 1
    for stem in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
        [ -f "$DEBIAN_DIR/$stem.gz" ] || [ -f "$DEBIAN_DIR/$stem" ] || return 1
    done
    echo "$DEBIAN_DIR"
}

if where=$(found); then
    echo "FashionMNIST: found in $where"
    exit 0
fi
if [ -n "${LATENTSWEEP_DATA:-}" ]; then  # the loader then looks only there: apt cannot help
    fail "LATENTSWEEP_DATA=$LATENTSWEEP_DATA does not hold the four FashionMNIST IDX files; put them there, or unset LATENTSWEEP_DATA and run make data again"
fi

apt_note="no apt-get here"
if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" != "0" ]; then
        if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else SUDO="none"; fi
    fi
    if [ "$SUDO" = "none" ]; then
        apt_note="not root and no sudo for apt-get"
    else
        echo "FashionMNIST: installing Debian's package dataset-fashion-mnist"
        $SUDO apt-get update -qq >/dev/null 2>&1
        if $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; then
            if where=$(found); then
                echo "FashionMNIST: installed in $where"
                exit 0
            fi
            apt_note="apt-get installed dataset-fashion-mnist but the loader does not find it"
        else
            apt_note="apt-get install dataset-fashion-mnist failed"
        fi
    fi
fi

echo "FashionMNIST: not installed by apt ($apt_note); trying torchvision's download"
if ! have_python; then
    fail "FashionMNIST not found ($apt_note) and no Python with torchvision at $PY to download it; run make setup (or apt-get install dataset-fashion-mnist as root)"
fi
# The loader's download (a file lock, MD5s checked by torchvision, renamed into place whole);
# on failure it prints its own one line, `error: ...; ...`, and exits 2.
if ! where=$("$PY" -c '
from trainables import data
from trainables.errors import cli_errors
with cli_errors():
    print(data.resolve_data_dir(download=True))
' | tail -n 1); then
    exit 1
fi
echo "FashionMNIST: downloaded into $where"
