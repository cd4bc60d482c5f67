"""Sweep overhead: the autoencoder sweep's wall time against the same trials trained in a plain loop.

    python bench/sweep_overhead.py                                  # the issue's scale: 20 x 2 epochs, all data
    python bench/sweep_overhead.py --rounds 2 --ray-wandb-variant      # also Ray's own W&B callback

One round runs these, in a random order (seeded by ``--seed``; plain needs a sweep's trial
configs, so in the first round it runs after the sweep), so drifting machine load hits every
side; the summary gives each figure's median and range over the rounds:

  sweep   ``sweeps/ae_sweep.py``'s ``main`` (Ray Tune + Optuna TPE + ASHA, W&B offline, a
          checkpoint every epoch), ``--max-concurrent 2 --cpus-per-trial 1 --num-cpus 2``;
          ``--grace-period`` = ``--epochs`` so ASHA stops nothing and every trial runs in full;
  nowandb the same sweep with ``--wandb-mode disabled``;
  raywandb (with ``--ray-wandb-variant``) the sweep logged by Ray's own
          ``WandbLoggerCallback`` (a queue actor and a logging actor with its own W&B service
          per trial, blocking puts), set up like ours (mode, folder), instead of
          ``SweepWandbCallback`` (one actor for every run, puts that do not wait);
  plain   the first sweep's trial configs through ``train_autoencoder(config, data, reporter)``
          with a reporter that does nothing, in 2 spawned processes of 1 torch thread each (what
          Ray gives a 1-CPU trial), the data loaded once per process.

Ideal sweep wall = plain's summed training time / 2. Overhead = 1 - ideal / sweep wall, split
into: the sweep's start (data, Ray, study) and end (results.parquet, best checkpoint on the test
split, Ray shutdown), i.e. everything outside ``Tuner.fit``; inside the trials (Tune's
``time_total_s`` over plain's training time: report, checkpoint write and upload, and waiting in
``tune.report`` for the driver); W&B (sweep -
nowandb); and the rest of ``Tuner.fit`` (Ray and Optuna scheduling, actor start). A checkpoint
write and an Optuna TPE ask/report/tell on the sweep's SQLite study are also timed alone.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from sweeps import ae_sweep, runner
from sweeps.folder import results
from trainables import autoencoder, checkpoints, optim
from trainables.data import load_splits

# Start a fresh local Ray even when another Ray (``ray start``) runs on this machine: plain
# ray.init() would join that one (see docs/performance.md).
os.environ.setdefault("RAY_ADDRESS", "local")


def load() -> str:
    return os.popen("uptime").read().strip().split("load average:")[-1].strip()


# --- the sweep, timed in its parts -------------------------------------------------------------


class _Timer:
    """Wraps a function and adds its wall time to ``seconds``."""

    def __init__(self, fn):
        self.fn, self.seconds = fn, 0.0

    def __call__(self, *a, **kw):
        t0 = time.perf_counter()
        try:
            return self.fn(*a, **kw)
        finally:
            self.seconds += time.perf_counter() - t0


def _ray_wandb_callback():
    from ray.air.integrations.wandb import WandbLoggerCallback

    from sweeps.fit.wandb_hub import configure_runs

    class RayWandb(WandbLoggerCallback):
        """Ray's own W&B callback, its runs set up as ours are (mode, folder, resume, quiet)."""

        def log_trial_start(self, trial) -> None:
            configure_runs(self.kwargs, trial)
            super().log_trial_start(trial)

    return RayWandb


def run_sweep(args, storage: Path, name: str, wandb_mode: str, ray_wandb: bool = False) -> dict:
    """One ae_sweep run; returns its wall, its Tuner.fit and finish times and the trials.
    ``ray_wandb``: W&B runs are logged by Ray's own callback, to measure what ours saves."""
    from ray import tune

    fit, finish = _Timer(tune.Tuner.fit), _Timer(results.finish)
    tune.Tuner.fit, results.finish = lambda self: fit(self), finish
    ours = runner.SweepWandbCallback
    if ray_wandb:
        runner.SweepWandbCallback = _ray_wandb_callback()
    argv = [
        f"--num-samples={args.num_trials}",
        f"--max-epochs={args.epochs}",
        f"--grace-period={args.epochs}",
        "--max-concurrent=2",
        "--cpus-per-trial=1",
        "--num-cpus=2",
        f"--storage-path={storage}",
        f"--name={name}",
        f"--wandb-mode={wandb_mode}",
        "--seed=0",
    ]
    if args.subset:
        argv.append(f"--subset={args.subset}")
    t0 = time.perf_counter()
    try:
        ae_sweep.main(argv)
    finally:
        tune.Tuner.fit, results.finish = fit.fn, finish.fn
        runner.SweepWandbCallback = ours
    wall = time.perf_counter() - t0
    analysis = tune.ExperimentAnalysis(str(storage / name))
    trials = []
    for trial in sorted(analysis.trials, key=lambda t: t.trial_id):
        df = analysis.trial_dataframes[trial.trial_id]
        trials.append(
            {
                "config": dict(trial.config),
                "epochs": int(df["training_iteration"].max()),
                "time_total_s": float(df["time_total_s"].max()),
            }
        )
    return {"wall_s": wall, "fit_s": fit.seconds, "finish_s": finish.seconds, "trials": trials}


