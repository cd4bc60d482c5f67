"""The simulator checked against live sweeps: the same searches run for real on this machine, on
the recorded curves' subset and budget, and their anytime curves drawn over the simulated ones.

    python bench/live_check.py --seeds 5 --sim bench/results/sim_wide_w2.json \\
        --json bench/results/live_wide_w2.json --figure docs/figures/live_wide_w2.png

Methods (``--methods``), each for ``--seeds`` seeds, runs in a random order:

  ours              the sweep itself, as a user runs it: ``sweeps/ae_sweep.py --space wide
                    --subset 10000 --max-epochs 10 --max-concurrent 2 --seed S --time-budget ...``
                    in its own process (its defaults: Optuna's TPE, the revising ASHA, grace 1,
                    reduction factor 3, a checkpoint every epoch)
  ray-default       Ray Tune as its documentation shows with no search algorithm: Tune's random
                    search (``BasicVariantGenerator``, seeded) and ``ASHAScheduler`` (same grace
                    and factor), the same trainable and data, two trials at once
  optuna-hyperband  Optuna by itself: ``TPESampler`` + ``HyperbandPruner`` through ask/tell, two
                    threads (as ``study.optimize(n_jobs=2)`` runs), each trial reporting every
                    epoch and pruned when the pruner says so

Each run's clock starts when its first trial starts (Ray's and the sweep's start-up before that
is reported apart, ``startup_s``) and stops at the simulator's horizon for the same setting
(``--sim``: ``bench/simulate.py``'s JSON at W=2, whose target and normalisation are used here).
A live run's time-to-target and regret at the horizon are compared with the simulator's
per-seed values: the simulator's median must lie inside the live runs' range.

Each run also measures what a trial costs beyond its recorded epochs (``costs``: the gap
before a trial starts on a free worker, the extra of its first and of its later epochs), which
bench/simulate.py charges with ``--costs`` this JSON. ``--compare`` compares the live runs
already in ``--json`` with another ``--sim`` (the simulator run again with those costs) and
redraws, running nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SUBSET, MAX_EPOCHS, WORKERS, GRACE, FACTOR = 10000, 10, 2, 1, 3
SLACK_S = 20.0  # --time-budget beyond the horizon: Tune's clock also counts the trials' start


def trials_of_folder(exp: Path) -> list[tuple[float, list[tuple[float, float]]]]:
    """Each trial of a Tune experiment folder as (start, [(seconds since its start, val_mse) per
    epoch]), from its result.json: Tune's ``timestamp`` is whole seconds, so a trial's start is
    the mean of ``timestamp + 0.5 - time_total_s`` over its results."""
    trials = []
    for path in exp.glob("*/result.json"):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        rows = [r for r in rows if r.get("val_mse") is not None]
        if rows:
            start = float(np.mean([r["timestamp"] + 0.5 - r["time_total_s"] for r in rows]))
            trials.append((start, [(r["time_total_s"], float(r["val_mse"])) for r in rows]))
    return sorted(trials)


def relative(trials: list) -> tuple[list, list]:
    """Trials (absolute starts) as events (seconds since the first trial started, val_mse), and
    the trials with their starts in seconds since the first start."""
    if not trials:
        return [], []
    t0 = min(start for start, _ in trials)
    trials = sorted((start - t0, epochs) for start, epochs in trials)
    return sorted((start + t, v) for start, epochs in trials for t, v in epochs), trials


def costs(trials: list, workers: int, recorded_epoch_s: float) -> dict[str, float]:
    """What running a trial cost beyond its recorded epochs, from a live run's trials (relative
    starts): the median gap between a worker becoming free and the next trial starting on it
    (the workers rebuilt from the starts and ends: each trial after the first wave takes the
    worker freed last before it starts), and the median first and later epoch less the recorded
    curves' median epoch."""
    free: list[float] = []
    gaps, first, later = [], [], []
    for start, epochs in trials:
        if len(free) < workers:  # the first wave: a worker of its own
            free.append(start + epochs[-1][0])
        else:
            ready = [f for f in free if f <= start] or [min(free)]
            f = max(ready)
            free.remove(f)
            free.append(start + epochs[-1][0])
            gaps.append(max(start - f, 0.0))
        durations = np.diff([0.0] + [t for t, _ in epochs])
        first.append(durations[0])
        later.extend(durations[1:])
    return {
        "start_s": float(np.median(gaps)) if gaps else 0.0,
        "first_epoch_extra_s": float(np.median(first) - recorded_epoch_s),
        "epoch_extra_s": float(np.median(later) - recorded_epoch_s) if later else 0.0,
    }


