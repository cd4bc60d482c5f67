"""Scale: what the framework costs per trial at 10, 100 and 1,000 trials, against plain Ray Tune.

    python bench/scale.py --sizes 10,100,1000 --json scale.json   # the issue's run: alone on the
                                                                  # machine, ~1 h on 2 CPUs (estimate)
    python bench/scale.py --sizes 10                              # a check: about a minute
    python bench/scale.py --sizes 3 --json /tmp/scale.json        # what tests/test_bench_scale.py runs

For each size N, in a random order (seeded by ``--seed``), on a fresh local Ray of ``--num-cpus``
CPUs each time, with 2 trials of 1 CPU at a time:

  ours   ``sweeps/ae_sweep.py``'s ``main`` as a user runs it: Optuna TPE on the study in its
         journal file (``optuna.journal``; ``ours-sqlite``: on SQLite, as before issue #23;
         ``ours-no-wandb``: with ``--wandb-mode disabled``, to tell W&B's share),
         revising ASHA (grace 1, reduction factor 3), W&B offline through the W&B actor, a
         checkpoint every epoch and the checkpoint pruner, the compact progress lines, and at the
         end results.parquet and the best checkpoint evaluated on the test split;
  plain  plain Ray Tune: a ``Tuner`` over the same trial space (Tune's random search, no
         scheduler, no W&B, no checkpoints, ``verbose=0``, ``reuse_actors=True`` as ours), whose
         function trainable runs the same ``train_autoencoder`` loop and only ``tune.report``s:
         the floor, not the peer;
  documented, documented-mem
         Ray Tune as its documentation shows this search, what a user writes without us: the
         same trainable loop reporting a checkpoint every epoch (``tune.report(metrics,
         checkpoint=...)``, ``CheckpointConfig(num_to_keep=1, checkpoint_score_attribute=...)``),
         Ray's ``OptunaSearch`` (TPE, seeded) on a study in SQLite (a user who wants a durable
         study) or in memory (``-mem``), ``ASHAScheduler`` with our grace period and reduction
         factor, ``WandbLoggerCallback`` offline, Tune's default progress output, and at the end
         ``ResultGrid.get_best_result`` evaluated on the test split (as ours does).

The workload is the real autoencoder on a tiny budget (``--subset 2048``, whose validation
split shrinks with it, and ``--epochs 2``: about a second of training per trial here), so the framework's own cost
dominates. Each trial times its own training (the time outside its reports, ``bench_train_s``),
so ideal = summed training time / 2 and overhead per trial = (wall - ideal) / N, for each side
from its own trials (ASHA stops some of ours early: both are per trial). Wall is the side's
whole run: Ray's start, the data, the fit, the results, Ray's shutdown.

Per size it also records: the driver's CPU seconds (this process: Tune's loop, the searcher, the
callbacks) and peak RSS; the experiment folder's size and file count; the last experiment
snapshot's time (Tune's ``save_to_dir``, the final one, holding every trial) and the mean of all
of them; ``results.finish`` (results.parquet, best.json: reading the experiment back and testing
the best checkpoint) and ``write_best`` alone; Optuna TPE ask+tell on a study of that size
(alone: the mean of its last tenth of trials); and the W&B actor's peak RSS (the ``WandbHub``
actor and its W&B service).

``--searcher random`` runs ours with random search: TPE's ask costs time linear in the study's
trials (about 10 ms at 1,000, 90 ms at 4,400), so a 10,000-trial run with it measures Optuna more
than the framework. Each process of the side's Ray is also accounted for its CPU seconds by role
(``ray_cpu_s``: Ray's helpers, the workers, the W&B actor and service), and the driver's RSS at
each snapshot against the trials Tune then held (its slope: ``driver_rss_mb_per_1000_trials``).

Output: a table, ``--json PATH``, and one last line for the largest size:
``scale: N trials, overhead per trial X s (plain Ray Y s), ratio R``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import ray
from memory import PeakSampler, raylet_pid
from ray import tune
from ray.tune.execution.tune_controller import TuneController
from sweep_overhead import _Timer, load, optuna_times

from sweeps import ae_sweep, runner
from sweeps.cluster import private_api, ray_cluster
from sweeps.folder import results
from sweeps.request import cli
from sweeps.request.search_space import trial_space
from trainables import autoencoder, reporting
from trainables.data import load_splits

os.environ.setdefault("RAY_ADDRESS", "local")  # a fresh local Ray, never one found on the machine
CONCURRENT = 2
MB = 1e6
TRAIN_S = "bench_train_s"


# --- the trial's own training time --------------------------------------------------------------


class TimedReporter:
    """Wraps a trainable's reporter: adds to each report the seconds the trial spent outside its
    reports since it started (model, data on the device, epochs), i.e. its training time."""

    def __init__(self, inner):
        self.inner, self.train_s, self.since = inner, 0.0, time.perf_counter()

    def restore(self):
        return self.inner.restore()

    def report(self, metrics, payload):
        self.train_s += time.perf_counter() - self.since
        self.inner.report({**metrics, TRAIN_S: self.train_s}, payload)
        self.since = time.perf_counter()


class ReportOnly:
    """Plain Ray Tune's reporter: ``tune.report`` of the metrics, no checkpoint."""

    def restore(self):
        return None

    def report(self, metrics, payload):
        tune.report(metrics)