# --- the plain loop ----------------------------------------------------------------------------


class NullReporter:
    """Keeps nothing: the trainable's loop without Tune, checkpoints or files."""

    def restore(self):
        return None

    def report(self, metrics, payload):
        pass


_DATA = None


def _init_worker(subset):
    global _DATA
    torch.set_num_threads(1)
    _DATA = load_splits(subset=subset)


def _train(config: dict) -> float:
    t0 = time.perf_counter()
    autoencoder.train_autoencoder(config, data=_DATA, reporter=NullReporter())
    return time.perf_counter() - t0


def run_plain(configs: list[dict], subset) -> dict:
    t0 = time.perf_counter()
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(
        2, mp_context=ctx, initializer=_init_worker, initargs=(subset,)
    ) as ex:
        times = list(ex.map(_train, configs))
    return {"wall_s": time.perf_counter() - t0, "train_s": times}


# --- single costs ------------------------------------------------------------------------------


def checkpoint_write_s(repeats: int = 20) -> tuple[float, int]:
    """Seconds per save_checkpoint of an autoencoder payload (model + Adam state), and its bytes."""
    torch.set_num_threads(1)
    cfg = autoencoder.AutoencoderConfig()
    model = autoencoder.ConvAutoencoder(cfg.latent_dim)
    opt = optim.make_optimizer(cfg, model.parameters())
    model(torch.zeros(2, 1, 28, 28)).sum().backward()
    opt.step()  # so Adam has its moment buffers, as after an epoch
    modules = {"model": model, "optimizer": opt}
    history = [{"epoch": e, "train_mse": 0.01, "val_mse": 0.01} for e in range(20)]
    payload = checkpoints.checkpoint_payload("autoencoder", cfg, {"latent_dim": 16}, 1, history, {})
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        for _ in range(repeats):
            payload["state"] = checkpoints.state_of(modules)
            path = checkpoints.save_checkpoint(payload, d)
        return (time.perf_counter() - t0) / repeats, path.stat().st_size


def optuna_times(num_trials: int, epochs: int, storage: Path) -> list[float]:
    """Seconds of Optuna work for each trial in turn as the sweep's searcher does it: TPE ask on
    the report space, one report per epoch and a tell, on the sweep's own study storage (TPE's
    ask grows with the trials already told: the last ones are what a sweep of this size pays):
    its journal file (``SweepJournalStorage``) since issue #23, SQLite before."""
    import optuna

    from sweeps.folder.study_storage import SweepJournalStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=SweepJournalStorage(storage / "optuna_alone.journal"),
        sampler=optuna.samplers.TPESampler(seed=0),
    )
    times = []
    for _ in range(num_trials):
        t0 = time.perf_counter()
        trial = study.ask()
        trial.suggest_categorical("optimizer", ["adam", "sgd"])
        trial.suggest_float("lr", 1e-4, 1e-3, log=True)
        trial.suggest_float("weight_decay", 1e-5, 1e-3, log=True)
        for epoch in range(1, epochs + 1):
            trial.report(0.02, epoch)
        study.tell(trial, 0.02)
        times.append(time.perf_counter() - t0)
    return times


def optuna_s(num_trials: int, epochs: int, storage: Path) -> float:
    """Mean seconds of Optuna work per trial (``optuna_times``)."""
    return statistics.mean(optuna_times(num_trials, epochs, storage))


