"""Tiny FashionMNIST-shaped splits of seeded random pixels, for tests that need a trainable to run
but not to learn (a real-data test uses ``conftest.small_splits``), and a large sweep folder
(thousands of trials) for the report, written without training (``large_sweep_folder``)."""

import json
import sqlite3
from pathlib import Path

import numpy as np
import torch

from trainables.data import Splits


def synthetic_splits(train: int = 40, val: int = 20, test: int = 20, seed: int = 0) -> Splits:
    """Seeded uint8 images (N, 28, 28) with labels cycling 0..9, split three ways."""
    gen = torch.Generator().manual_seed(seed)

    def images(n):
        x = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=gen)
        return x, torch.arange(n) % 10

    (train_x, train_y), (val_x, val_y), (test_x, test_y) = images(train), images(val), images(test)
    return Splits(train_x, train_y, val_x, val_y, test_x, test_y, source="synthetic")


# ---------------------------------------------------------------------------------------------
# A large sweep folder, in seconds


# The "wide" autoencoder space (sweeps/ae_sweep.py): what the study's trials searched.
WIDE_CHOICES = {
    "optimizer": ["adam", "adamw", "sgd"],
    "batch_size": [64, 128, 256, 512],
    "lr_schedule": ["constant", "cosine"],
}
WIDE_LOG = {"lr": (1e-4, 1e-2), "weight_decay": (1e-5, 1e-3)}


def _asha_last_epochs(curves: np.ndarray, rungs: list[int], keep: float) -> np.ndarray:
    """The last epoch of each trial under synchronous-like ASHA: at each rung below the last,
    only the best ``keep`` fraction (lowest value) of the trials that reached it go on."""
    last = np.full(len(curves), rungs[-1])
    alive = np.ones(len(curves), dtype=bool)
    for rung in rungs[:-1]:
        at_rung = curves[:, rung - 1]
        cut = np.quantile(at_rung[alive], keep)
        stop = alive & (at_rung > cut)
        last[stop] = rung
        alive &= ~stop
    return last