@functools.wraps(autoencoder.train_autoencoder)  # the name: Tune's trial folders follow it
def timed_train_autoencoder(config, data=None, reporter=None):
    inner = reporter or reporting.TuneReporter()
    autoencoder.train_autoencoder(config, data=data, reporter=TimedReporter(inner))


def plain_trainable(config, data=None):
    timed_train_autoencoder(config, data=data, reporter=ReportOnly())


class CheckpointEveryEpoch:
    """A documented trainable's reporter: each epoch's metrics with a checkpoint of its state
    (``torch.save`` into a temporary folder, ``tune.report(..., checkpoint=...)``)."""

    def restore(self):
        return None

    def report(self, metrics, payload):
        import torch

        with tempfile.TemporaryDirectory() as d:
            torch.save(payload, os.path.join(d, "checkpoint.pt"))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))


def documented_trainable(config, data=None):
    timed_train_autoencoder(config, data=data, reporter=CheckpointEveryEpoch())


class TimedAutoencoder:
    """``trainables.autoencoder`` with the timed trainable (what ``runner.module_for`` hands out)."""

    def __getattr__(self, name):
        return getattr(autoencoder, name)

    TRAINABLE = staticmethod(timed_train_autoencoder)


# --- measuring one side ---------------------------------------------------------------------------


HELPERS = {  # a Ray process's role by its binary, its script, or its ray:: name
    "gcs_server": "gcs_server",
    "raylet": "raylet",
    "dashboard.py": "dashboard",
    "monitor.py": "autoscaler monitor",
    "log_monitor.py": "log_monitor",
    "ray::DashboardAgent": "dashboard agent",
    "ray::RuntimeEnvAgent": "runtime_env agent",
    "ray::WandbHub": "W&B actor",
    "wandb-core": "W&B service",
    "wandb-symon": "W&B service",
    "default_worker.py": "workers",  # a worker before Ray retitles it ray::...
    "setup_worker.py": "workers",  # one still setting up its runtime env: looked at again
}


def role(cmdline: list[str], parent_role: str | None) -> str:
    """What a process of this Ray is: a helper (HELPERS: by its binary, its Python script or its
    ``ray::`` name), a W&B service (the W&B actor's descendants), or a worker (trials, idle
    workers, Tune's own actors)."""
    if parent_role in ("W&B actor", "W&B service"):
        return "W&B service"
    if not cmdline or not cmdline[0]:
        return "other"
    if cmdline[0].startswith("ray::"):
        return HELPERS.get(cmdline[0].split()[0].split(".")[0], "workers")  # ray::Name.method
    program = next((a for a in cmdline if a.endswith(".py")), cmdline[0])
    return HELPERS.get(os.path.basename(program), os.path.basename(program))


