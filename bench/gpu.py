"""GPU throughput of the autoencoder trainable, and how many trials to pack on one GPU.

    python bench/gpu.py                          # both parts, about 5 minutes on one H100
    python bench/gpu.py --compile                # also the trainable's loop on a torch.compile'd model
    python bench/gpu.py --skip-packing --batch-sizes 256 4096

Needs a CUDA device; without one it exits at once (status 2) and measures nothing.

1. Samples/s: one epoch over the 55,000 training images through ``autoencoder.train_epoch``
   (data on the GPU, ``torch.randperm`` batches) and through ``DataLoader(TensorDataset)`` as a
   tuned plain loop has it (``--loader-workers`` worker processes, kept across epochs, pinned
   host memory, non-blocking host-to-device copies), at each ``--batch-sizes``, alternating
   ``--rounds`` times (best round kept). cuDNN autotuning (``torch.backends.cudnn.benchmark``)
   is on for every loop in this phase, and a warm-up epoch of each runs first. With
   ``--compile``, a third column: the same ``train_epoch`` on ``torch.compile(model)`` (compile
   time excluded: the warm-up epoch compiles it). The GPU memory of each batch size's models
   and data is freed before the next, and before the packing phase.
2. Packing: ``sweeps/ae_sweep.py``'s ``main`` with K = 1, 2, 4, 8 concurrent trials sharing the GPU
   (``--gpus-per-trial 1/K``, CPUs split evenly, W&B disabled, ASHA stopping nothing), K trials of
   ``--epochs`` epochs each. Prints total trial-epochs per minute: over ``Tuner.fit``'s wall, and
   in steady state (epochs after the first, from Tune's ``time_this_iter_s``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F

# A fresh local Ray even when another one (``ray start``) runs on this machine.
os.environ.setdefault("RAY_ADDRESS", "local")


def _timed(fn: Callable[[], None]) -> float:
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t0


@contextlib.contextmanager
def cudnn_autotuning() -> Iterator[None]:
    """cuDNN picks the fastest convolution algorithm for each shape it meets (its first calls
    with a shape are slower: the warm-up epoch pays them); off again afterwards."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def free_gpu() -> None:
    """Give back the GPU memory of everything no longer referenced (this process's CUDA context
    itself stays until it exits)."""
    gc.collect()
    torch.cuda.empty_cache()


def epoch_loops(splits, device, batch_size: int, workers: int, compile_model: bool) -> dict:
    """One-epoch callables, each with its own model and optimiser: "ours" (the trainable's
    ``train_epoch`` on the data already on the GPU), "plain" (a tuned ``DataLoader`` loop) and,
    with ``compile_model``, "compiled" (ours on a ``torch.compile``d model)."""
    from torch.utils.data import DataLoader, TensorDataset

    from models import ConvAutoencoder
    from trainables import autoencoder, devices
    from trainables.data import DeviceSplit

    cfg = autoencoder.AutoencoderConfig(batch_size=batch_size)
    train = DeviceSplit(splits.train_x, splits.train_y, device)

    def trainable_loop(model):
        opt = torch.optim.Adam(model.parameters(), 1e-3)

        def epoch():
            autoencoder.train_epoch(
                model, opt, train, cfg, devices.seed_epoch(cfg, 1, device), device
            )

        return epoch

    host = TensorDataset(splits.train_x.unsqueeze(1).float() / 255, splits.train_y)
    loader = DataLoader(
        host,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,  # worker processes start once, not every epoch
        pin_memory=True,  # page-locked batches: the copy to the GPU can overlap compute
    )
    plain_model = ConvAutoencoder(16).to(device)
    plain_opt = torch.optim.Adam(plain_model.parameters(), 1e-3)

    def plain():
        plain_model.train()
        for x, _ in loader:
            x = x.to(device, non_blocking=True)
            loss = F.mse_loss(plain_model(x), x)
            plain_opt.zero_grad(set_to_none=True)
            loss.backward()
            plain_opt.step()

    loops = {"ours": trainable_loop(ConvAutoencoder(16).to(device)), "plain": plain}
    if compile_model:
        loops["compiled"] = trainable_loop(torch.compile(ConvAutoencoder(16).to(device)))
    return loops