def large_sweep_folder(
    root: Path,
    trials: int = 10_000,
    max_epochs: int = 10,
    grace_period: int = 1,
    reduction_factor: int = 3,
    failed: float = 0.005,
    seed: int = 0,
) -> Path:
    """An autoencoder sweep folder of ``trials`` ASHA trials, as the runner writes one, without
    training: ``sweep.json``, ``best.json`` (no best checkpoint), ``results.parquet`` (one row
    per trial per epoch) and ``optuna.db`` (a SQLite study, as sweeps kept it before the journal
    storage, which the report still reads: COMPLETE, PRUNED and FAIL trials with their
    parameters, per-epoch intermediate values and ``trial_id`` user attribute). Each trial's
    ``val_mse`` curve comes from a seeded function of its "wide" space parameters; with the
    defaults about 2/3 of the trials stop at epoch 1, 2/9 at epoch 3, 2/27 at epoch 9.

    10,000 trials take a few seconds: the study is written by SQL inserts into the schema
    ``optuna.create_study`` makes (Optuna's ``add_trials`` commits once per trial: 5.7 ms a
    trial of one parameter on 2 cores, over a minute for 10,000), and read back through Optuna
    by the report."""
    import optuna
    import pandas as pd

    from sweeps.folder.layout import BEST_FILE, RESULTS_FILE, SWEEP_FILE, SWEEP_FORMAT
    from sweeps.folder.layout import SQLITE_STUDY_FILE as STUDY_FILE  # inserted by SQL

    root = Path(root)
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    n = trials
    params = {name: rng.integers(len(choices), size=n) for name, choices in WIDE_CHOICES.items()}
    for name, (low, high) in WIDE_LOG.items():
        params[name] = 10 ** rng.uniform(np.log10(low), np.log10(high), size=n)
    # The final val_mse: best near lr 2e-3 with Adam(W) and small batches, plus trial noise.
    final = (
        0.012
        + 0.006 * (np.log10(params["lr"]) - np.log10(2e-3)) ** 2
        + 0.004 * (params["optimizer"] == 2)
        + 0.0015 * params["batch_size"]
        + 0.002 * (np.log10(params["weight_decay"]) + 5) / 2
        + 0.001 * (params["lr_schedule"] == 0)
        + rng.normal(0, 0.0015, size=n).clip(-0.004, 0.004)
    )
    epochs = np.arange(1, max_epochs + 1)
    speed = rng.uniform(0.4, 1.2, size=n)
    curves = final[:, None] + 0.04 * np.exp(-speed[:, None] * (epochs[None, :] - 1) / 2)
    curves += rng.normal(0, 0.0005, size=curves.shape)
    rungs, k = [], 0
    while (epoch := int(round(grace_period * reduction_factor**k))) < max_epochs:
        rungs.append(epoch)
        k += 1
    last = _asha_last_epochs(curves, [*rungs, max_epochs], 1 / reduction_factor)
    fails = rng.random(n) < failed
    last[fails] = rng.integers(1, 3, size=int(fails.sum()))
    stopped = (last < max_epochs) & ~fails
    trial_ids = [f"{i:05d}" for i in range(n)]

    # results.parquet: one row per trial per epoch it reached
    rows = np.repeat(np.arange(n), last)
    epoch_of_row = np.concatenate([np.arange(1, e + 1) for e in last])
    val = curves[rows, epoch_of_row - 1]
    results = pd.DataFrame(
        {
            "trial_id": np.asarray(trial_ids, dtype=object)[rows],
            "status": np.where(fails[rows], "ERROR", "TERMINATED"),
            "stopped_early": stopped[rows],
            "epoch": epoch_of_row,
            "training_iteration": epoch_of_row,
            "error": np.where(fails[rows], "RuntimeError: synthetic failure", None),
            "cloned_from": pd.array([None] * len(rows), dtype="string"),
            "cloned_epoch": pd.array([None] * len(rows), dtype="Int64"),
            "train_mse": val * 0.95,
            "val_mse": val,
            **{
                f"config/{name}": np.asarray(choices, dtype=object)[params[name][rows]]
                for name, choices in WIDE_CHOICES.items()
            },
            **{f"config/{name}": params[name][rows] for name in WIDE_LOG},
            "config/latent_dim": 16,
        }
    )
    results["config/batch_size"] = results["config/batch_size"].astype(int)
    results.to_parquet(root / RESULTS_FILE)

    # optuna.db: the schema and the study from Optuna, the trials by SQL
    study_name = root.name
    url = f"sqlite:///{root / STUDY_FILE}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=url, study_name=study_name, direction="minimize")
    study_id = study._study_id
    del study
    dist = {
        name: optuna.distributions.distribution_to_json(
            optuna.distributions.CategoricalDistribution(choices)
        )
        for name, choices in WIDE_CHOICES.items()
    }
    for name, (low, high) in WIDE_LOG.items():
        dist[name] = optuna.distributions.distribution_to_json(
            optuna.distributions.FloatDistribution(low, high, log=True)
        )
    state = np.where(fails, "FAIL", np.where(stopped, "PRUNED", "COMPLETE"))
    start = "2026-12-05 00:00:00.000000"
    with sqlite3.connect(root / STUDY_FILE) as db:
        (offset,) = db.execute("SELECT COALESCE(MAX(trial_id), 0) FROM trials").fetchone()
        ids = offset + 1 + np.arange(n)
        db.executemany(
            "INSERT INTO trials (trial_id, number, study_id, state, datetime_start, "
            "datetime_complete) VALUES (?, ?, ?, ?, ?, ?)",
            [(int(ids[i]), i, study_id, str(state[i]), start, start) for i in range(n)],
        )
        db.executemany(
            "INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json) "
            "VALUES (?, ?, ?, ?)",
            [
                (int(ids[i]), name, float(params[name][i]), dist[name])
                for name in dist
                for i in range(n)
            ],
        )
        complete = np.flatnonzero(state == "COMPLETE")
        db.executemany(
            "INSERT INTO trial_values (trial_id, objective, value, value_type) "
            "VALUES (?, 0, ?, 'FINITE')",
            [(int(ids[i]), float(curves[i, max_epochs - 1])) for i in complete],
        )
        db.executemany(
            "INSERT INTO trial_intermediate_values (trial_id, step, intermediate_value, "
            "intermediate_value_type) VALUES (?, ?, ?, 'FINITE')",
            zip(ids[rows].tolist(), epoch_of_row.tolist(), val.tolist(), strict=True),
        )
        db.executemany(
            "INSERT INTO trial_user_attributes (trial_id, key, value_json) "
            "VALUES (?, 'trial_id', ?)",
            [(int(ids[i]), json.dumps(trial_ids[i])) for i in range(n)],
        )

    best = int(complete[np.argmin(curves[complete, max_epochs - 1])])
    (root / SWEEP_FILE).write_text(
        json.dumps(
            {
                "format": SWEEP_FORMAT,
                "model": "autoencoder",
                "script": "sweeps/ae_sweep.py",
                "experiment": study_name,
                "metric": "val_mse",
                "mode": "min",
                "space": "wide",
                "search_space": {
                    **{k: f"choice({v})" for k, v in WIDE_CHOICES.items()},
                    **{k: f"loguniform({lo}, {hi})" for k, (lo, hi) in WIDE_LOG.items()},
                },
                "fixed_config": {"latent_dim": 16},
                "num_samples": n,
                "max_epochs": max_epochs,
                "scheduler": {
                    "name": "ASHA, revising",
                    "time_attr": "training_iteration",
                    "grace_period": grace_period,
                    "reduction_factor": reduction_factor,
                },
                "study_storage": url,
                "study_name": study_name,
                "study_file": STUDY_FILE,
            },
            indent=2,
        )
    )
    config = {k: WIDE_CHOICES[k][params[k][best]] for k in WIDE_CHOICES}
    config |= {k: float(params[k][best]) for k in WIDE_LOG} | {"latent_dim": 16}
    (root / BEST_FILE).write_text(
        json.dumps(
            {
                "model": "autoencoder",
                "experiment": study_name,
                "metric": "val_mse",
                "mode": "min",
                "trial_id": trial_ids[best],
                "stopped_early": False,
                "config": config,
                "val": {
                    "val_mse": float(curves[best, -1]),
                    "training_iteration": max_epochs,
                },
                "test": {},
                "study_storage": url,
                "study_name": study_name,
            },
            indent=2,
        )
    )
    return root


if __name__ == "__main__":  # python tests/synthetic.py DIR [TRIALS]: a large sweep folder
    import sys
    import time

    began = time.perf_counter()
    folder = large_sweep_folder(Path(sys.argv[1]), int(sys.argv[2]) if sys.argv[2:] else 10_000)
    print(f"{folder}: {time.perf_counter() - began:.1f} s")