class DriverSampler(PeakSampler):
    """This process's RSS, and the W&B actor's (``ray::WandbHub`` and its children: the W&B
    service), each sampled; and each of this Ray's processes' CPU seconds (the last seen of each
    process: helpers live the whole run, so theirs is complete; a worker that exits between
    samples loses its last half second), summed by role (``cpu_by_role``)."""

    def __init__(self, interval: float):
        super().__init__(interval)
        self.me, self.raylet = psutil.Process(), raylet_pid()
        node = ray._private.worker._global_node
        self.heads = [i.process.pid for infos in node.all_processes.values() for i in infos]
        self.cpu: dict[int, tuple[str, float]] = {}
        self.roles: dict[int, str] = {}  # the last known: a title being rewritten reads empty

    def processes(self):
        """(process, role) for every process of this Ray: the node's own (GCS, raylet,
        dashboard, monitors) and the raylet's descendants."""
        roles = self.roles
        out = []
        for pid in self.heads:
            try:
                proc = psutil.Process(pid)
                tree = [proc, *proc.children(recursive=True)]
            except psutil.Error:
                continue
            for p in tree:
                try:
                    if roles.get(p.pid) in (None, "workers", "other"):  # a helper stays one
                        seen = role(p.cmdline(), roles.get(p.ppid()))
                        if seen != "other" or p.pid not in roles:
                            roles[p.pid] = seen
                    out.append((p, roles[p.pid]))
                except psutil.Error:
                    pass
        return out

    def probe(self) -> dict[str, float]:
        wandb = 0.0
        for p, name in self.processes():
            try:
                t = p.cpu_times()
                self.cpu[p.pid] = (name, t.user + t.system)
                if name in ("W&B actor", "W&B service"):
                    wandb += p.memory_info().rss
            except psutil.Error:
                pass
        return {"driver_rss": self.me.memory_info().rss, "wandb_actor_rss": wandb}

    def cpu_by_role(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, seconds in self.cpu.values():
            out[name] = round(out.get(name, 0.0) + seconds, 2)
        return dict(sorted(out.items()))


def rss_slope(growth: list[tuple[int, float]]) -> float | None:
    """The driver's RSS growth per 1,000 trials: the least-squares slope of its RSS at each
    snapshot against the trials Tune then held, over the second half of the trial count (the
    first half holds the imports' and the first trials' one-off growth); None with too few."""
    n = max((t for t, _ in growth), default=0)
    pts = [(t, m) for t, m in growth if t >= n / 2]
    if len(pts) < 3 or len({t for t, _ in pts}) < 2:
        return None
    mt = sum(t for t, _ in pts) / len(pts)
    mm = sum(m for _, m in pts) / len(pts)
    cov = sum((t - mt) * (m - mm) for t, m in pts)
    var = sum((t - mt) ** 2 for t, _ in pts)
    return round(1000 * cov / var, 1)


def folder_stats(path: Path) -> tuple[int, int]:
    """Bytes and count of the files under ``path``, symbolic links left out: W&B gives every
    offline run a link to its one service's log, which counted once per run made a 1,000-trial
    folder read 595 MB when it held 58 MB."""
    files = [p for p in path.rglob("*") if p.is_file() and not p.is_symlink()]
    return sum(p.stat().st_size for p in files), len(files)


def measured(side, args, n: int, storage: Path) -> dict:
    """Run one side on a fresh local Ray; its wall, driver CPU and peaks, snapshot times, and its
    trials' training times (what ``side`` returns)."""
    snapshots, growth = [], []  # each snapshot's seconds; (trials, driver RSS MB) at each
    save = TuneController.save_to_dir
    me = psutil.Process()

    def timed_save(self):
        t0 = time.perf_counter()
        try:
            return save(self)
        finally:
            snapshots.append(time.perf_counter() - t0)
            growth.append((len(self._trials), round(me.memory_info().rss / MB, 1)))

    TuneController.save_to_dir = timed_save
    cpu0, t0 = os.times(), time.perf_counter()
    try:
        private_api.ray_on_loopback_only()  # as a sweep's own local Ray, for both sides
        ray.init(num_cpus=args.num_cpus, include_dashboard=False, logging_level="WARNING")
        sampler = DriverSampler(args.interval)
        sampler.start()
        try:
            out = side(args, n, storage)
        finally:
            peak = sampler.finish()
            cpu = sampler.cpu_by_role()
            ray.shutdown()
    finally:
        TuneController.save_to_dir = save
    wall, cpu1 = time.perf_counter() - t0, os.times()
    train = out.pop("train_s")
    ideal = sum(train) / CONCURRENT
    size, files = folder_stats(out.pop("folder"))
    return {
        "trials": len(train),
        "wall_s": round(wall, 2),
        "ideal_s": round(ideal, 2),
        "train_s_per_trial": round(sum(train) / max(len(train), 1), 3),
        "overhead_per_trial_s": round((wall - ideal) / n, 3),
        "driver_cpu_s": round(cpu1.user + cpu1.system - cpu0.user - cpu0.system, 2),
        "driver_peak_rss_mb": round(peak.get("driver_rss", 0) / MB, 1),
        "folder_mb": round(size / MB, 2),
        "folder_files": files,
        "snapshots": len(snapshots),
        "last_snapshot_s": round(snapshots[-1], 4) if snapshots else None,
        "mean_snapshot_s": round(sum(snapshots) / len(snapshots), 4) if snapshots else None,
        "driver_rss_mb_per_1000_trials": rss_slope(growth),
        "rss_at_snapshots": growth,
        "ray_cpu_s": cpu,
        "helpers_cpu_share": round(
            sum(v for k, v in cpu.items() if k not in ("workers", "W&B actor", "W&B service"))
            / wall,
            3,
        ),
        **out,
        **(
            {"wandb_actor_peak_rss_mb": round(peak.get("wandb_actor_rss", 0) / MB, 1)}
            if getattr(side, "func", side) is ours
            else {}
        ),
    }


def sweep_argv(args, n: int, storage: Path, name: str) -> list[str]:
    return [
        f"--num-samples={n}",
        f"--max-epochs={args.epochs}",
        f"--max-concurrent={CONCURRENT}",
        "--cpus-per-trial=1",
        f"--subset={args.subset}",
        f"--storage-path={storage}",
        f"--name={name}",
        "--wandb-mode=offline",
        f"--seed={args.seed}",
        f"--searcher={args.searcher}",
    ]


def ours(args, n: int, storage: Path, sqlite: bool = False, wandb: bool = True) -> dict:
    name = f"ours_{n}"
    study = [f"--study-storage=sqlite:///{storage / name / 'optuna.db'}"] if sqlite else []
    study += [] if wandb else ["--wandb-mode=disabled"]  # the last --wandb-mode given wins
    finish, write_best = _Timer(results.finish), _Timer(results.write_best)
    module_for = runner.module_for
    results.finish, results.write_best = finish, write_best
    runner.module_for = lambda kind: (
        TimedAutoencoder() if kind == "autoencoder" else module_for(kind)
    )
    try:
        summary = ae_sweep.main(sweep_argv(args, n, storage, name) + study)
    finally:
        results.finish, results.write_best, runner.module_for = finish.fn, write_best.fn, module_for
    if not summary["complete"] or summary["trials"] != n:
        raise SystemExit(f"scale: the {n}-trial sweep did not finish: {summary}")
    # each trial's training time, from what the sweep wrote (reading the folder again would
    # add to ours' wall a third read-back of every trial's results that the sweep does not do)
    table = pq.read_table(storage / name / "results.parquet", columns=["trial_id", TRAIN_S])
    train = table.to_pandas().groupby("trial_id")[TRAIN_S].max().astype(float).tolist()
    return {
        "train_s": train,
        "folder": storage / name,
        "trial_epochs": summary["trial_epochs"],
        "stopped_early": summary["stopped_early"],
        "finish_s": round(finish.seconds, 3),
        "write_best_s": round(write_best.seconds, 3),
    }


def peer_inputs(args, n: int, storage: Path, name: str):
    """What a side that is not our sweep runs on, as our sweep would: its settings parsed from
    the same flags, the same trial space and the same data."""
    parser = cli.build_parser(ae_sweep.SWEEP)
    parser.add_argument("--latent-dim", type=int)
    settings = cli.parse_settings(ae_sweep.SWEEP, parser, sweep_argv(args, n, storage, name))
    space = trial_space(ae_sweep.SWEEP, settings, autoencoder, dict(ae_sweep.SPACES["report"]))
    splits = load_splits(settings.data_dir, settings.val_size, settings.data_seed, settings.subset)
    return settings, space, splits


def plain(args, n: int, storage: Path) -> dict:
    name = f"plain_{n}"
    _, space, splits = peer_inputs(args, n, storage, name)
    tuner = tune.Tuner(
        tune.with_resources(
            tune.with_parameters(plain_trainable, data=splits.without_test()), {"cpu": 1}
        ),
        param_space=space,
        tune_config=tune.TuneConfig(
            num_samples=n, max_concurrent_trials=CONCURRENT, reuse_actors=True
        ),
        run_config=tune.RunConfig(name=name, storage_path=str(storage), verbose=0),
    )
    grid = tuner.fit()
    errors = [r.error for r in grid if r.error]
    if errors:
        raise SystemExit(f"scale: plain Ray Tune's trials failed: {errors[0]}")
    train = [float(r.metrics[TRAIN_S]) for r in grid]
    return {"train_s": train, "folder": storage / name, "trial_epochs": n * args.epochs}


def documented(args, n: int, storage: Path, in_memory: bool = False) -> dict:
    """Ray Tune as documented: OptunaSearch + ASHAScheduler + WandbLoggerCallback + a checkpoint
    every epoch; the study in SQLite (or in memory)."""
    import optuna
    from ray.air.integrations.wandb import WandbLoggerCallback
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    name = f"documented{'_mem' if in_memory else ''}_{n}"
    settings, space, splits = peer_inputs(args, n, storage, name)
    (storage / name).mkdir(parents=True, exist_ok=True)
    study = (
        None if in_memory else optuna.storages.RDBStorage(f"sqlite:///{storage}/{name}/optuna.db")
    )
    searcher = OptunaSearch(
        sampler=optuna.samplers.TPESampler(seed=args.seed), study_name=name, storage=study
    )
    tuner = tune.Tuner(
        tune.with_resources(
            tune.with_parameters(documented_trainable, data=splits.without_test()), {"cpu": 1}
        ),
        param_space=space,
        tune_config=tune.TuneConfig(
            metric="val_mse",
            mode="min",
            search_alg=searcher,
            scheduler=ASHAScheduler(
                max_t=args.epochs,
                grace_period=settings.grace_period,
                reduction_factor=settings.reduction_factor,
            ),
            num_samples=n,
            max_concurrent_trials=CONCURRENT,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(storage),
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=1, checkpoint_score_attribute="val_mse", checkpoint_score_order="min"
            ),
            callbacks=[WandbLoggerCallback(project="latentsweep-bench", mode="offline")],
        ),
    )
    # Ray's callback asks for an API key at setup unless $WANDB_MODE says offline (its
    # mode="offline" is not enough): a user without a key sets it, so this side does too
    with ray_cluster.environ(WANDB_MODE="offline"):
        grid = tuner.fit()
    errors = [r.error for r in grid if r.error]
    if errors:
        raise SystemExit(f"scale: the documented Ray Tune sweep's trials failed: {errors[0]}")
    best = grid.get_best_result()
    with best.checkpoint.as_directory() as d:
        autoencoder.evaluate_checkpoint(d, data=splits)
    train = [float(r.metrics[TRAIN_S]) for r in grid]
    epochs = sum(int(r.metrics["training_iteration"]) for r in grid)
    study_file = storage / name / "optuna.db"
    return {
        "train_s": train,
        "folder": storage / name,
        "trial_epochs": epochs,
        "study_mb": round(study_file.stat().st_size / MB, 3) if study_file.exists() else None,
    }


