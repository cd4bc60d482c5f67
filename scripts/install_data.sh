#!/usr/bin/env bash
# Install FashionMNIST from Debian's package `dataset-fashion-mnist` when apt exists and the
# files are missing. Elsewhere do nothing: the first run downloads it through torchvision.
set -euo pipefail
DIR=/usr/share/datasets/fashion-mnist
if [ -f "$DIR/train-images-idx3-ubyte.gz" ] && [ -f "$DIR/t10k-labels-idx1-ubyte.gz" ]; then
    echo "FashionMNIST: found in $DIR"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "FashionMNIST: no apt-get here; the first run downloads it through torchvision (or set LATENTSWEEP_DATA)"
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "FashionMNIST: not root and no sudo; run 'apt-get install dataset-fashion-mnist' as root, or let the first run download it"
        exit 0
    fi
fi
echo "FashionMNIST: installing Debian package dataset-fashion-mnist"
$SUDO apt-get update -qq || true
if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; then
    echo "FashionMNIST: apt-get install failed; the first run will try torchvision's download instead"
fi
