"""Early-stopping economy: the autoencoder sweep with ASHA against the same trials without it.

    python bench/asha_economy.py              # ae_sweep's defaults (20 trials x 20 epochs, grace 1,
                                              # reduction factor 3, revising ASHA) on 20,000 images,
                                              # 2 concurrent
    python bench/asha_economy.py --num-trials 12 --epochs 10 --subset 5000
    python bench/asha_economy.py --replay-from out.json   # other ASHA settings on a run's curves

Both runs are ``sweeps/ae_sweep.py``'s ``main`` on the report's space, with the same fixed list
of trial configs (drawn once from the space with ``--seed``, given to the searcher as
``points_to_evaluate``, so Optuna enqueues them and neither run depends on what TPE learnt):

  asha  ASHA with ``--grace-period`` and ``--reduction-factor``;
  fifo  ``--grace-period`` = ``--epochs``: ASHA has no rung below max_t and stops nothing, which
        is a FIFO scheduler.

Prints trial-epochs spent and the best validation MSE (the best trial's last epoch) of each, and
their ratios. Targets (the performance issue): ASHA spends at most 1/4 of the epochs and its best
val_mse is within 3% of the full run's. Times are printed but the figures that matter, epochs and
MSE, do not depend on the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from sweeps import ae_sweep
from sweeps.search import schedulers, searcher

# A fresh local Ray even when another one (``ray start``) runs on this machine.
os.environ.setdefault("RAY_ADDRESS", "local")


def draw_configs(n: int, seed: int) -> list[dict]:
    """``n`` configs from the report space (ae_sweep.SPACES['report']), drawn with numpy."""
    rng = np.random.default_rng(seed)

    def loguniform(lo, hi):
        return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))

    return [
        {
            "optimizer": str(rng.choice(["adam", "sgd"])),
            "lr": loguniform(1e-4, 1e-3),
            "weight_decay": loguniform(1e-5, 1e-3),
        }
        for _ in range(n)
    ]


def run(args, storage: Path, name: str, grace_period: int, configs: list[dict]) -> dict:
    from ray import tune

    original = searcher.TrialStateOptunaSearch

    class FixedPoints(original):  # the sweep's own searcher, given the configs to run first
        def __init__(self, **kwargs):
            super().__init__(points_to_evaluate=[dict(c) for c in configs], **kwargs)

    searcher.TrialStateOptunaSearch = FixedPoints
    argv = [
        f"--num-samples={len(configs)}",
        f"--max-epochs={args.epochs}",
        f"--grace-period={grace_period}",
        f"--reduction-factor={args.reduction_factor}",
        "--max-concurrent=2",
        "--cpus-per-trial=1",
        "--num-cpus=2",
        f"--storage-path={storage}",
        f"--name={name}",
        "--wandb-mode=disabled",
        "--asha-revise" if args.asha_revise else "--no-asha-revise",
    ]
    if args.subset:
        argv.append(f"--subset={args.subset}")
    t0 = time.perf_counter()
    try:
        ae_sweep.main(argv)
    finally:
        searcher.TrialStateOptunaSearch = original
    wall = time.perf_counter() - t0
    analysis = tune.ExperimentAnalysis(str(storage / name))
    trials = {}
    for trial in analysis.trials:
        df = analysis.trial_dataframes[trial.trial_id].sort_values("training_iteration")
        key = (trial.config["optimizer"], round(trial.config["lr"], 12))
        trials[key] = {
            "config": {k: trial.config[k] for k in ("optimizer", "lr", "weight_decay")},
            "epochs": int(df["training_iteration"].max()),
            "val_mse": float(df["val_mse"].iloc[-1]),
            "curve": [float(v) for v in df["val_mse"]],
        }
    best = min(trials.values(), key=lambda t: t["val_mse"])
    return {
        "wall_s": round(wall, 1),
        "trial_epochs": sum(t["epochs"] for t in trials.values()),
        "best_val_mse": best["val_mse"],
        "best_config": best["config"],
        "trials": sorted(trials.values(), key=lambda t: t["val_mse"]),
    }


def replay(
    curves: list[list[float]],
    grace: int,
    rf: float,
    max_t: int,
    orders: int,
    seed: int,
    revise: bool = True,
):
    """The sweep's ASHA (``revise``: the runner's RevisingASHAScheduler, else Ray's
    ASHAScheduler) fed the FIFO run's measured curves, 2 trials at a time, one epoch per time
    step, in ``orders`` random arrival orders (``orders`` = 0: once, in the drawn order):
    (epoch share, best val_mse gap) of each. Shows how much of a real run's result is the luck
    of which trials arrive first."""
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    scheduler_cls = schedulers.RevisingASHAScheduler if revise else ASHAScheduler

    class T:
        def __init__(self, i):
            self.trial_id, self.config = str(i), {}

    full_best = min(c[-1] for c in curves)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(max(orders, 1)):
        sched = scheduler_cls(
            time_attr="training_iteration",
            metric="val_mse",
            mode="min",
            max_t=max_t,
            grace_period=grace,
            reduction_factor=rf,
        )
        order = rng.permutation(len(curves)) if orders else range(len(curves))
        waiting = [T(i) for i in order]
        running, spent, last = [], 0, {}
        while waiting or running:
            while waiting and len(running) < 2:
                trial = waiting.pop(0)
                sched.on_trial_add(None, trial)
                running.append([trial, 0])
            for slot in list(running):
                trial, epoch = slot[0], slot[1] + 1
                slot[1], spent = epoch, spent + 1
                mse = curves[int(trial.trial_id)][epoch - 1]
                last[trial.trial_id] = mse
                result = {"training_iteration": epoch, "val_mse": mse}
                if sched.on_trial_result(None, trial, result) == TrialScheduler.STOP or (
                    epoch >= max_t
                ):
                    sched.on_trial_complete(None, trial, result)
                    running.remove(slot)
        out.append((spent / (len(curves) * max_t), min(last.values()) / full_best - 1))
    return out


def drawn_curves(fifo: dict, configs: list[dict]) -> list[list[float]]:
    """FIFO's val_mse curves in the order the configs were drawn (and ran)."""
    by_config = {
        (t["config"]["optimizer"], round(t["config"]["lr"], 12)): t for t in fifo["trials"]
    }
    return [by_config[(c["optimizer"], round(c["lr"], 12))]["curve"] for c in configs]