SIDES = {
    "ours": ours,
    "ours-sqlite": functools.partial(ours, sqlite=True),
    "ours-no-wandb": functools.partial(ours, wandb=False),
    "plain": plain,
    "documented": documented,
    "documented-mem": functools.partial(documented, in_memory=True),
}
DEFAULT_SIDES = ["ours", "plain", "documented", "documented-mem"]


# --- the table ------------------------------------------------------------------------------------

COLUMNS = [  # (key, header, of the sides)
    ("wall_s", "wall s", "both"),
    ("ideal_s", "ideal s", "both"),
    ("train_s_per_trial", "train s/trial", "both"),
    ("overhead_per_trial_s", "overhead s/trial", "both"),
    ("driver_cpu_s", "driver CPU s", "both"),
    ("driver_peak_rss_mb", "driver RSS MB", "both"),
    ("folder_mb", "folder MB", "both"),
    ("folder_files", "files", "both"),
    ("last_snapshot_s", "last snapshot s", "both"),
    ("finish_s", "results+best s", "ours"),
    ("write_best_s", "best.json s", "ours"),
    ("optuna_ask_tell_ms", "Optuna ms/trial", "ours"),
    ("wandb_actor_peak_rss_mb", "W&B actor MB", "ours"),
    ("helpers_cpu_share", "Ray helpers CPU/wall", "both"),
    ("driver_rss_mb_per_1000_trials", "driver MB/1k trials", "both"),
]