def run_ours(seed: int, horizon: float, out: Path) -> tuple[list, float]:
    name = f"live_ours_{seed}"
    cmd = [
        sys.executable,
        str(REPO / "sweeps" / "ae_sweep.py"),
        "--space=wide",
        f"--subset={SUBSET}",
        f"--max-epochs={MAX_EPOCHS}",
        f"--max-concurrent={WORKERS}",
        f"--seed={seed}",
        "--num-samples=1000",
        f"--time-budget={horizon + SLACK_S}",
        "--wandb-mode=disabled",
        f"--storage-path={out}",
        f"--name={name}",
    ]
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(
            f"live_check: the sweep failed ({proc.returncode}):\n{proc.stdout[-3000:]}"
        )
    trials = trials_of_folder(out / name)
    return trials, trials[0][0] - t0


def full_space(seed: int) -> dict[str, Any]:
    """The trial space ``sweeps/ae_sweep.py`` builds for these flags (bench/simulate.py's)."""
    from bench.simulate import sweep_settings

    args = argparse.Namespace(grace_period=GRACE, reduction_factor=FACTOR, warm_start=None)
    _, full = sweep_settings("wide", WORKERS, seed, MAX_EPOCHS, args, (f"--subset={SUBSET}",))
    return full


def run_ray_default(seed: int, horizon: float, out: Path) -> tuple[list, float]:
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from trainables.autoencoder import train_autoencoder
    from trainables.data import load_splits

    t0 = time.time()
    space = full_space(seed)
    splits = load_splits(None, space["val_size"], space["data_seed"], SUBSET)
    space["data_dir"] = splits.source
    ray.init(num_cpus=WORKERS, include_dashboard=False, log_to_driver=False)
    try:
        name = f"live_ray_{seed}"
        tuner = tune.Tuner(
            tune.with_resources(
                tune.with_parameters(train_autoencoder, data=splits.without_test()), {"cpu": 1}
            ),
            param_space=space,
            tune_config=tune.TuneConfig(
                metric="val_mse",
                mode="min",
                search_alg=BasicVariantGenerator(random_state=seed),  # Tune's default, seeded
                scheduler=ASHAScheduler(
                    max_t=MAX_EPOCHS, grace_period=GRACE, reduction_factor=FACTOR
                ),
                num_samples=1000,
                max_concurrent_trials=WORKERS,
                time_budget_s=horizon + SLACK_S,
            ),
            run_config=tune.RunConfig(name=name, storage_path=str(out), verbose=0),
        )
        tuner.fit()
    finally:
        ray.shutdown()
    trials = trials_of_folder(out / name)
    return trials, trials[0][0] - t0


class _Reporter:
    """The trainable's reporter inside an Optuna trial: each epoch's value to the trial (and the
    pruner), and to the trial's record."""

    def __init__(self, trial, deadline: float):
        self.trial, self.deadline = trial, deadline
        self.start = time.perf_counter()
        self.epochs: list[tuple[float, float]] = []  # (seconds since the trial started, value)

    def restore(self):
        return None

    def report(self, metrics: dict[str, Any], payload: dict[str, Any]) -> None:
        import optuna

        now = time.perf_counter()
        epoch, value = int(metrics["epoch"]), float(metrics["val_mse"])
        self.epochs.append((now - self.start, value))
        self.trial.report(value, epoch)
        if now >= self.deadline:
            raise TimeoutError("the horizon")
        if epoch < MAX_EPOCHS and self.trial.should_prune():
            raise optuna.TrialPruned()


