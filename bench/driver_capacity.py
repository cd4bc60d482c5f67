"""The driver's capacity (issue #23, part 5): how many results per second our sweep's driver can
absorb, measured as the driver's own CPU per result, with trainables that only report.

    python bench/driver_capacity.py --trials 60 --epochs 40 --rounds 2 \\
        --json bench/results/driver_capacity.json

Each arm is a whole sweep through ``sweeps/ae_sweep.py``'s ``main`` (the driver is this
process) whose trainable trains nothing: ``trainables.training``'s own epoch loop around a
``one_epoch`` that returns a made-up val_mse at once, so every result takes the real path (the
metrics, a checkpoint of the untrained autoencoder's state, ``tune.report``) and the driver does
all its real work on it: Tune's loop, the searcher, the scheduler, the result loggers, the
checkpoint pruner, W&B, the snapshots. ``--grace-period`` = ``--epochs``: nothing stops a trial
early, so every trial sends ``--epochs`` results. ``--max-concurrent`` trials share the
machine's other CPU (``--cpus-per-trial``), enough that results queue for the driver.

  ours           the default: TPE on the study in its journal file, the revising ASHA, W&B
                 offline
  ours-no-wandb  the same, ``--wandb-mode disabled``
  ours-random    the same with ``--searcher random`` (no TPE)
  ours-every-3   the same with ``--report-every 3``: a trial reports (and checkpoints) every
                 third epoch, ASHA's rungs and its last epoch
  plain          plain Ray Tune: a Tuner over the same report-only trainable, Tune's random
                 search, no scheduler, no W&B, no checkpoints (Ray's guidance for what a driver
                 absorbs, about 500 results/s, is for this kind of run)

Per arm: results (every trial's reports), epochs (every trial's epochs: the results but for
``ours-every-3``), the fit's wall, the driver's CPU seconds over
the whole run (this process, all its threads: start and end included, so per result it is an
upper bound), CPU per result, and capacity = 1 / CPU per result: the results per second the
driver could absorb on one CPU of its own; and the same per epoch (``capacity_epochs_per_s``):
the trial-epochs per second it could keep up with. Arms in a random order per round (``--seed``).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

from sweep_overhead import load  # noqa: E402

from trainables import autoencoder, training  # noqa: E402

os.environ.setdefault("RAY_ADDRESS", "local")  # a fresh local Ray, never one found


def made_up_value(config: dict[str, Any], epoch: int) -> float:
    """A learning curve shaped by the config (lr near 1e-3 is best), so the searcher has
    something to model."""
    return 0.02 + 0.01 * abs(math.log10(config["lr"]) + 3) + 0.05 / epoch


@functools.wraps(autoencoder.train_autoencoder)  # its name: Tune's trial folders follow it
def report_only(config: dict[str, Any], data=None, reporter=None) -> None:
    """The autoencoder's trainable with nothing trained: the real epoch loop, report and
    checkpoint, a made-up val_mse."""
    cfg = autoencoder.AutoencoderConfig.from_dict(config)
    run = training.start(autoencoder.KIND, cfg, data, reporter)

    def build():
        model = autoencoder.ConvAutoencoder(cfg.latent_dim)
        return {"model": model, "optimizer": autoencoder.make_optimizer(cfg, model.parameters())}

    modules, restored = training.initialise(run, build)

    def one_epoch(epoch, generator, history):
        value = made_up_value(config, epoch)
        return {"train_mse": value, "val_mse": value}

    training.run_epochs(run, modules, restored, {"latent_dim": cfg.latent_dim}, one_epoch)


class ReportOnlyAutoencoder:
    """``trainables.autoencoder`` with ``report_only`` as its trainable."""

    def __getattr__(self, name):
        return getattr(autoencoder, name)

    TRAINABLE = staticmethod(report_only)


def ours(args, storage: Path, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    from sweeps import ae_sweep, runner

    module_for = runner.module_for
    runner.module_for = lambda kind: ReportOnlyAutoencoder()
    fit = runner.tune.Tuner.fit
    timed = {}

    def timed_fit(self):
        t0 = time.perf_counter()
        try:
            return fit(self)
        finally:
            timed["fit_s"] = time.perf_counter() - t0

    runner.tune.Tuner.fit = timed_fit
    argv = [
        f"--num-samples={args.trials}",
        f"--max-epochs={args.epochs}",
        f"--grace-period={args.epochs}",
        f"--max-concurrent={args.max_concurrent}",
        f"--cpus-per-trial={args.cpus_per_trial}",
        f"--num-cpus={args.num_cpus}",
        f"--subset={args.subset}",
        f"--storage-path={storage}",
        "--name=capacity",
        "--wandb-mode=offline",
        *extra,
    ]
    try:
        summary = ae_sweep.main(argv)
    finally:
        runner.module_for, runner.tune.Tuner.fit = module_for, fit
    if not summary["complete"]:
        raise SystemExit(f"driver_capacity: the sweep did not finish: {summary}")
    import pyarrow.parquet as pq

    reports = pq.read_metadata(storage / "capacity" / "results.parquet").num_rows  # one a result
    return {"results": reports, "epochs": summary["trial_epochs"], "fit_s": timed["fit_s"]}


def plain(args, storage: Path) -> dict[str, Any]:
    import ray
    from ray import tune

    from sweeps import ae_sweep
    from sweeps.cluster import private_api
    from trainables.data import load_splits

    class Silent:
        def restore(self):
            return None

        def report(self, metrics, payload):
            tune.report(metrics)

    def trainable(config, data=None):
        report_only(config, data, Silent())

    splits = load_splits(None, subset=args.subset)
    space = {**ae_sweep.SPACES["report"], "epochs": args.epochs, "subset": args.subset}
    private_api.ray_on_loopback_only()
    ray.init(num_cpus=args.num_cpus, include_dashboard=False, logging_level="WARNING")
    try:
        tuner = tune.Tuner(
            tune.with_resources(
                tune.with_parameters(trainable, data=splits.without_test()),
                {"cpu": args.cpus_per_trial},
            ),
            param_space=space,
            tune_config=tune.TuneConfig(
                num_samples=args.trials,
                max_concurrent_trials=args.max_concurrent,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(name="capacity", storage_path=str(storage), verbose=0),
        )
        t0 = time.perf_counter()
        grid = tuner.fit()
        fit_s = time.perf_counter() - t0
    finally:
        ray.shutdown()
    results = sum(int(r.metrics["training_iteration"]) for r in grid)
    return {"results": results, "epochs": results, "fit_s": fit_s}


ARMS = {
    "ours": ours,
    "ours-no-wandb": lambda a, s: ours(a, s, ("--wandb-mode=disabled",)),
    "ours-random": lambda a, s: ours(a, s, ("--searcher=random",)),
    "ours-every-3": lambda a, s: ours(a, s, ("--report-every=3",)),
    "plain": plain,
}


def measure(arm: str, args, root: Path) -> dict[str, Any]:
    storage = root / arm
    cpu0, t0 = os.times(), time.perf_counter()
    out = ARMS[arm](args, storage)
    cpu1, wall = os.times(), time.perf_counter() - t0
    shutil.rmtree(storage, ignore_errors=True)
    cpu = cpu1.user + cpu1.system - cpu0.user - cpu0.system
    return {
        "results": out["results"],
        "epochs": out["epochs"],
        "wall_s": round(wall, 2),
        "fit_s": round(out["fit_s"], 2),
        "driver_cpu_s": round(cpu, 2),
        "driver_cpu_ms_per_result": round(1000 * cpu / out["results"], 3),
        "capacity_results_per_s": round(out["results"] / cpu, 1),
        "capacity_epochs_per_s": round(out["epochs"] / cpu, 1),
        "fit_results_per_s": round(out["results"] / out["fit_s"], 1),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=60, help="trials per arm (%(default)s)")
    p.add_argument("--epochs", type=int, default=40, help="results per trial")
    p.add_argument("--max-concurrent", type=int, default=8, help="trials at once (%(default)s)")
    p.add_argument(
        "--cpus-per-trial", type=float, default=0.125, help="each trial's CPU share (%(default)s)"
    )
    p.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray (%(default)s)")
    p.add_argument("--subset", type=int, default=2048, help="images each trial puts on its device")
    p.add_argument("--rounds", type=int, default=2, help="rounds, each in a random order")
    p.add_argument(
        "--arms", nargs="+", default=list(ARMS), choices=list(ARMS), help="the arms (all)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the orders (%(default)s)")
    p.add_argument("--json", type=Path, help="also write the rounds and summary here")
    args = p.parse_args(argv)
    order = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="driver_capacity-"))
    rounds = []
    started = time.strftime("%H:%M:%S", time.gmtime())
    try:
        for r in range(args.rounds):
            arms = order.sample(args.arms, len(args.arms))
            entry = {"order": arms, "load_before": load()}
            for arm in arms:
                entry[arm] = measure(arm, args, root)
                print(f"driver_capacity: round {r + 1} {arm}: {entry[arm]}", flush=True)
            entry["load_after"] = load()
            rounds.append(entry)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    summary = {}
    for arm in args.arms:
        per = [e[arm]["capacity_results_per_s"] for e in rounds]
        ms = [e[arm]["driver_cpu_ms_per_result"] for e in rounds]
        epochs = [e[arm]["capacity_epochs_per_s"] for e in rounds]
        summary[arm] = {
            "capacity_results_per_s_median": statistics.median(per),
            "capacity_range": [min(per), max(per)],
            "capacity_epochs_per_s_median": statistics.median(epochs),
            "capacity_epochs_range": [min(epochs), max(epochs)],
            "driver_cpu_ms_per_result_median": statistics.median(ms),
            "fit_results_per_s_median": statistics.median(
                e[arm]["fit_results_per_s"] for e in rounds
            ),
        }
        print(
            f"{arm:14s} {summary[arm]['capacity_results_per_s_median']:7.1f} results/s per driver "
            f"CPU-second [{min(per):.1f}, {max(per):.1f}], "
            f"{summary[arm]['driver_cpu_ms_per_result_median']:.2f} ms CPU per result, "
            f"{summary[arm]['capacity_epochs_per_s_median']:.1f} trial-epochs/s",
            flush=True,
        )
    out = {
        "settings": vars(args) | {"json": str(args.json) if args.json else None},
        "started_utc": started,
        "rounds": rounds,
        "summary": summary,
        "command": "python bench/driver_capacity.py " + " ".join(argv or sys.argv[1:]),
    }
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