def throughput(batch_sizes: list[int], rounds: int, compile_model: bool, workers: int) -> dict:
    from trainables.data import load_splits

    device = torch.device("cuda")
    splits = load_splits()
    n = len(splits.train_y)
    results = {}
    with cudnn_autotuning():
        for bs in batch_sizes:
            torch.manual_seed(0)
            loops = epoch_loops(splits, device, bs, workers, compile_model)
            for fn in loops.values():  # warm-up: cuDNN autotuning, compiling, the allocator
                fn()
            best = dict.fromkeys(loops, float("inf"))
            for _ in range(rounds):
                for name, fn in loops.items():
                    best[name] = min(best[name], _timed(fn))
            del loops  # the models, optimisers, device data and loader workers of this size
            free_gpu()
            row = {f"{k}_samples_per_s": round(n / v) for k, v in best.items()}
            row["ratio_ours_vs_plain"] = round(best["plain"] / best["ours"], 2)
            if compile_model:
                row["ratio_compiled_vs_ours"] = round(best["ours"] / best["compiled"], 2)
            results[bs] = row
            print(f"batch {bs:5d}: " + "  ".join(f"{k} {v}" for k, v in row.items()), flush=True)
    return results


def packing(levels: list[int], epochs: int, subset: int | None) -> dict:
    from ray import tune

    from sweeps import ae_sweep

    cpus = os.cpu_count() or 1
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_gpu-") as d:
        for k in levels:
            fit_s = 0.0
            original = tune.Tuner.fit

            def timed_fit(self, original=original):
                nonlocal fit_s
                t0 = time.perf_counter()
                try:
                    return original(self)
                finally:
                    fit_s += time.perf_counter() - t0

            tune.Tuner.fit = timed_fit
            argv = [
                f"--num-samples={k}",
                f"--max-concurrent={k}",
                f"--max-epochs={epochs}",
                f"--grace-period={epochs}",
                f"--gpus-per-trial={1 / k:g}",
                f"--cpus-per-trial={max(1, cpus // k)}",
                f"--num-cpus={cpus}",
                f"--storage-path={d}",
                f"--name=pack_{k}",
                "--wandb-mode=disabled",
            ]
            if subset:
                argv.append(f"--subset={subset}")
            try:
                ae_sweep.main(argv)
            finally:
                tune.Tuner.fit = original
            analysis = tune.ExperimentAnalysis(str(Path(d) / f"pack_{k}"))
            steady = []
            for df in analysis.trial_dataframes.values():
                steady.extend(df.loc[df["training_iteration"] > 1, "time_this_iter_s"].tolist())
            row = {
                "trial_epochs": k * epochs,
                "fit_wall_s": round(fit_s, 1),
                "epochs_per_min_over_fit": round(60 * k * epochs / fit_s, 1),
                "epochs_per_min_steady": round(60 * k / (sum(steady) / len(steady)), 1)
                if steady
                else None,
            }
            results[k] = row
            print(f"{k} trials on one GPU: {row}", flush=True)
    return results


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--batch-sizes",
        type=int,
        nargs="+",
        default=[256, 1024, 4096],
        help="batch sizes whose throughput is timed",
    )
    p.add_argument("--rounds", type=int, default=2, help="timed rounds per batch size")
    p.add_argument("--compile", action="store_true", help="also time a torch.compile'd model")
    p.add_argument(
        "--loader-workers",
        type=int,
        default=4,
        help="DataLoader worker processes of the plain loop (0: load in the main process)",
    )
    p.add_argument(
        "--packing",
        type=int,
        nargs="+",
        default=[1, 2, 4, 8],
        metavar="K",
        help="trials sharing the GPU at once (a run for each K)",
    )
    p.add_argument("--epochs", type=int, default=3, help="epochs per trial when packing")
    p.add_argument("--subset", type=int, default=None, help="training images when packing")
    p.add_argument("--skip-throughput", action="store_true", help="skip the throughput phase")
    p.add_argument("--skip-packing", action="store_true", help="skip the packing phase")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print(
            "bench/gpu.py: no CUDA device visible (torch.cuda.is_available() is False); "
            "run it on a machine with a GPU. Nothing was measured.",
            file=sys.stderr,
        )
        sys.exit(2)
    print(
        f"device: {torch.cuda.get_device_name()} torch {torch.__version__} "
        f"cpus {os.cpu_count()} load {os.getloadavg()}",
        flush=True,
    )
    out = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
    if not args.skip_throughput:
        out["throughput"] = throughput(
            args.batch_sizes, args.rounds, args.compile, args.loader_workers
        )
        free_gpu()  # the trials of the packing phase get the whole GPU
    if not args.skip_packing:
        out["packing"] = packing(args.packing, args.epochs, args.subset)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