def run_optuna(seed: int, horizon: float, out: Path) -> tuple[list, float]:
    import optuna
    import torch
    from ray.tune.search.optuna import OptunaSearch

    from trainables.autoencoder import train_autoencoder
    from trainables.data import load_splits

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t_start = time.time()
    space = full_space(seed)
    splits = load_splits(None, space["val_size"], space["data_seed"], SUBSET).without_test()
    space["data_dir"] = splits.source
    distributions = OptunaSearch.convert_search_space(space)
    fixed = {k: v for k, v in space.items() if k not in distributions}
    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.HyperbandPruner(
            min_resource=GRACE, max_resource=MAX_EPOCHS, reduction_factor=FACTOR
        ),
    )
    trials: list = []
    lock = threading.Lock()
    t0 = time.perf_counter()
    deadline = t0 + horizon
    startup = time.time() - t_start

    def worker() -> None:
        while time.perf_counter() < deadline:
            with lock:
                trial = study.ask(distributions)
            reporter = _Reporter(trial, deadline)
            try:
                train_autoencoder({**fixed, **trial.params}, splits, reporter)
                study.tell(trial, reporter.epochs[-1][1])
            except optuna.TrialPruned:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            except TimeoutError:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            if reporter.epochs:
                with lock:
                    trials.append((reporter.start, reporter.epochs))

    threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return sorted(trials), startup


RUNNERS = {"ours": run_ours, "ray-default": run_ray_default, "optuna-hyperband": run_optuna}


def add_costs(path: Path, folders: Path) -> dict[str, Any]:
    summary = json.loads(path.read_text())
    recorded = recorded_epoch_seconds()
    prefix = {"ours": "live_ours_", "ray-default": "live_ray_"}
    for method, m in summary["methods"].items():
        for r in m["runs"]:
            if method in prefix:
                _, trials = relative(trials_of_folder(folders / f"{prefix[method]}{r['seed']}"))
                trials = [(t, e) for t, e in trials if t <= summary["horizon_s"]]
                r["trials"], r["costs"] = len(trials), costs(trials, WORKERS, recorded)
            else:  # threads of one process: every cost on the epochs
                per_epoch = WORKERS * summary["horizon_s"] / r["epochs"] - recorded
                r["costs"] = {
                    "start_s": 0.0,
                    "first_epoch_extra_s": per_epoch,
                    "epoch_extra_s": per_epoch,
                }
        m["costs"] = median_costs(m["runs"])
        print(f"{method:17s} costs {m['costs']}")
    path.write_text(json.dumps(summary) + "\n")
    return summary


def recorded_epoch_seconds() -> float:
    """The recorded curves' median epoch on the wide space: what the simulator charges."""
    import pandas as pd

    from bench.simulate import CURVES

    table = pd.read_parquet(CURVES)
    return float(table.loc[table["space"] == "wide", "seconds"].median())


