"""Memory of a sweep: the dataset is stored once per node (Ray's object store), not once per trial.

    python bench/memory.py                        # 1 epoch on all 55,000 images, 1 then 2 trials
    python bench/memory.py --epochs 1 --subset 20000

Runs ``sweeps/ae_sweep.py``'s ``main`` twice on a fresh local Ray each time: one trial alone, then
two concurrent trials (1 CPU each, W&B disabled). While it runs, a thread samples every
``--interval`` seconds the resident memory (RSS, and PSS, which splits shared pages fairly among
the processes that map them) summed over this Ray's worker processes, and the object store's
usage seen from the host: the raylet's RSS (it hosts the store) and /dev/shm's growth. Prints the peaks, and what a trial holds by design: the
uint8 splits (shipped once through the object store) and its float32 copy of train and val (the
``DeviceSplit``: 4 bytes a pixel, made once per trial, on the trial's device).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
from pathlib import Path

import psutil
import ray

from sweeps import ae_sweep
from trainables.data import load_splits

MB = 1e6


def raylet_pid() -> int:
    from ray._private import ray_constants

    node = ray._private.worker._global_node
    return node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid


def workers(raylet: int) -> list[psutil.Process]:
    """This Ray's Python workers (trials, idle workers): the raylet's children named ray::*."""
    out = []
    for child in psutil.Process(raylet).children(recursive=True):
        try:
            if " ".join(child.cmdline()).startswith("ray::"):
                out.append(child)
        except psutil.Error:
            pass
    return out


def shm_used() -> int:
    """Bytes used in /dev/shm, where the object store keeps its objects (Ray's plasma store maps
    a file there; Ray's own `ray memory` needs grpcio, which this environment lacks)."""
    st = os.statvfs("/dev/shm")
    return (st.f_blocks - st.f_bfree) * st.f_frsize


class PeakSampler(threading.Thread):
    """Peaks over a run of what ``probe()`` returns (name -> value), sampled every ``interval``
    seconds in a daemon thread until ``stop`` is set; ``bench/scale.py`` samples with it too."""

    def __init__(self, interval: float):
        super().__init__(daemon=True)
        self.interval = interval
        self.peak: dict[str, float] = {}
        self.stop = threading.Event()

    def probe(self) -> dict[str, float]:
        raise NotImplementedError

    def run(self):
        while not self.stop.is_set():
            for key, value in self.probe().items():
                self.peak[key] = max(self.peak.get(key, 0), value)
            self.stop.wait(self.interval)

    def finish(self) -> dict[str, float]:
        self.stop.set()
        self.join()
        return self.peak


class Sampler(PeakSampler):
    """Peaks, over the run, of: busy workers, the workers' summed RSS and PSS, the raylet's RSS
    (it hosts the object store; its pages of stored objects count there), and /dev/shm above
    what it held when the sampler started (other Ray sessions on this machine add noise)."""

    def __init__(self, raylet: int, interval: float):
        super().__init__(interval)
        self.raylet = raylet
        self.shm0 = shm_used()

    def probe(self) -> dict[str, float]:
        rss = pss = 0.0
        busy = 0
        for w in workers(self.raylet):
            try:
                info = w.memory_full_info()
                rss, pss = rss + info.rss, pss + info.pss
                busy += "IDLE" not in " ".join(w.cmdline())
            except psutil.Error:
                pass
        return {
            "workers": busy,
            "rss": rss,
            "pss": pss,
            "raylet_rss": psutil.Process(self.raylet).memory_info().rss,
            "shm": shm_used() - self.shm0,
        }


def measure(trials: int, args, storage: Path) -> dict:
    ray.init(
        address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING"
    )  # fresh, so nothing of the previous run stays in the store
    try:
        sampler = Sampler(raylet_pid(), args.interval)
        sampler.start()
        argv = [
            f"--num-samples={trials}",
            f"--max-epochs={args.epochs}",
            f"--grace-period={args.epochs}",
            f"--max-concurrent={trials}",
            "--cpus-per-trial=1",
            f"--storage-path={storage}",
            f"--name=mem_{trials}",
            "--wandb-mode=disabled",
        ]
        if args.subset:
            argv.append(f"--subset={args.subset}")
        ae_sweep.main(argv)
        return sampler.finish()
    finally:
        ray.shutdown()


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=1, help="epochs of each trial of the sweep")
    p.add_argument("--subset", type=int, default=None, help="training images (default: all 55,000)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args(argv)
    splits = load_splits(subset=args.subset)
    uint8 = sum(t.numel() * t.element_size() for t in vars(splits).values() if hasattr(t, "numel"))
    float32 = 4 * (splits.train_x.numel() + splits.val_x.numel())
    print(
        f"splits: {uint8 / MB:.1f} MB uint8 (train+val+test); a trial's float32 train+val copy: "
        f"{float32 / MB:.1f} MB",
        flush=True,
    )
    out = {"splits_uint8_mb": round(uint8 / MB, 1), "trial_float32_mb": round(float32 / MB, 1)}
    with tempfile.TemporaryDirectory(prefix="bench_memory-") as d:
        for trials in (1, 2):
            peak = measure(trials, args, Path(d))
            out[f"{trials}_trials"] = {
                "busy_workers": peak["workers"],
                "workers_rss_mb": round(peak["rss"] / MB),
                "workers_pss_mb": round(peak["pss"] / MB),
                "raylet_rss_mb": round(peak["raylet_rss"] / MB),
                "dev_shm_growth_mb": round(peak["shm"] / MB),
            }
    one, two = out["1_trials"], out["2_trials"]
    for key in ("workers_rss_mb", "workers_pss_mb", "raylet_rss_mb", "dev_shm_growth_mb"):
        ratio = two[key] / max(one[key], 1e-9)
        print(f"{key:18s} 1 trial {one[key]:>6}  2 trials {two[key]:>6}  ratio {ratio:.2f}x")
    print(
        f"per extra trial: {two['workers_pss_mb'] - one['workers_pss_mb']} MB PSS (its float32 "
        f"copy is {out['trial_float32_mb']} MB); the store side (raylet RSS) "
        f"{one['raylet_rss_mb']} -> {two['raylet_rss_mb']} MB, /dev/shm +{one['dev_shm_growth_mb']}"
        f" -> +{two['dev_shm_growth_mb']} MB (the splits are {out['splits_uint8_mb']} MB); "
        f"load {os.getloadavg()}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