def table(sizes: list[dict]) -> str:
    header = ["trials", "side", *(h for _, h, _ in COLUMNS)]
    rows = []
    for size in sizes:
        for side in size["order"]:
            r = size[side]
            cells = [str(size["trials"]), side]
            cells += ["" if r.get(k) is None else f"{r[k]:g}" for k, _, _ in COLUMNS]
            rows.append(cells)
    widths = [max(len(c) for c in col) for col in zip(header, *rows, strict=True)]
    return "\n".join(
        "  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) for line in [header, *rows]
    )


def sides_arg(text: str) -> list[str]:
    sides = [s.strip() for s in text.split(",") if s.strip()]
    if not sides or sides[0] != "ours" or not set(sides) <= set(SIDES):
        raise argparse.ArgumentTypeError(
            f"{text!r}: ours first, then none or more of {', '.join(list(SIDES)[1:])}; pass e.g. "
            "--sides ours,plain,documented"
        )
    return sides


def sizes_arg(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of trial counts; pass e.g. --sizes 10,100,1000"
        )
    return sizes


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=sizes_arg, default=[10, 100, 1000], help="trial counts")
    p.add_argument("--epochs", type=int, default=2, help="epochs of a full trial (%(default)s)")
    p.add_argument("--subset", type=int, default=2048, help="training images (%(default)s)")
    p.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray (%(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the order and of TPE")
    p.add_argument("--interval", type=float, default=0.5, help="seconds between memory samples")
    p.add_argument("--keep", action="store_true", help="keep the experiment folders (printed)")
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument(
        "--searcher",
        choices=["tpe", "random"],
        default="tpe",
        help="ours' --searcher (%(default)s); random leaves TPE's own cost, which grows with the "
        "study, out of a large run (and skips timing TPE alone)",
    )
    p.add_argument(
        "--sides",
        type=sides_arg,
        default=DEFAULT_SIDES,
        help=f"the sides to run, ours first (default {','.join(DEFAULT_SIDES)}; also "
        "ours-sqlite: ours with the study in SQLite, as before the journal; ours-no-wandb: ours "
        "with --wandb-mode disabled)",
    )
    args = p.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench_scale-"))
    order = random.Random(args.seed)
    print(
        f"scale: sizes {args.sizes}, {args.epochs} epochs on {args.subset} images, {CONCURRENT} trials of 1 CPU at a time, {args.num_cpus} CPUs; "
        f"load {load()}",
        flush=True,
    )
    out = {"settings": vars(args), "sizes": []}
    try:
        for n in args.sizes:
            entry = {"trials": n, "load_before": load()}
            entry["order"] = order.sample(args.sides, len(args.sides))
            for side in entry["order"]:
                entry[side] = measured(SIDES[side], args, n, root / f"{side}_{n}_runs")
                print(f"  {n} trials: {side} done in {entry[side]['wall_s']} s", flush=True)
            if args.searcher != "random":  # TPE alone on a study of that size
                (root / f"optuna_{n}").mkdir()
                times = optuna_times(n, args.epochs, root / f"optuna_{n}")
                last = times[-max(1, n // 10) :]
                entry["ours"]["optuna_ask_tell_ms"] = round(1000 * sum(last) / len(last), 2)
            entry["load_after"] = load()
            for other in args.sides[1:]:  # ours / each other side's overhead per trial
                key = "ratio" if other == "plain" else f"ratio_{other}"
                entry[key] = round(
                    entry["ours"]["overhead_per_trial_s"] / entry[other]["overhead_per_trial_s"], 2
                )
            out["sizes"].append(entry)
    finally:
        if args.keep:
            print(f"scale: experiment folders kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(table(out["sizes"]))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    big = max(out["sizes"], key=lambda e: e["trials"])
    line = f"scale: {big['trials']} trials, overhead per trial {big['ours']['overhead_per_trial_s']:.3f} s"
    for other in args.sides[1:]:
        key = "ratio" if other == "plain" else f"ratio_{other}"
        line += f"; {other} {big[other]['overhead_per_trial_s']:.3f} s, ratio {big[key]:.2f}"
    print(line, flush=True)
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