def best_so_far(events: list[tuple[float, float]], grid: np.ndarray) -> np.ndarray:
    times = np.array([t for t, _ in events])
    best = np.minimum.accumulate(np.array([v for _, v in events])) if events else np.array([])
    idx = np.searchsorted(times, grid, side="right") - 1
    return np.where(idx >= 0, np.append(best, np.inf)[idx], np.inf)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=list(RUNNERS), choices=list(RUNNERS))
    parser.add_argument("--seeds", type=int, default=5, help="seeds per method")
    parser.add_argument("--sim", type=Path, required=True, help="bench/simulate.py's JSON, W=2")
    parser.add_argument("--horizon", type=float, help="seconds (default: the --sim horizon)")
    parser.add_argument("--json", type=Path, help="write the summary here")
    parser.add_argument("--figure", type=Path, help="draw live over simulated here")
    parser.add_argument(
        "--add-costs",
        type=Path,
        metavar="DIR",
        help="run nothing: add the costs to --json (written by an earlier version of this "
        "script) from that run's experiment folders in DIR (ours, ray-default); "
        "optuna-hyperband's from its epoch count (no start cost)",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="run nothing: compare --json's live runs with --sim, rewrite --json, draw --figure",
    )
    args = parser.parse_args(argv)
    if args.add_costs:
        return add_costs(args.json, args.add_costs)
    sim = json.loads(args.sim.read_text())
    if args.compare:
        summary = json.loads(args.json.read_text())
        compare(summary, sim, str(args.sim))
        args.json.write_text(json.dumps(summary) + "\n")
        if args.figure:
            draw(summary, sim, args.figure)
        return summary
    if sim.get("workers") != WORKERS or sim.get("space") != "wide":
        raise SystemExit(f"live_check: --sim must be the wide space at W={WORKERS}")
    horizon = args.horizon or sim["horizon_s"]
    target, best = sim["target_val_mse"], sim["best_recorded"]
    grid = np.linspace(0, horizon, 200)
    recorded_epoch_s = recorded_epoch_seconds()
    order = [(m, s) for s in range(args.seeds) for m in args.methods]
    np.random.default_rng(1).shuffle(order)
    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", WANDB_MODE="disabled")
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in args.methods}
    out = Path(tempfile.mkdtemp(prefix="live-"))
    for method, seed in order:
        load0 = os.getloadavg()[0]
        t = time.time()
        trials, startup = RUNNERS[method](seed, horizon, out)
        events, trials = relative(trials)
        events = [(t_, v) for t_, v in events if t_ <= horizon]
        trials = [(t_, e) for t_, e in trials if t_ <= horizon]
        run = {"seed": seed, "events": events}
        score(run, grid, target, best)
        runs[method].append(
            {
                **run,
                "epochs": len(events),
                "startup_s": round(startup, 1),
                "trials": len(trials),
                "costs": costs(trials, WORKERS, recorded_epoch_s),
                "wall_s": round(time.time() - t, 1),
                "load_before": load0,
            }
        )
        print(
            f"live_check: {method} seed {seed}: time-to-target {run['time_to_target_s']:.1f} s, "
            "final regret "
            f"{runs[method][-1]['final_regret']:.3f}, {len(events)} epochs, start-up "
            f"{startup:.1f} s, load {load0:.2f}",
            flush=True,
        )
    summary: dict[str, Any] = {
        "horizon_s": horizon,
        "target_val_mse": target,
        "best_recorded": best,
        "grid_s": grid.tolist(),
        "command": "python bench/live_check.py " + " ".join(argv or sys.argv[1:]),
        "methods": {},
    }
    for method, rs in runs.items():
        summary["methods"][method] = {"runs": rs, "costs": median_costs(rs)}
    compare(summary, sim, str(args.sim))
    if args.json:
        args.json.write_text(json.dumps(summary) + "\n")
    if args.figure:
        draw(summary, sim, args.figure)
    return summary


def score(run: dict[str, Any], grid: np.ndarray, target: float, best: float) -> None:
    """A run's anytime figures from its ``events``, normalised as the simulator does (0: the
    best recorded value, 1: ``target``, random search's final median): ``regret`` on ``grid``,
    ``final_regret`` at its end, and ``time_to_target_s``."""
    scale = max(target - best, 1e-12)
    curve = best_so_far(run["events"], grid)
    run["regret"] = np.minimum((curve - best) / scale, 10.0).tolist()
    run["final_regret"] = float((curve[-1] - best) / scale)
    run["time_to_target_s"] = next(
        (t for t, b in _improvements(run["events"]) if b <= target), math.inf
    )


def median_costs(runs: list[dict[str, Any]]) -> dict[str, float]:
    """The median over runs of each run's costs: what bench/simulate.py's --costs charges."""
    return {k: float(np.median([r["costs"][k] for r in runs])) for k in runs[0]["costs"]}


