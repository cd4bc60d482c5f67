"""PB2 against PBT on the GAN, live, at equal trial-epochs, over several seeds.

    python bench/population_live.py --seeds 5 --json bench/results/pb2_pbt_gan.json \\
        --figure docs/figures/pb2_pbt_gan.png

Each run is ``sweeps/gan_sweep.py --scheduler {pbt,pb2} --seed S`` in its own process, as a user
runs it (W&B off: both sides alike, and the 2 CPUs go to the trials). With one seed both
schedulers start from the same random population (``--seed`` seeds Ray's
``BasicVariantGenerator``), so a seed is a pair: the two runs differ only in how a clone's
values are explored (PBT multiplies them by 0.8 or 1.2 or resamples them; PB2 asks a GP bandit).
The runs go in a random order (``--order-seed``), so drift in the machine's load does not fall on
one side.

Per run: the best validation FID-FM at the end and the best trial's test FID-FM (best.json), the
trial-epochs trained (every result of every trial, the epochs an exploit replaced included),
the wall time, and the anytime curve: best validation FID-FM reported so far (any trial, any
epoch) against trial-epochs spent, from the trials' result.json files merged in time order. The
verdict is per seed (PB2 minus PBT, and who is lower) with the median and a bootstrap 95%
interval of the differences: of the best trial's test FID-FM at the end (what the user gets), and
of the best validation FID-FM at equal trial-epochs (the smaller of the pair's two budgets: an
exploit moves a run's count off N x E, up when a clone redoes epochs from its donor's older
checkpoint, down when it skips some from a newer one).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
METHODS = ("pbt", "pb2")


def sweep_command(method: str, seed: int, args: argparse.Namespace, name: str) -> list[str]:
    return [
        sys.executable, str(REPO / "sweeps" / "gan_sweep.py"),
        "--scheduler", method, "--seed", str(seed),
        "--num-samples", str(args.population), "--max-epochs", str(args.epochs),
        "--perturbation-interval", str(args.interval), "--max-concurrent", str(args.population),
        "--cpus-per-trial", str(round(2 / args.population, 3)), "--gpus-per-trial", "0",
        "--subset", str(args.subset), "--wandb-mode", "disabled",
        "--storage-path", str(args.runs), "--name", name,
    ]  # fmt: skip


def anytime(folder: Path) -> list[tuple[int, float]]:
    """(trial-epochs so far, best validation FID-FM so far) at each fresh FID-FM, all trials'
    results merged in the order Tune wrote them."""
    results = []
    for path in folder.glob("train_gan_*/result.json"):
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                results.append((r["timestamp"], r.get("time_total_s", 0.0), r))
    results.sort(key=lambda x: (x[0], x[1]))
    curve, best = [], float("inf")
    for spent, (_, _, r) in enumerate(results, start=1):
        if r.get("fid_epoch") == r.get("epoch") and r.get("fid") is not None:
            best = min(best, float(r["fid"]))
        if best < float("inf"):
            curve.append((spent, best))
    return curve


def run_one(method: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    name = f"{method}_s{seed}"
    folder = args.runs / name
    if folder.exists():
        sys.exit(f"population_live: {folder} exists; pick another --runs folder or remove it")
    start = time.time()
    load = Path("/proc/loadavg").read_text().split()[0]
    done = subprocess.run(sweep_command(method, seed, args, name), capture_output=True, text=True)
    wall = time.time() - start
    if done.returncode != 0:
        sys.exit(f"population_live: {name} exited {done.returncode}:\n{done.stderr[-3000:]}")
    best = json.loads((folder / "best.json").read_text())
    curve = anytime(folder)
    return {
        "method": method,
        "seed": seed,
        "folder": str(folder),
        "wall_s": round(wall, 1),
        "load_at_start": float(load),
        "trial_epochs": curve[-1][0] if curve else 0,
        "best_val_fid": best["val"]["fid"],
        "test_fid": best["test"]["test_fid"],
        "best_config": best["config"],
        "exploits": sum(1 for _ in (folder / "pbt_global.txt").read_text().splitlines())
        if (folder / "pbt_global.txt").exists()
        else 0,
        "anytime": curve,
    }


def best_at(curve: list, budget: int) -> float:
    """The best validation FID-FM an anytime curve had found after ``budget`` trial-epochs."""
    return min(y for x, y in curve if x <= budget)


def bootstrap_median(values: np.ndarray, rng: np.random.Generator, n: int = 10000) -> list[float]:
    draws = rng.choice(values, size=(n, len(values)), replace=True)
    return [float(x) for x in np.percentile(np.median(draws, axis=1), [2.5, 97.5])]


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    by = {(r["method"], r["seed"]): r for r in runs}
    seeds = sorted(
        {r["seed"] for r in runs if ("pbt", r["seed"]) in by and ("pb2", r["seed"]) in by}
    )
    out: dict[str, Any] = {"seeds": seeds, "per_seed": []}
    for key in ("test_fid", "best_val_fid"):
        diff = np.array([by["pb2", s][key] - by["pbt", s][key] for s in seeds])
        ratio = np.array([by["pb2", s][key] / by["pbt", s][key] for s in seeds])
        out[key] = {
            "pbt_median": float(np.median([by["pbt", s][key] for s in seeds])),
            "pb2_median": float(np.median([by["pb2", s][key] for s in seeds])),
            "median_diff_pb2_minus_pbt": float(np.median(diff)),
            "median_diff_ci95": bootstrap_median(diff, np.random.default_rng(0)),
            "median_ratio_pb2_over_pbt": float(np.median(ratio)),
            "pb2_lower_in": int((diff < 0).sum()),
        }
    # at equal trial-epochs: each pair's best validation FID-FM at the smaller of its two budgets
    # (an exploit changes a run's count: a clone redoes epochs from an older checkpoint of its
    # donor, and skips some from a newer one)
    at = {}
    for s in seeds:
        budget = min(by["pbt", s]["trial_epochs"], by["pb2", s]["trial_epochs"])
        at[s] = {m: best_at(by[m, s]["anytime"], budget) for m in METHODS} | {"budget": budget}
    diff = np.array([at[s]["pb2"] - at[s]["pbt"] for s in seeds])
    out["val_fid_at_equal_trial_epochs"] = {
        "pbt_median": float(np.median([at[s]["pbt"] for s in seeds])),
        "pb2_median": float(np.median([at[s]["pb2"] for s in seeds])),
        "median_diff_pb2_minus_pbt": float(np.median(diff)),
        "median_diff_ci95": bootstrap_median(diff, np.random.default_rng(0)),
        "pb2_lower_in": int((diff < 0).sum()),
    }
    for s in seeds:
        out["per_seed"].append(
            {
                "seed": s,
                **{
                    f"{m}_{k}": by[m, s][k]
                    for m in METHODS
                    for k in ("test_fid", "best_val_fid", "trial_epochs", "wall_s", "exploits")
                },
                "equal_budget": at[s]["budget"],
                "pbt_val_fid_at_equal": at[s]["pbt"],
                "pb2_val_fid_at_equal": at[s]["pb2"],
            }
        )
    return out


def draw(runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    horizon = max(r["trial_epochs"] for r in runs)
    grid = np.arange(1, horizon + 1)
    for method, colour in zip(METHODS, ("tab:blue", "tab:orange"), strict=True):
        curves = []
        for r in (r for r in runs if r["method"] == method):
            xs = np.array([x for x, _ in r["anytime"]])
            ys = np.array([y for _, y in r["anytime"]])
            idx = np.searchsorted(xs, grid, side="right") - 1
            curves.append(np.where(idx >= 0, ys[np.clip(idx, 0, None)], np.nan))
        c = np.array(curves)
        ax.plot(grid, np.nanmedian(c, axis=0), color=colour, label=f"{method.upper()} (median)")
        ax.fill_between(grid, np.nanmin(c, axis=0), np.nanmax(c, axis=0), color=colour, alpha=0.2)
    ax.set_xlabel("trial-epochs spent")
    ax.set_ylabel("best validation FID-FM so far")
    ax.set_title(f"PB2 vs PBT on the GAN, {len(runs) // 2} seeds (band: range)")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds (pairs of runs)")
    parser.add_argument("--population", type=int, default=8, help="--num-samples, all at once")
    parser.add_argument("--epochs", type=int, default=8, help="--max-epochs")
    parser.add_argument("--interval", type=int, default=2, help="--perturbation-interval")
    parser.add_argument("--subset", type=int, default=10000, help="training images")
    parser.add_argument(
        "--runs", type=Path, default=Path("runs/pb2_pbt"), help="where the sweep folders go"
    )
    parser.add_argument("--order-seed", type=int, default=0, help="seeds the runs' order")
    parser.add_argument("--json", type=Path, help="write runs and summary here")
    parser.add_argument("--figure", type=Path, help="draw the anytime curves here")
    parser.add_argument("--redraw", action="store_true", help="read --json and draw, run nothing")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the runs --json holds and run the rest of the plan (a stopped benchmark)",
    )
    args = parser.parse_args(argv)
    if args.redraw:
        summary = json.loads(args.json.read_text())
        summary["summary"] = summarise(summary["runs"])
        args.json.write_text(json.dumps(summary, indent=1))
    else:
        args.runs = args.runs.resolve()
        plan = [(m, s) for s in range(args.seeds) for m in METHODS]
        random.Random(args.order_seed).shuffle(plan)
        runs = []
        if args.resume:  # the runs --json holds already; a folder a failed run left is set aside
            runs = json.loads(args.json.read_text())["runs"]
        done = {(r["method"], r["seed"]) for r in runs}
        for method, seed in plan:
            if (method, seed) in done:
                continue
            partial = args.runs / f"{method}_s{seed}"
            if args.resume and partial.exists():
                partial.rename(partial.with_name(partial.name + f"_failed_{int(time.time())}"))
            runs.append(run_one(method, seed, args))
            r = runs[-1]
            print(
                f"{method} seed {seed}: test_fid {r['test_fid']:.1f}, val {r['best_val_fid']:.1f},"
                f" {r['trial_epochs']} trial-epochs, {r['wall_s']:.0f} s",
                flush=True,
            )
            if args.json:  # after every run: a stopped benchmark keeps what it measured
                settings = {k: v for k, v in vars(args).items() if k not in ("json", "figure")}
                settings["runs"] = str(args.runs)
                summary = {"settings": settings, "order": plan, "runs": runs}
                summary["summary"] = summarise(runs)
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(summary, indent=1))
        summary = {"runs": runs, "summary": summarise(runs)}
    print(json.dumps({k: v for k, v in summary["summary"].items() if k != "per_seed"}, indent=1))
    if args.figure:
        draw(summary["runs"], args.figure)
    return summary


if __name__ == "__main__":
    main()
