"""The search with many workers, by simulation (bench/simulate.py's): what a cluster of W GPUs
would get from it, W = 1 to 256.

    python bench/many_workers.py --space wide --workers 1 4 16 64 256 --seeds 30 \\
        --json bench/results/many_workers_wide.json --figure docs/figures/many_workers_wide.png

For each W and method, ``--seeds`` simulated sweeps run until the best val_mse found reaches the
target (random search's median after 20 full-length trials at W=4, ``--target-from``: the
protocol of BENCHMARKS.md's "Time to a good model"; or a stricter one, ``--target-regret``, as
a normalised regret), or until a cap of ``--cap-trials``
full-length trials per worker (a run that hits the cap has not reached it). The target is one
value for every W, so time-to-target against W shows the speed-up (ideal: 1/W), and the epochs
run until then show the work the speed-up costs: with one worker every decision sees every
earlier result; with W at once, W trials are proposed before the first result of any of them,
and asynchronous promotion lets a trial past a rung that later, better trials would have closed
to it. The searchers' measured compute is on the clock (one driver makes every decision); the
per-trial costs measured on this 2-core machine (bench/simulate.py's ``--costs``) are not, since
a cluster's trials do not share the driver's CPUs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import simulate as sim  # noqa: E402

METHODS = ["ours", "ray-default", "optuna-hyperband"]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="wide", choices=["report", "wide"], help="the space")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 4, 16, 64, 256], help="each W to simulate"
    )
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS, help="METHODS")
    parser.add_argument("--seeds", type=int, default=30, help="seeds per W and method")
    parser.add_argument(
        "--target-from",
        type=Path,
        help="bench/simulate.py's JSON whose target_val_mse to use (default: "
        "bench/results/sim_<space>_w4.json)",
    )
    parser.add_argument(
        "--target-regret",
        type=float,
        default=1.0,
        help="the target as a normalised regret: 1 (default) is random search's median, 0 the "
        "best recorded value",
    )
    parser.add_argument("--cap-trials", type=float, default=40, help="full trials per worker")
    parser.add_argument("--grace-period", type=int, default=1, help="minimum resource")
    parser.add_argument("--reduction-factor", type=float, default=3, help="ASHA's factor")
    parser.add_argument("--json", type=Path, help="write the rows and the summary here")
    parser.add_argument("--figure", type=Path, help="draw time and epochs to target against W")
    args = parser.parse_args(argv)
    args.warm_start = None

    from sweeps import ae_sweep

    source = args.target_from or REPO / "bench" / "results" / f"sim_{args.space}_w4.json"
    table = pd.read_parquet(sim.CURVES)
    curves = sim.Curves(table[table["space"] == args.space], ae_sweep.SPACES[args.space])
    median_random = json.loads(source.read_text())["target_val_mse"]
    target = curves.best + args.target_regret * (median_random - curves.best)
    full_trial = float(np.median([s.sum() for s in curves.seconds]))
    out: dict[str, Any] = {
        "space": args.space,
        "target_val_mse": target,
        "target_regret": args.target_regret,
        "full_trial_s": full_trial,
        "command": "python bench/many_workers.py " + " ".join(argv or sys.argv[1:]),
        "rows": [],
    }
    order = [(w, m, s) for w in args.workers for m in args.methods for s in range(args.seeds)]
    np.random.default_rng(0).shuffle(order)
    t0 = time.perf_counter()
    for w, m, s in order:
        cap = args.cap_trials * full_trial  # each worker can run this many full trials
        tic = time.perf_counter()
        run = sim.simulate(m, curves, args.space, w, s, cap, args, True, target=target)
        ttt = sim.time_to(run, target)
        out["rows"].append(
            {
                "workers": w,
                "method": m,
                "seed": s,
                "time_to_target_s": ttt,
                "epochs": run.epochs if math.isfinite(ttt) else math.nan,
                "trials": run.trials if math.isfinite(ttt) else math.nan,
                "search_seconds": run.search_seconds,
                "real_s": time.perf_counter() - tic,
            }
        )
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    rows = pd.DataFrame(out["rows"])
    summary = []
    for (w, m), g in rows.groupby(["workers", "method"]):
        ttt = g["time_to_target_s"].to_numpy()
        reached = np.isfinite(ttt)
        summary.append(
            {
                "workers": int(w),
                "method": m,
                "seeds": len(g),
                "reached": int(reached.sum()),
                "ttt_median_s": float(np.median(ttt)),
                "ttt_q25_s": float(np.quantile(ttt, 0.25)),
                "ttt_q75_s": float(np.quantile(ttt, 0.75)),
                "epochs_median": float(np.nanmedian(g["epochs"])) if reached.any() else math.nan,
                "epochs_q25": float(np.nanquantile(g["epochs"], 0.25))
                if reached.any()
                else math.nan,
                "epochs_q75": float(np.nanquantile(g["epochs"], 0.75))
                if reached.any()
                else math.nan,
                "search_s_median": float(g["search_seconds"].median()),
            }
        )
    out["summary"] = summary
    for r in summary:
        print(
            f"W={r['workers']:4d} {r['method']:17s} time-to-target {r['ttt_median_s']:7.1f} s "
            f"(IQR {r['ttt_q25_s']:.1f}-{r['ttt_q75_s']:.1f}), reached {r['reached']}/{r['seeds']}, "
            f"epochs to target {r['epochs_median']:.0f} (IQR {r['epochs_q25']:.0f}-"
            f"{r['epochs_q75']:.0f}), searcher {r['search_s_median']:.2f} s"
        )
    print(f"many_workers: {out['wall_s']} s", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out) + "\n")
    if args.figure:
        draw(out, args.figure)
    return out


def draw(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = pd.DataFrame(out["summary"])
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for m, g in summary.groupby("method", sort=False):
        g = g.sort_values("workers")
        (line,) = a.plot(g["workers"], g["ttt_median_s"], marker="o", label=m)
        a.fill_between(
            g["workers"], g["ttt_q25_s"], g["ttt_q75_s"], color=line.get_color(), alpha=0.15
        )
        b.plot(g["workers"], g["epochs_median"], marker="o", color=line.get_color(), label=m)
        b.fill_between(
            g["workers"], g["epochs_q25"], g["epochs_q75"], color=line.get_color(), alpha=0.15
        )
    ours = summary[summary["method"] == "ours"].sort_values("workers")
    if len(ours):
        w = ours["workers"].to_numpy()
        a.plot(
            w,
            ours["ttt_median_s"].iloc[0] * w[0] / w,
            color="grey",
            ls=":",
            label="ours, ideal 1/W",
        )
    for ax in (a, b):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("workers W (trials at once)")
        ax.legend(fontsize=8)
    a.set_yscale("log")
    a.set_ylabel("simulated time to target (s; median, IQR)")
    b.set_yscale("log")
    b.set_ylabel("epochs run until the target (median, IQR)")
    fig.suptitle(
        f"autoencoder '{out['space']}' space: target val_mse {out['target_val_mse']:.4f} "
        f"(regret {out['target_regret']:g}), "
        f"{summary['seeds'].max()} seeds",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