def compare(summary: dict[str, Any], sim: dict[str, Any], sim_file: str) -> None:
    """Each method's live runs against the simulator's seeds (``sim``: bench/simulate.py's JSON
    for the same setting): time-to-target and regret at the horizon, median and range live,
    and whether the simulator's median lies inside the live range; added to ``summary``."""
    summary["sim"] = sim_file
    # the simulator's target and normalisation (random search's final median there)
    target, best = sim["target_val_mse"], sim["best_recorded"]
    grid = np.array(summary["grid_s"])
    summary.update(target_val_mse=target, best_recorded=best)
    for method, m in summary["methods"].items():
        rs = m["runs"]
        for r in rs:
            score(r, grid, target, best)
        live_ttt = [r["time_to_target_s"] for r in rs]
        live_final = [r["final_regret"] for r in rs]
        s = sim["methods"].get(method, {})
        sim_ttt = s.get("time_to_target_median_s", math.nan)
        sim_final = s.get("final_regret_median", math.nan)
        m.update(
            live_time_to_target_median_s=float(np.median(live_ttt)),
            live_time_to_target_range_s=[float(min(live_ttt)), float(max(live_ttt))],
            sim_time_to_target_median_s=sim_ttt,
            sim_inside_live_range=bool(min(live_ttt) <= sim_ttt <= max(live_ttt)),
            live_final_regret_median=float(np.median(live_final)),
            live_final_regret_range=[float(min(live_final)), float(max(live_final))],
            sim_final_regret_median=sim_final,
            sim_final_inside_live_range=bool(min(live_final) <= sim_final <= max(live_final)),
            live_epochs_median=float(np.median([r["epochs"] for r in rs])),
            sim_epochs_median=s.get("epochs_median", math.nan),
            live_trials_median=float(np.median([r.get("trials", math.nan) for r in rs])),
            sim_trials_median=s.get("trials_median", math.nan),
            startup_median_s=float(np.median([r["startup_s"] for r in rs])),
        )
        print(
            f"{method:17s} time-to-target live median {m['live_time_to_target_median_s']:.1f} s "
            f"(range {min(live_ttt):.1f}-{max(live_ttt):.1f}), simulated "
            f"{sim_ttt:.1f} s (inside: {m['sim_inside_live_range']}); regret at the horizon "
            f"live {m['live_final_regret_median']:.3f} ({min(live_final):.3f}-"
            f"{max(live_final):.3f}), simulated {sim_final:.3f} (inside: "
            f"{m['sim_final_inside_live_range']}); epochs live {m['live_epochs_median']:.0f}, "
            f"simulated {m['sim_epochs_median']:.0f}; trials live {m['live_trials_median']:.0f}, "
            f"simulated {m['sim_trials_median']:.0f}"
        )


def _improvements(events):
    best = math.inf
    for t, v in events:
        if v < best:
            best = v
            yield t, best


def draw(summary: dict[str, Any], sim: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    sim_grid = np.array(sim["grid_s"])
    grid = np.array(summary["grid_s"])
    for name, m in summary["methods"].items():
        s = sim["methods"].get(name)
        color = None
        if s:
            (line,) = ax.plot(sim_grid, s["regret_iqm"], lw=1.5, label=f"{name}, simulated IQM")
            color = line.get_color()
            ax.fill_between(sim_grid, s["regret_lo"], s["regret_hi"], color=color, alpha=0.15)
        for i, r in enumerate(m["runs"]):
            ax.plot(
                grid,
                r["regret"],
                color=color,
                lw=0.8,
                ls="--",
                label=f"{name}, live ({len(m['runs'])} seeds)" if i == 0 else None,
            )
    ax.set_yscale("log")
    ax.set_ylim(0.01, 10)
    ax.set_xlim(0, summary["horizon_s"])
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("wall time since the first trial started (s)")
    ax.set_ylabel("normalised regret of the best val_mse")
    ax.set_title(
        "autoencoder 'wide' space, W=2: live runs (dashed) over the simulator", fontsize=10
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