# --- main --------------------------------------------------------------------------------------


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-trials", type=int, default=20, help="trials of the timed sweep")
    p.add_argument("--epochs", type=int, default=2, help="epochs of each trial (no early stop)")
    p.add_argument("--subset", type=int, default=None, help="training images (default: all 55,000)")
    p.add_argument("--rounds", type=int, default=3, help="rounds, each in a random order")
    p.add_argument("--seed", type=int, default=0, help="seed of the order within each round")
    p.add_argument("--no-wandb-variant", action="store_true", help="skip the W&B-disabled sweep")
    p.add_argument(
        "--ray-wandb-variant",
        action="store_true",
        help="also the sweep logged by Ray's own WandbLoggerCallback (one W&B process per trial)",
    )
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="sweep_overhead-"))
    print(
        f"scale: {args.num_trials} trials x {args.epochs} epochs, "
        f"{args.subset or 55000} training images, 2 concurrent, 1 CPU each; load {load()}",
        flush=True,
    )
    rounds, configs = [], None
    order = random.Random(args.seed)
    try:
        for r in range(args.rounds):
            res: dict = {"load_before": load()}
            steps = ["sweep", "plain"]
            if not args.no_wandb_variant:
                steps.append("nowandb")
            if args.ray_wandb_variant:
                steps.append("raywandb")
            order.shuffle(steps)
            if configs is None and steps.index("plain") < steps.index("sweep"):
                # plain trains a sweep's configs (the same each round: TPE is seeded)
                steps.remove("plain")
                steps.insert(steps.index("sweep") + 1, "plain")
            res["order"] = list(steps)
            for step in steps:
                if step == "sweep":
                    res["sweep"] = run_sweep(args, root, f"sweep_r{r}", "offline")
                    configs = [t["config"] for t in res["sweep"]["trials"]]
                elif step == "raywandb":
                    res["raywandb"] = run_sweep(args, root, f"raywandb_r{r}", "offline", True)
                elif step == "nowandb":
                    res["nowandb"] = run_sweep(args, root, f"nowandb_r{r}", "disabled")
                else:
                    res["plain"] = run_plain(configs, args.subset)
                print(f"  round {r} {step} done (load {load()})", flush=True)
            res["load_after"] = load()
            rounds.append(res)
        ckpt_s, ckpt_bytes = checkpoint_write_s()
        opt_s = optuna_s(args.num_trials, args.epochs, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    out = {"scale": vars(args), "rounds": []}
    for res in rounds:
        sweep, plain = res["sweep"], res["plain"]
        trial_epochs = sum(t["epochs"] for t in sweep["trials"])
        ideal = sum(plain["train_s"]) / 2
        wall = sweep["wall_s"]
        outside_fit = wall - sweep["fit_s"]
        in_trials = (sum(t["time_total_s"] for t in sweep["trials"]) - sum(plain["train_s"])) / 2
        row = {
            "order": res["order"],
            "load_before": res["load_before"],
            "load_after": res["load_after"],
            "trial_epochs": trial_epochs,
            "sweep_wall_s": round(wall, 1),
            "plain_wall_s": round(plain["wall_s"], 1),
            "ideal_wall_s": round(ideal, 1),
            "overhead_share": round(1 - ideal / wall, 3),
            "parts_share": {
                "start_and_end (outside Tuner.fit)": round(outside_fit / wall, 3),
                "  of which finish()": round(sweep["finish_s"] / wall, 3),
                "inside trials (report+checkpoint)": round(in_trials / wall, 3),
                "rest of Tuner.fit (Ray/Optuna scheduling)": round(
                    (sweep["fit_s"] - ideal - in_trials) / wall, 3
                ),
            },
        }
        if "nowandb" in res:
            row["nowandb_wall_s"] = round(res["nowandb"]["wall_s"], 1)
            row["wandb_share"] = round(1 - res["nowandb"]["wall_s"] / wall, 3)
        if "raywandb" in res:
            row["raywandb_wall_s"] = round(res["raywandb"]["wall_s"], 1)
            row["raywandb_overhead_share"] = round(1 - ideal / res["raywandb"]["wall_s"], 3)
            row["ours_saves_share_of_raywandb_wall"] = round(
                1 - wall / res["raywandb"]["wall_s"], 3
            )
        out["rounds"].append(row)
        print(json.dumps(row, indent=2))
    shares = [row["overhead_share"] for row in out["rounds"]]
    out["overhead_share_median"] = round(statistics.median(shares), 3)
    out["overhead_share_range"] = [min(shares), max(shares)]
    print(
        f"overhead over {len(shares)} rounds: median {out['overhead_share_median']:.1%}, "
        f"range {min(shares):.1%}-{max(shares):.1%}",
        flush=True,
    )
    if all("wandb_share" in row for row in out["rounds"]):
        w = [row["wandb_share"] for row in out["rounds"]]
        out["wandb_share_median"] = round(statistics.median(w), 3)
        out["wandb_share_range"] = [min(w), max(w)]
    out["checkpoint_write_ms"] = round(ckpt_s * 1000, 1)
    out["checkpoint_bytes"] = ckpt_bytes
    out["optuna_ms_per_trial"] = round(opt_s * 1000, 1)
    last = out["rounds"][-1]
    cp = ckpt_s * last["trial_epochs"] / 2 / last["sweep_wall_s"]
    op = opt_s * args.num_trials / last["sweep_wall_s"]
    out["checkpoint_write_share_est"] = round(cp, 4)
    out["optuna_share_est"] = round(op, 4)
    print(
        f"checkpoint: {ckpt_bytes / 1e3:.0f} kB, {ckpt_s * 1000:.1f} ms per write "
        f"(~{cp:.1%} of the last sweep's wall); Optuna alone: {opt_s * 1000:.0f} ms per trial "
        f"(~{op:.1%}); load now {load()}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
