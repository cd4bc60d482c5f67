"""Train the reference FashionMNIST CNN whose features define FID-FM, and write its weights.

    python -m trainables.fid_reference            # writes trainables/assets/fm_reference.{pt,json}

This is how the committed weights were made; it is here so they can be audited and reproduced, not
so each user retrains them. FID-FM values are comparable only when computed with the *same*
weights, so ``trainables/fid.py`` refuses any file whose sha256 differs from the one it pins. A
retrain on another CPU, thread count or torch build gives slightly different floats (and thus a
different checksum); to use FID-FM, take the committed file (see docs/fid.md).

Training is made as deterministic as torch allows: fixed seed, CPU only,
``torch.use_deterministic_algorithms(True)``, a fixed thread count, the data on the device as
tensors shuffled by ``torch.randperm`` with a seeded ``torch.Generator`` and batched by slicing (no
DataLoader, no worker processes), and a learning rate that is a pure function of the step.
All 60,000 training images are used (no validation split: the architecture and recipe are fixed,
nothing is tuned on this run); the 10,000 test images are only evaluated.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from models.fm_reference import FMReferenceCNN
from trainables.data import DeviceSplit, read_split, resolve_data_dir

ASSETS = Path(__file__).resolve().parent / "assets"
WEIGHTS_NAME = "fm_reference.pt"
META_NAME = "fm_reference.json"

SEED = 0
EPOCHS = 6  # ~35 s per epoch on 2 idle CPU cores; 6 epochs reach 93.9% test accuracy
BATCH_SIZE = 128
PEAK_LR = 2e-3
WARMUP_FRACTION = 0.05  # linear warm-up over the first 5% of steps, then cosine to 0
THREADS = 2  # fixed so CPU reductions are split the same way on every run
MIN_TEST_ACC = 0.91  # below this the features are too weak to be a useful reference


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def lr_at(step: int, total: int) -> float:
    """Warm-up then cosine decay, as a pure function of the step (no scheduler state)."""
    warmup = max(1, int(WARMUP_FRACTION * total))
    if step < warmup:
        return PEAK_LR * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return PEAK_LR * 0.5 * (1 + math.cos(math.pi * progress))


@torch.no_grad()
def accuracy(net: FMReferenceCNN, split: DeviceSplit, batch_size: int = 1000) -> float:
    net.eval()
    correct = 0
    for x, y in split.batches(batch_size, shuffle=False):
        correct += int((net(x).argmax(1) == y).sum())
    return correct / len(split)


def train_reference(
    data_dir: str | None = None, epochs: int = EPOCHS, seed: int = SEED, verbose: bool = True
) -> tuple[FMReferenceCNN, float]:
    """Train FMReferenceCNN on all 60k training images; returns (net in eval mode, test accuracy)."""
    device = torch.device("cpu")
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)
    directory = resolve_data_dir(data_dir)
    train = DeviceSplit(
        *(torch.from_numpy(a.copy()) for a in read_split(directory, "train")), device
    )
    test = DeviceSplit(*(torch.from_numpy(a.copy()) for a in read_split(directory, "test")), device)

    torch.manual_seed(seed)  # weight initialisation
    net = FMReferenceCNN().to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=PEAK_LR)
    shuffle = torch.Generator(device=device)
    shuffle.manual_seed(seed)
    steps_per_epoch = math.ceil(len(train) / BATCH_SIZE)
    total = epochs * steps_per_epoch
    step = 0
    for epoch in range(1, epochs + 1):
        net.train()
        start, loss_sum = time.perf_counter(), 0.0
        for x, y in train.batches(BATCH_SIZE, shuffle=True, generator=shuffle):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, total)
            loss = F.cross_entropy(net(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += float(loss.detach()) * len(y)
            step += 1
        if verbose:
            print(
                f"epoch {epoch}/{epochs}: train_loss={loss_sum / len(train):.4f} "
                f"test_acc={accuracy(net, test):.4f} ({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
    net.eval()
    return net, accuracy(net, test)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m trainables.fid_reference", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--data-dir", default=None, help="FashionMNIST folder (default: auto)")
    parser.add_argument("--out", default=str(ASSETS), help="folder for fm_reference.{pt,json}")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="only change for experiments")
    parser.add_argument("--seed", type=int, default=SEED, help="only change for experiments")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)

    began = time.perf_counter()
    net, test_acc = train_reference(args.data_dir, args.epochs, args.seed)
    seconds = time.perf_counter() - began
    if test_acc < MIN_TEST_ACC:
        sys.exit(f"test accuracy {test_acc:.4f} < {MIN_TEST_ACC}: not writing the weights")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / WEIGHTS_NAME
    # torch.save names the zip's inner folder after the file, so the name is part of the checksum:
    # always write to the final name (atomically, through a sibling temporary folder).
    tmp_dir = out / ".fm_reference.tmp"
    tmp_dir.mkdir(exist_ok=True)
    torch.save({k: v.detach().clone() for k, v in net.state_dict().items()}, tmp_dir / WEIGHTS_NAME)
    os.replace(tmp_dir / WEIGHTS_NAME, weights)
    tmp_dir.rmdir()

    meta = {
        "sha256": sha256_file(weights),
        "test_acc": round(test_acc, 4),
        "epochs": args.epochs,
        "seed": args.seed,
        "torch": torch.__version__,
        "command": " ".join(["python -m trainables.fid_reference", *argv]),
        "threads": THREADS,
        "train_seconds": round(seconds),
    }
    (out / META_NAME).write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