def replay_settings(args, curves: list[list[float]]) -> dict:
    """``replay`` for the run's ASHA setting and the usual others, with and without revising:
    in the drawn order, then medians and p10-p90 over random orders. ``curves`` are in the
    drawn order."""
    out = {}
    settings = [(args.grace_period, args.reduction_factor), (1, 3), (1, 4), (2, 3), (2, 4)]
    for grace, rf in dict.fromkeys(settings):
        for revise in (True, False):
            drawn = replay(curves, grace, rf, args.epochs, 0, args.seed, revise)[0]
            runs = replay(curves, grace, rf, args.epochs, args.replay, args.seed, revise)
            share = np.array([r[0] for r in runs])
            gap = np.array([r[1] for r in runs])
            row = {
                "drawn_order_epoch_share": round(drawn[0], 3),
                "epoch_share_median": round(float(np.median(share)), 3),
                "epoch_share_p10_p90": [round(float(q), 3) for q in np.percentile(share, [10, 90])],
                "best_gap_median": round(float(np.median(gap)), 4),
                "best_gap_within_3pct": round(float(np.mean(gap <= 0.03)), 3),
            }
            name = f"grace {grace} rf {rf:g} {'revising' if revise else 'ray'}"
            out[name] = row
            print(f"replay, {args.replay} arrival orders, {name}: {row}", flush=True)
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    d = ae_sweep.SWEEP.defaults  # by default, the sweep as `python sweeps/ae_sweep.py` runs it
    p.add_argument(
        "--num-trials", type=int, default=d["num_samples"], help="trials in each sweep (FIFO, ASHA)"
    )
    p.add_argument(
        "--epochs", type=int, default=d["max_epochs"], help="epochs of a full trial (max_t)"
    )
    p.add_argument("--subset", type=int, default=20000, help="training images (0: all 55,000)")
    p.add_argument(
        "--grace-period", type=int, default=d["grace_period"], help="ASHA's first rung (epochs)"
    )
    p.add_argument(
        "--reduction-factor",
        type=float,
        default=d["reduction_factor"],
        help="ASHA keeps 1/RF of the trials at each rung",
    )
    p.add_argument(
        "--asha-revise",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the sweep's revising ASHA (default), or Ray's (--no-asha-revise)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the drawn configs")
    p.add_argument(
        "--replay",
        type=int,
        default=200,
        metavar="N",
        help="then replay FIFO's curves through ASHA in N random arrival orders (0: skip)",
    )
    p.add_argument(
        "--replay-from",
        metavar="JSON",
        help="only replay, on the FIFO curves of an earlier run's --json (no sweep is run)",
    )
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args(argv)
    if args.replay_from:
        fifo = json.loads(Path(args.replay_from).read_text())["fifo"]
        args.epochs = max(len(t["curve"]) for t in fifo["trials"])
        configs = draw_configs(len(fifo["trials"]), args.seed)
        return {"replay": replay_settings(args, drawn_curves(fifo, configs))}
    configs = draw_configs(args.num_trials, args.seed)
    root = Path(tempfile.mkdtemp(prefix="asha_economy-"))
    scale = (
        f"{args.num_trials} trials x {args.epochs} epochs, {args.subset or 55000} training images, "
        f"ASHA grace {args.grace_period} rf {args.reduction_factor:g}"
        f"{' revising' if args.asha_revise else ''}, 2 concurrent"
    )
    print(f"scale: {scale}", flush=True)
    try:
        asha = run(args, root, "asha", args.grace_period, configs)
        fifo = run(args, root, "fifo", args.epochs, configs)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out = {
        "scale": scale,
        "asha": asha,
        "fifo": fifo,
        "epoch_share": round(asha["trial_epochs"] / fifo["trial_epochs"], 3),
        "best_mse_gap": round(asha["best_val_mse"] / fifo["best_val_mse"] - 1, 4),
    }
    for name, r in (("ASHA", asha), ("FIFO", fifo)):
        print(
            f"{name}: {r['trial_epochs']:4d} trial-epochs, best val_mse {r['best_val_mse']:.5f} "
            f"({r['best_config']['optimizer']}, lr {r['best_config']['lr']:.2e}), wall {r['wall_s']} s"
        )
    print(
        f"ASHA spent {out['epoch_share']:.1%} of FIFO's trial-epochs (target <= 25%); its best "
        f"val_mse is {out['best_mse_gap']:+.2%} from FIFO's (target within 3%)"
    )
    if args.replay:
        out["replay"] = replay_settings(args, drawn_curves(fifo, configs))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
