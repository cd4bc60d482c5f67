"""Record learning curves for the search simulator (bench/simulate.py): configurations drawn
space-filling (scrambled Sobol) from an autoencoder sweep space, each trained to the full budget
with every epoch's val_mse and wall time.

    python bench/record_curves.py --space report --space wide            # 150 each, ~1 h on 2 cores
    python bench/record_curves.py --space report --n 8 --epochs 2 --out /tmp/c.parquet   # a look
    python bench/record_curves.py --space latent --out bench/curves/ae_latent_curves.parquet

Each configuration is ``sweeps/ae_sweep.py``'s trial config (the space's axes, its fixed
values, the sweep's fixed keys) trained by ``trainables.autoencoder.train_autoencoder`` in its
own process with one torch thread, ``--workers`` at a time, on the same stratified subset and
validation split a sweep with ``--subset`` uses. Rows: space, config_id (the Sobol index), the
axes' values, epoch, val_mse, train_mse, seconds (that epoch's training and validation; no
checkpoint is written). Configurations already in ``--out`` are skipped, so an interrupted
recording continues where it stopped. The machine, load and command are written beside it
(``<out>.json``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_OUT = REPO / "bench" / "curves" / "ae_curves.parquet"


def unit_to_value(axis, u: float):
    """The value of a Tune search axis at ``u`` in [0, 1): a log-uniform axis on the log scale,
    a choice by equal slices."""
    from ray.tune.search.sample import Categorical, Float, Integer, LogUniform

    if isinstance(axis, Categorical):
        cats = list(axis.categories)
        return cats[min(int(u * len(cats)), len(cats) - 1)]
    if isinstance(axis, Float):
        lo, hi = axis.lower, axis.upper
        if isinstance(axis.get_sampler(), LogUniform):
            return float(math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))))
        return float(lo + u * (hi - lo))
    if isinstance(axis, Integer):
        from sweeps.request.search_space import integer_bounds

        lo, hi = integer_bounds(axis)
        return int(lo + min(int(u * (hi - lo + 1)), hi - lo))
    raise TypeError(f"cannot draw from {axis!r}")


def sobol_configs(space: dict[str, Any], n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` points of ``space`` (a sweep script's SPACES entry), scrambled Sobol over its
    searched axes; fixed values as they are."""
    import torch
    from ray.tune.search.sample import Domain

    axes = [k for k, v in space.items() if isinstance(v, Domain)]
    points = torch.quasirandom.SobolEngine(len(axes), scramble=True, seed=seed).draw(n)
    out = []
    for row in points.tolist():
        config = {k: v for k, v in space.items() if not isinstance(v, Domain)}
        config.update({k: unit_to_value(space[k], u) for k, u in zip(axes, row, strict=True)})
        out.append(config)
    return out


class CurveReporter:
    """A trainable's reporter that keeps each epoch's metrics and its wall time, no checkpoint."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.t = time.perf_counter()

    def restore(self):
        return None

    def report(self, metrics: dict[str, Any], payload: dict[str, Any]) -> None:
        now = time.perf_counter()
        self.rows.append({**metrics, "seconds": now - self.t})
        self.t = now


_SPLITS = None


def _train(job: tuple[str, int, dict[str, Any], dict[str, Any]]) -> list[dict[str, Any]]:
    global _SPLITS
    import torch

    from trainables import autoencoder
    from trainables.data import load_splits

    torch.set_num_threads(1)
    space, config_id, config, data = job
    if _SPLITS is None:
        _SPLITS = load_splits(None, data["val_size"], data["data_seed"], data["subset"])
    reporter = CurveReporter()
    try:
        autoencoder.train_autoencoder({**config, **data}, _SPLITS, reporter)
    except Exception as e:  # a diverged configuration is a recorded outcome, not a crash
        reporter.rows.append({"epoch": len(reporter.rows) + 1, "error": str(e)[:200]})
    axes = {k: v for k, v in config.items() if k != "epochs"}
    return [{"space": space, "config_id": config_id, **axes, **row} for row in reporter.rows]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--space",
        action="append",
        choices=["report", "wide", "latent"],  # sweeps/ae_sweep.py's SPACES
        help="a space (repeat for several; default report and wide; latent, whose latent_dim "
        "is searched, for the multi-objective simulation: bench/simulate_mo.py)",
    )
    parser.add_argument("--n", type=int, default=150, help="configurations per space")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per configuration")
    parser.add_argument("--subset", type=int, default=10000, help="training images")
    parser.add_argument("--workers", type=int, default=2, help="configurations at once")
    parser.add_argument("--seed", type=int, default=0, help="Sobol scrambling seed")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the Parquet file")
    args = parser.parse_args(argv)

    import pandas as pd

    from sweeps import ae_sweep

    spaces = args.space or ["report", "wide"]
    data = {"subset": args.subset, "val_size": 5000, "data_seed": 0, "epochs": args.epochs}
    done = set()
    rows: list[dict[str, Any]] = []
    if args.out.is_file():
        old = pd.read_parquet(args.out)
        rows = old.to_dict("records")
        done = set(zip(old["space"], old["config_id"], strict=True))
    jobs = []
    for space in spaces:
        for i, config in enumerate(sobol_configs(ae_sweep.SPACES[space], args.n, args.seed)):
            if (space, i) not in done:
                jobs.append((space, i, config, data))
    print(f"record_curves: {len(jobs)} configurations to train ({len(done)} recorded)", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    t0, load0 = time.time(), os.getloadavg()
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    os.environ.update(env)
    with ProcessPoolExecutor(args.workers) as pool:
        for k, result in enumerate(pool.map(_train, jobs), 1):
            rows.extend(result)
            if k % 10 == 0 or k == len(jobs):  # save as it goes: an interruption loses little
                pd.DataFrame(rows).to_parquet(args.out, index=False)
                print(f"record_curves: {k}/{len(jobs)} in {time.time() - t0:.0f} s", flush=True)
    pd.DataFrame(rows).to_parquet(args.out, index=False)
    meta = {
        "command": "python bench/record_curves.py " + " ".join(argv or sys.argv[1:]),
        "epochs": args.epochs,
        "subset": args.subset,
        "n": args.n,
        "seed": args.seed,
        "workers": args.workers,
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs",
        "load_before": load0,
        "load_after": os.getloadavg(),
        "wall_s": round(time.time() - t0, 1),
        "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    args.out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"record_curves: {len(rows)} rows in {args.out}", flush=True)


if __name__ == "__main__":
    main()
