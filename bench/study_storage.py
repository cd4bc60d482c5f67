"""What the Optuna study costs the sweep's driver per trial: SQLite with its rollback journal (what
a sweep used until issue #23; every commit an fsync), the same in write-ahead-log mode with synchronous=NORMAL
(tried for #12 and not adopted: BENCHMARKS.md section 6 says why), Optuna's journal storage on
a file (``JournalStorage`` + ``JournalFileBackend``: one appended line per operation, Optuna's
answer for a single writer and for NFS; what a sweep uses since issue #23), and no database at all, in one run, in a
random order per round.

    python bench/study_storage.py                      # 1,000 trials, 3 rounds: ~3 min on 2 CPUs
    python bench/study_storage.py --trials 100 --rounds 1

Each arm is the sweep's own searcher, ``TrialStateOptunaSearch`` on a ``SweepStudyStorage``,
driven as Ray Tune drives it for a trial of ``--epochs`` epochs (the autoencoder's report
space): ``suggest`` (TPE ask and the ``trial_id`` user attribute), one ``on_trial_result`` per
epoch (an intermediate value each) and ``on_trial_complete`` (the tell), a third of the trials
COMPLETE and the rest PRUNED after their first epoch, as ASHA leaves them. The WAL arm sets the
two pragmas on every connection, nothing else; the memory arm gives the searcher no database
(Optuna's in-memory storage): what TPE and the searcher cost alone. Reported per arm and round:
milliseconds per trial over all trials and over the last tenth (what a sweep of that size pays
per trial), and SQLite commits per trial.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import optuna
import sqlalchemy
from ray.air.constants import TRAINING_ITERATION

from sweeps import ae_sweep
from sweeps.folder import study_storage
from sweeps.search.searcher import TrialStateOptunaSearch

ARMS = ("rollback", "wal", "journal", "memory")


def _wal(dbapi_connection, _record) -> None:
    dbapi_connection.execute("PRAGMA journal_mode=WAL")
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def one_arm(trials: int, epochs: int, arm: str, folder: Path) -> dict:
    storage, commits = None, [0]  # memory: Optuna's in-memory storage, no database
    if arm == "journal":
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        storage = JournalStorage(JournalFileBackend(str(folder / "optuna.journal")))
    elif arm != "memory":
        storage = study_storage.SweepStudyStorage(f"sqlite:///{folder / 'optuna.db'}")
        if arm == "wal":
            sqlalchemy.event.listen(storage.engine, "connect", _wal)
            storage.engine.dispose()  # the connections opened before get the pragmas too
        sqlalchemy.event.listen(
            storage.engine, "commit", lambda conn: commits.__setitem__(0, commits[0] + 1)
        )
    searcher = TrialStateOptunaSearch(
        max_epochs=epochs, study_name="bench", storage=storage, seed=0
    )
    searcher.set_search_properties("val_mse", "min", dict(ae_sweep.SPACES["report"]))
    times = []
    for i in range(trials):
        trial_id = f"t{i:05d}"
        t0 = time.perf_counter()
        searcher.suggest(trial_id)
        last = epochs if i % 3 == 0 else 1  # a third run to the end, the rest are pruned
        result = {}
        for epoch in range(1, last + 1):
            result = {TRAINING_ITERATION: epoch, "val_mse": 0.02 + (i % 7) / 1000 / epoch}
            result |= {"iterations_since_restore": epoch, "time_total_s": float(epoch)}
            searcher.on_trial_result(trial_id, result)
        searcher.on_trial_complete(trial_id, result)
        times.append(time.perf_counter() - t0)
    mode = "journal file" if arm == "journal" else None
    if storage is not None and arm != "journal":
        with sqlalchemy.create_engine(storage.url).connect() as conn:
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
    tail = times[-max(1, trials // 10) :]
    return {
        "journal_mode": mode,
        "ms_per_trial": round(1000 * statistics.mean(times), 2),
        "ms_per_trial_last_tenth": round(1000 * statistics.mean(tail), 2),
        "commits_per_trial": round(commits[0] / trials, 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--trials", type=int, default=1000, help="trials per arm (%(default)s)")
    p.add_argument("--epochs", type=int, default=2, help="epochs of a full trial (%(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="rounds, each in a random order")
    p.add_argument("--seed", type=int, default=0, help="seed of the orders (%(default)s)")
    p.add_argument("--json", default=None, help="also write the figures here")
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = random.Random(args.seed)
    out = {
        "trials": args.trials,
        "epochs": args.epochs,
        "load_before": os.getloadavg(),
        "rounds": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = list(ARMS)
            rng.shuffle(order)
            row = {"order": order}
            for arm in order:
                folder = Path(tmp) / f"{r}-{arm}"
                folder.mkdir()
                row[arm] = one_arm(args.trials, args.epochs, arm, folder)
                print(f"round {r + 1} {arm:8s} {json.dumps(row[arm])}", flush=True)
            for arm in ("wal", "journal"):
                row[f"{arm}_ratio_last_tenth"] = round(
                    row[arm]["ms_per_trial_last_tenth"]
                    / row["rollback"]["ms_per_trial_last_tenth"],
                    3,
                )
            out["rounds"].append(row)
    out["load_after"] = os.getloadavg()
    for arm in ARMS:
        last = [r[arm]["ms_per_trial_last_tenth"] for r in out["rounds"]]
        print(
            f"{arm:8s} ms/trial (last tenth): median {statistics.median(last)} [{min(last)}, {max(last)}]"
        )
    for arm in ("wal", "journal"):
        ratios = [r[f"{arm}_ratio_last_tenth"] for r in out["rounds"]]
        print(
            f"study_storage: {args.trials} trials, {arm}/rollback per trial (last tenth) median "
            f"{statistics.median(ratios)} [{min(ratios)}, {max(ratios)}]; load "
            f"{out['load_before']} -> {out['load_after']}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
