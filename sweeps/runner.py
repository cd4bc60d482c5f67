"""What the sweep scripts share: the command line, Ray, Optuna (TPE + an RDB study), ASHA, W&B,
and the files a sweep leaves in its experiment folder. A script (``sweeps/<model>_sweep.py``) holds
only its search space, metric, mode and defaults, and calls ``parse_args`` and ``run``.

The experiment folder, ``<storage-path>/<name>`` (a local folder, or s3:// / gs://):

    sweep.json          the sweep's resolved arguments, written first (marks a sweep folder)
    optuna.db           the Optuna study (SQLite), unless --study-storage names another database
    tuner.pkl, experiment_state-*.json, searcher-state-*.pkl, ...   Ray Tune's state (--resume)
    <trainable>_<trial_id>/   one folder per trial: result.json, progress.csv, params.json,
                        checkpoint_NNNNNN/checkpoint.pt (the best and the latest are kept)
    wandb/offline-run-*-<trial_id>/   W&B runs when offline (local storage only)
    results.parquet     one row per trial per epoch, written at the end
    best.json           the best trial: config, validation and test metrics, checkpoint
    best/checkpoint.pt  a copy of the best trial's last checkpoint

Only ``finish`` reads the test split, once, for the best checkpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fnmatch
import functools
import hashlib
import json
import logging
import math
import netrc
import os
import pickletools
import re
import socket
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import optuna
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import ray
import sqlalchemy
from optuna.trial import TrialState
from ray import tune
from ray.air.constants import TRAINING_ITERATION
from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch
from ray.tune.search.sample import Categorical, Domain, Float, Integer, LogUniform

from sweeps.checkpoint_gc import CheckpointPruner
from sweeps.wandb_hub import SweepWandbCallback, wandb_root
from trainables import core, module_for
from trainables.data import DataError, cache_dir, load_splits

logger = logging.getLogger(__name__)

SWEEP_FILE = "sweep.json"
BEST_FILE = "best.json"
RESULTS_FILE = "results.parquet"
BEST_CHECKPOINT = "best/checkpoint.pt"
STUDY_FILE = "optuna.db"
WANDB_MODES = ("online", "offline", "disabled")

# What --smoke-test changes (flags given explicitly still win): a quick look, not a result.
SMOKE = dict(
    subset=2000,
    num_samples=4,
    max_epochs=2,
    grace_period=1,
    reduction_factor=2,
    cpus_per_trial=1,
    max_concurrent=2,
)

# Flags that may be given with --resume; everything else comes from the sweep's sweep.json.
RESUME_FLAGS = ("resume", "address", "num_cpus", "wandb_mode")

# Keys Ray Tune adds to every result: not metrics of the model.
TUNE_KEYS = {
    "timestamp",
    "checkpoint_dir_name",
    "done",
    "training_iteration",
    "trial_id",
    "date",
    "time_this_iter_s",
    "pid",
    "hostname",
    "node_ip",
    "time_since_restore",
    "iterations_since_restore",
    "experiment_tag",
    "should_checkpoint",
    "config",
}


class SweepError(Exception):
    """A problem the user can fix; printed as one line ``error: <problem>; <fix>``, exit code 2."""

    def __init__(self, problem: str, fix: str):
        super().__init__(f"{problem}; {fix}")


@contextlib.contextmanager
def cli_errors() -> Iterator[None]:
    """Turn the errors a user can fix into one line on stderr and exit code 2 (no stack trace)."""
    try:
        yield
    except (SweepError, core.ConfigError, core.CheckpointError, DataError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)


# ---------------------------------------------------------------------------------------------
# What a sweep script declares


@dataclass(frozen=True)
class Sweep:
    """One model's sweep: everything that differs between the three scripts."""

    kind: str  # trainables module: autoencoder | classifier | gan
    name: str  # script name and default experiment name, e.g. ae_sweep
    metric: str  # reported each epoch; ASHA and Optuna optimise it
    mode: str  # min | max
    spaces: dict[str, dict[str, Any]]  # named search spaces; the first is the default
    columns: tuple[str, ...]  # metric columns of the progress table
    # num_samples, max_epochs, grace_period, reduction_factor, max_concurrent, gpus_per_trial
    defaults: dict[str, Any]
    description: str = ""  # the script's docstring (--help)


# ---------------------------------------------------------------------------------------------
# Files: local folders and object storage through one helper


def is_remote(path: str) -> bool:
    return "://" in str(path) and not str(path).startswith("file://")


class Folder:
    """A folder on the local disk or in object storage (s3://, gs://). Every file a sweep writes
    goes through here, via ``pyarrow.fs``, so remote experiment folders work like local ones."""

    def __init__(self, uri: str | os.PathLike):
        uri = str(uri)
        if is_remote(uri):
            self.fs, self.path = pafs.FileSystem.from_uri(uri)
            self.uri = uri
        else:
            local = Path(uri.removeprefix("file://")).expanduser().resolve()
            self.fs, self.path, self.uri = (
                pafs.LocalFileSystem(),
                local.as_posix(),
                local.as_posix(),
            )

    def __repr__(self) -> str:
        return f"Folder({self.uri!r})"

    @property
    def local(self) -> Path | None:
        """The folder as a local path, or None when it lives in object storage."""
        return Path(self.path) if isinstance(self.fs, pafs.LocalFileSystem) else None

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    def uri_of(self, name: str) -> str:
        """The URI of ``name`` inside this folder (query parameters such as endpoint_override kept)."""
        base, sep, query = self.uri.partition("?")
        return f"{base.rstrip('/')}/{name}{sep}{query}"

    def child(self, name: str) -> Folder:
        return Folder(self.uri_of(name))

    def parent_uri(self) -> str:
        base, sep, query = self.uri.partition("?")
        return f"{base.rstrip('/').rsplit('/', 1)[0]}{sep}{query}"

    def _p(self, name: str) -> str:
        return f"{self.path.rstrip('/')}/{name}" if name else self.path

    def exists(self, name: str = "") -> bool:
        return self.fs.get_file_info(self._p(name)).type != pafs.FileType.NotFound

    def make(self, name: str = "") -> None:
        self.fs.create_dir(self._p(name), recursive=True)

    def write_bytes(self, name: str, data: bytes) -> str:
        """Write ``name`` whole; a local file is replaced atomically (readers never see half)."""
        target = self._p(name)
        self.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
        if self.local is not None:
            tmp = f"{target}.tmp-{os.getpid()}"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
        else:
            with self.fs.open_output_stream(target) as f:
                f.write(data)
        return self.uri_of(name)

    def write_json(self, name: str, obj: Any) -> str:
        text = json.dumps(obj, indent=2, default=_json_default, allow_nan=True) + "\n"
        return self.write_bytes(name, text.encode())

    def read_bytes(self, name: str) -> bytes:
        with self.fs.open_input_stream(self._p(name)) as f:
            return f.readall()

    def read_json(self, name: str) -> Any:
        return json.loads(self.read_bytes(name).decode())

    def delete(self, name: str) -> None:
        self.fs.delete_file(self._p(name))

    def write_parquet(self, name: str, table: pa.Table) -> str:
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        return self.write_bytes(name, sink.getvalue().to_pybytes())

    def copy_in(self, source_fs: pafs.FileSystem, source_path: str, name: str) -> str:
        """Copy one file from any pyarrow filesystem to ``name`` in this folder."""
        with source_fs.open_input_stream(source_path) as f:
            return self.write_bytes(name, f.readall())


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalars and arrays, torch tensors
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def check_writable(folder: Folder) -> None:
    """Create ``folder`` and write a probe file there, or raise SweepError saying why not."""
    try:
        folder.make()
        folder.write_bytes(".write-test", b"ok")
        folder.delete(".write-test")
    except (OSError, pa.ArrowException) as e:
        raise SweepError(
            f"cannot write to storage path {folder.uri} ({e})",
            "pass a writable --storage-path (a local folder or an s3:// / gs:// URI you can write to)",
        ) from None


# ---------------------------------------------------------------------------------------------
# Optuna: a searcher that records what ASHA did


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _step(result: dict) -> int | None:
    return int(result[TRAINING_ITERATION]) if TRAINING_ITERATION in result else None


class RevisingASHAScheduler(ASHAScheduler):
    """Ray's ASHA, but a trial is judged at each of its rungs as if it had arrived there last.

    Ray's asynchronous ASHA decides once, when a trial reaches a rung, against the results
    already there; the first trials to reach a rung are compared with nothing and go on, so a
    sweep whose first trials are bad runs them to the end (61% of the epochs of a 20-trial sweep
    in ``bench/asha_economy.py``, whose first four trials were its worst). Here a trial that
    reports again after passing a rung is checked against that rung's results as they are now
    (the other trials' values, Ray's cutoff: the 1 - 1/rf quantile), and stopped if it would
    not pass. Decisions depend less on arrival order (a trial can only be revised by results
    that have arrived: in that benchmark's order it still spent 45%, against a median of 20% over
    random orders), at the cost of the epochs a trial ran before it was revised.
    ``--no-asha-revise`` gives Ray's ASHA.
    """

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        action = super().on_trial_result(tune_controller, trial, result)
        if action != TrialScheduler.CONTINUE or self._metric not in result:
            return action
        bracket = self._trial_info[trial.trial_id]  # super() has looked it up too
        for _, recorded in bracket._rungs:
            mine = recorded.get(trial.trial_id)
            if mine is None:
                continue
            cutoff = bracket.cutoff({k: v for k, v in recorded.items() if k != trial.trial_id})
            if cutoff is not None and mine < cutoff:  # NaN compares False: never revised
                self._num_stopped += 1
                return TrialScheduler.STOP
        return action


class PruningOptunaSearch(OptunaSearch):
    """Ray's OptunaSearch, but the study says what the scheduler did.

    Ray's own searcher tells Optuna COMPLETE for a trial ASHA stopped early, so the study (and
    TPE) cannot tell a pruned trial from a finished one. Here every epoch's metric is reported
    as an intermediate value (step = training_iteration), and at the end the trial is told
    PRUNED if it stopped before ``max_epochs`` (Optuna then takes its last intermediate value),
    FAIL if it errored, diverged or its metric is NaN/inf (user attribute ``fail_reason`` says
    which; a diverged trial's is its error), COMPLETE otherwise. The Tune trial id is kept as
    the Optuna trial's user attribute ``trial_id``.

    The state (the study, the sampler, the trial map) is pickled into the experiment folder by
    Tune and restored by ``Tuner.restore``. A restore then (a) fails Optuna trials the driver
    asked for after Tune's last snapshot, which no Tune trial will ever report to, and (b) when
    an errored trial is resumed (``resume_errored``), re-opens it as a new Optuna trial with the
    same parameters and its earlier intermediate values (Optuna's own retry convention), since
    a finished Optuna trial cannot change state.

    A trial can also be *rewound*: Tune restarts it from an older checkpoint than its last
    reported epoch (the driver was killed after the trial reported epochs Tune's snapshot does
    not hold, or a worker died between a report and its checkpoint). The epochs after that
    checkpoint are run again and may give other values, so the Optuna trial that holds the lost
    run's values is told FAIL (``fail_reason`` says so; if it already finished it stays as it
    is) and a new one (``retry_of``) continues with the values up to the checkpoint.
    """

    def __init__(self, *, max_epochs: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.max_epochs = max_epochs
        self._told: dict[str, TrialState] = {}
        self._last: dict[str, tuple[int, float]] = {}  # the last (step, value) Optuna holds

    def suggest(self, trial_id: str) -> dict | None:
        config = super().suggest(trial_id)
        if trial_id in self._ot_trials:
            self._ot_trials[trial_id].set_user_attr("trial_id", trial_id)
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None:
            return
        if trial_id in self._completed_trials:
            if self._told.get(trial_id) != TrialState.FAIL:
                return
            ot_trial = self._reopen(trial_id, _step(result))
        elif self._rewound(trial_id, result):
            ot_trial = self._reopen(trial_id, _step(result), rewound=True)
        try:
            self._report(trial_id, ot_trial, result)
        except optuna.exceptions.UpdateFinishedTrialError:
            # Failed earlier; or finished after Tune's last snapshot (the driver was killed) and
            # Tune runs it again from a checkpoint that holds every epoch Optuna has.
            self._report(trial_id, self._reopen(trial_id, _step(result)), result)

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None or trial_id in self._completed_trials:
            return
        result = result or {}
        value = result.get(self.metric)
        if self._rewound(trial_id, result):
            ot_trial = self._reopen(trial_id, _step(result), rewound=True)
        # Tune does not pass the result that made the scheduler stop a trial to on_trial_result
        # (after a normal end, Optuna already has this step and ignores it).
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            self._report(trial_id, ot_trial, result)
        if error or not _finite(value):
            state, values = TrialState.FAIL, None
            reason = (
                "the trial errored"
                if error
                else str(result.get(ERROR) or "the trial diverged")
                if result.get(DIVERGED)
                else f"no {self.metric} reported"
                if value is None
                else f"{self.metric}={value!r} is not a finite number"
            )
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                ot_trial.set_user_attr("fail_reason", reason)
        elif int(result.get(TRAINING_ITERATION, 0)) < self.max_epochs:
            state, values = TrialState.PRUNED, None
        else:
            state, values = TrialState.COMPLETE, float(value)
        self._ot_study.tell(ot_trial, values, state=state, skip_if_finished=True)
        self._told[trial_id] = state
        self._completed_trials.add(trial_id)

    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        self.__dict__.setdefault("_told", {})
        try:
            self._fail_orphans()
            self._sync_last_steps()
        except Exception:  # Tune would answer any error here by silently starting afresh
            logger.warning("could not reconcile the Optuna study with Tune's", exc_info=True)

    def _sync_last_steps(self) -> None:
        """The pickled state is as old as Tune's snapshot; the study may hold later epochs."""
        self._last = {}
        trials = self._ot_study.get_trials(deepcopy=False)
        for trial_id, ot_trial in self._ot_trials.items():
            values = trials[ot_trial.number].intermediate_values
            if trial_id not in self._completed_trials and values:
                self._last[trial_id] = max(values.items())

    def _rewound(self, trial_id: str, result: dict) -> bool:
        """Whether this result repeats an epoch Optuna already holds with another value."""
        value, step = result.get(self.metric), _step(result)
        if trial_id not in self._last or not _finite(value) or step is None:
            return False
        last_step, last_value = self._last[trial_id]
        return step < last_step or (step == last_step and float(value) != last_value)

    def _fail_orphans(self) -> None:
        known = {t.number for t in self._ot_trials.values()}
        for orphan in self._ot_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if orphan.number not in known:
                self._ot_study._storage.set_trial_user_attr(
                    orphan._trial_id,
                    "fail_reason",
                    "asked for after Ray Tune's last snapshot; the resumed sweep re-sampled it",
                )
                self._ot_study.tell(orphan.number, state=TrialState.FAIL, skip_if_finished=True)

    def _report(self, trial_id: str, ot_trial: optuna.Trial, result: dict) -> None:
        value, step = result.get(self.metric), _step(result)
        if _finite(value) and step is not None:
            with warnings.catch_warnings():  # the final result repeats the last step: ignored
                warnings.filterwarnings("ignore", message=".*is already reported")
                ot_trial.report(float(value), step)
            if step >= self._last.get(trial_id, (0, 0.0))[0]:
                self._last[trial_id] = (step, float(value))

    def _reopen(self, trial_id: str, step: int | None, rewound: bool = False) -> optuna.Trial:
        """A new Optuna trial for a Tune trial that runs again from epoch ``step`` (a failed
        trial resumed, or a rewound one), holding the earlier trial's values before ``step``."""
        old = self._ot_study.get_trials(deepcopy=False)[self._ot_trials[trial_id].number]
        if rewound and not old.state.is_finished():
            last = max(old.intermediate_values, default=0)
            self._ot_study._storage.set_trial_user_attr(
                old._trial_id,
                "fail_reason",
                f"rewound: Ray Tune ran epoch {step} again after this trial had reported epoch "
                f"{last} (restored from an older checkpoint); the retry holds the new values",
            )
            self._ot_study.tell(old.number, state=TrialState.FAIL, skip_if_finished=True)
        self._ot_study.enqueue_trial(
            old.params, user_attrs={"trial_id": trial_id, "retry_of": old.number}
        )
        new = self._ot_study.ask(fixed_distributions=self._space)
        self._last.pop(trial_id, None)
        for s, value in sorted(old.intermediate_values.items()):
            if step is None or s < step:
                new.report(value, s)
                self._last[trial_id] = (s, value)
        self._ot_trials[trial_id] = new
        self._completed_trials.discard(trial_id)
        self._told.pop(trial_id, None)
        return new


def study_storage_url(args: argparse.Namespace, exp: Folder) -> str:
    """--study-storage, else SQLite in <experiment>/optuna.db. SQLite cannot live in object
    storage, so for an s3:// or gs:// experiment the file is kept on the driver's disk and
    ``finish`` copies it to <experiment>/optuna.db."""
    if args.study_storage:
        return args.study_storage
    if exp.local is not None:
        return f"sqlite:///{exp.local / STUDY_FILE}"
    key = hashlib.sha1(exp.uri.encode()).hexdigest()[:8]
    path = cache_dir() / "studies" / f"{args.name}-{key}.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def sqlite_path(url: str) -> Path | None:
    """The file of a sqlite:/// URL, else None."""
    parsed = sqlalchemy.engine.make_url(url)
    return Path(parsed.database) if parsed.get_backend_name() == "sqlite" else None


def masked_url(url: str) -> str:
    """The storage URL with any password replaced by ***, for files and logs."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def open_study_storage(url: str, study_name: str) -> optuna.storages.BaseStorage:
    try:
        storage = optuna.storages.RDBStorage(url)
    except Exception as e:
        raise SweepError(
            f"cannot open the Optuna study storage {masked_url(url)} ({type(e).__name__}: {e})",
            "pass a SQLAlchemy URL that works (sqlite:///path.db, postgresql://..., mysql://...)",
        ) from None
    if study_name in optuna.study.get_all_study_names(storage):
        raise SweepError(
            f"the study storage {masked_url(url)} already has a study named {study_name!r}",
            "pick another --name, or delete that study (optuna delete-study)",
        )
    return storage


# ---------------------------------------------------------------------------------------------
# W&B


def wandb_key_configured() -> bool:
    """True when W&B can log in without asking: WANDB_API_KEY or a ~/.netrc entry for its host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        auth = netrc.netrc(os.environ.get("NETRC") or None).authenticators(host or "")
    except (OSError, netrc.NetrcParseError):
        return False
    return bool(auth and auth[2])


def resolve_wandb_mode(requested: str | None) -> str:
    """--wandb-mode, else $WANDB_MODE, else online with an API key configured, else offline."""
    env = os.environ.get("WANDB_MODE", "")
    mode = requested or {"dryrun": "offline", "run": "online"}.get(env, env)
    if mode not in WANDB_MODES:
        mode = "online" if wandb_key_configured() else "offline"
    if mode == "online" and not wandb_key_configured():
        raise SweepError(
            "W&B online mode needs an API key and none is configured",
            "set WANDB_API_KEY or run `wandb login`, or pass --wandb-mode offline",
        )
    return mode


# ---------------------------------------------------------------------------------------------
# Command line


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + message
        print(f"error: {message}; see {self.prog} --help", file=sys.stderr, flush=True)
        sys.exit(2)


_UNSET = object()


def build_parser(sweep: Sweep) -> argparse.ArgumentParser:
    """The flags every sweep has. A script adds its own (e.g. --latent-dim) and then calls
    ``parse_args``. Defaults shown are the script's; --smoke-test and --resume change them."""
    d = sweep.defaults
    p = _Parser(
        prog=f"python sweeps/{sweep.name}.py",
        description=sweep.description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a = p.add_argument_group("search").add_argument
    a("--space", default=next(iter(sweep.spaces)), help=f"search space: {', '.join(sweep.spaces)}")
    a(
        "--num-samples",
        type=int,
        metavar="N",
        default=d["num_samples"],
        help="trials to run (%(default)s)",
    )
    a("--seed", type=int, metavar="N", default=0, help="seed of Optuna's TPE sampler (%(default)s)")
    a(
        "--lr-range",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="replace the bounds of the learning-rate axes (lr, lr_g, lr_d) of the space",
    )
    a(
        "--study-storage",
        metavar="URL",
        help="SQLAlchemy URL of the Optuna study (default sqlite:///<experiment>/optuna.db)",
    )
    a = p.add_argument_group("ASHA early stopping (time unit: epochs)").add_argument
    a(
        "--max-epochs",
        type=int,
        metavar="N",
        default=d["max_epochs"],
        help="epochs of a full trial (%(default)s)",
    )
    a(
        "--grace-period",
        type=int,
        metavar="N",
        default=d["grace_period"],
        help="first rung (%(default)s)",
    )
    a(
        "--reduction-factor",
        type=float,
        metavar="X",
        default=d["reduction_factor"],
        help="keep 1/RF of trials at each rung (%(default)s)",
    )
    a(
        "--asha-revise",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="judge a trial again at its passed rungs as more trials reach them (default: on); "
        "--no-asha-revise: Ray's ASHA, which decides once, when a trial reaches a rung",
    )
    a = p.add_argument_group("resources").add_argument
    a(
        "--max-concurrent",
        type=int,
        metavar="N",
        default=d["max_concurrent"],
        help="trials running at once (%(default)s)",
    )
    a("--cpus-per-trial", type=float, metavar="X", default=1.0, help="CPUs per trial (%(default)s)")
    a(
        "--gpus-per-trial",
        type=float,
        metavar="X",
        default=None,
        help=f"GPUs per trial, fractions allowed (default {d['gpus_per_trial']} when the "
        "machine or cluster has GPUs, else 0)",
    )
    a(
        "--address",
        metavar="ADDR",
        help="join a running Ray cluster: auto, HOST:PORT or ray://HOST:PORT",
    )
    a(
        "--num-cpus",
        type=int,
        metavar="N",
        help="CPUs of the local Ray started when --address is not given",
    )
    a(
        "--max-failures",
        type=int,
        metavar="N",
        default=2,
        help="retries of a failed trial (%(default)s)",
    )
    a = p.add_argument_group("storage").add_argument
    a(
        "--storage-path",
        metavar="PATH",
        default="runs",
        help="local folder or s3:// / gs:// URI (%(default)s)",
    )
    a("--name", default=None, help=f"experiment name (default {sweep.name})")
    a("--resume", metavar="DIR", help="continue the interrupted sweep in experiment folder DIR")
    a = p.add_argument_group("data").add_argument
    a(
        "--data-dir",
        metavar="DIR",
        help="FashionMNIST folder (default: $LATENTSWEEP_DATA, Debian's package, ...)",
    )
    a(
        "--val-size",
        type=int,
        metavar="N",
        default=5000,
        help="validation images held out (%(default)s)",
    )
    a(
        "--data-seed",
        type=int,
        metavar="N",
        default=0,
        help="seed of the validation split (%(default)s)",
    )
    a("--subset", type=int, metavar="N", help="use only this many training images")
    a = p.add_argument_group("W&B").add_argument
    a("--wandb-project", metavar="NAME", default="latentsweep", help="W&B project (%(default)s)")
    a(
        "--wandb-mode",
        choices=WANDB_MODES,
        help="default: $WANDB_MODE, else online if an API key is configured, else offline",
    )
    p.add_argument(
        "--smoke-test",
        action="store_true",
        help="tiny sweep for a quick look: "
        + ", ".join(f"{k.replace('_', '-')} {v}" for k, v in SMOKE.items()),
    )
    p.set_defaults(_gpus_default=d["gpus_per_trial"])
    return p


def parse_args(
    sweep: Sweep, parser: argparse.ArgumentParser, argv: list[str] | None = None
) -> argparse.Namespace:
    """Parse and check the flags. Precedence: given flags, then (with --resume) the sweep's
    saved arguments, then (with --smoke-test) SMOKE, then the defaults. Raises SweepError."""
    defaults = vars(parser.parse_args([]))
    given_ns = argparse.Namespace(**dict.fromkeys(defaults, _UNSET))
    parser.parse_args(argv, namespace=given_ns)
    given = {k: v for k, v in vars(given_ns).items() if v is not _UNSET}

    values = dict(defaults)
    if given.get("resume"):
        unknown = sorted(set(given) - set(RESUME_FLAGS))
        if unknown:
            flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
            raise SweepError(
                f"{flags} cannot change when resuming (the sweep's settings are in its {SWEEP_FILE})",
                f"give only --resume and optionally {', '.join('--' + f.replace('_', '-') for f in RESUME_FLAGS[1:])}",
            )
        saved = read_sweep_file(sweep, given["resume"])
        values.update({k: v for k, v in saved["args"].items() if k in values})
    elif given.get("smoke_test"):
        values.update(SMOKE)
        values["name"] = f"{sweep.name}_smoke"
    values.update(given)
    args = argparse.Namespace(**values)
    args.name = args.name or sweep.name
    validate_args(sweep, args)
    return args


def read_sweep_file(sweep: Sweep, directory: str) -> dict[str, Any]:
    exp = Folder(directory)
    if not exp.exists(SWEEP_FILE):
        raise SweepError(
            f"--resume {directory}: no {SWEEP_FILE} there, so it is not a sweep's experiment folder",
            "pass the folder a sweep created (<storage-path>/<name>)",
        )
    try:
        saved = exp.read_json(SWEEP_FILE)
    except (ValueError, UnicodeDecodeError) as e:
        raise SweepError(
            f"--resume {directory}: {exp.uri_of(SWEEP_FILE)} is not valid JSON ({e}); the file "
            "is truncated or was edited",
            "restore it from a backup (--resume reads the sweep's settings from it)",
        ) from None
    if not isinstance(saved, dict) or not isinstance(saved.get("args"), dict):
        raise SweepError(
            f"--resume {directory}: {exp.uri_of(SWEEP_FILE)} is not a sweep record",
            "pass the folder a sweep created (<storage-path>/<name>)",
        )
    if saved.get("model") != sweep.kind:
        raise SweepError(
            f"--resume {directory} is a {saved.get('model')} sweep, not a {sweep.kind} sweep",
            f"resume it with {saved.get('script', 'its own script')}",
        )
    return saved


# Ray Tune's state in an experiment folder, as --resume reads it: (file or glob, format).
TUNE_STATE = (
    ("tuner.pkl", "pickle"),
    ("experiment_state-*.json", "json"),
    ("searcher-state-*.pkl", "pickle"),
    ("search_gen_state-*.json", "pickle"),  # a cloudpickle despite its name (Ray's _atomic_save)
)


def check_restorable(exp: Folder) -> None:
    """Before Ray starts: Ray Tune's state files in ``exp`` are there and whole (the newest of
    each, as Tune reads them). A truncated file is then an error naming it rather than a
    traceback from inside Ray, or a searcher silently started afresh. Pickles are only parsed
    (``pickletools``), not loaded: nothing in them runs until Tune restores them."""
    if not exp.exists("tuner.pkl"):
        raise SweepError(
            f"--resume {exp.uri}: Ray Tune never started there (no tuner.pkl)",
            "start the sweep again without --resume",
        )
    names = [
        info.base_name
        for info in exp.fs.get_file_info(pafs.FileSelector(exp.path))
        if info.type == pafs.FileType.File
    ]
    for pattern, fmt in TUNE_STATE:
        matches = sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))
        if not matches:
            continue
        name = matches[-1]  # timestamped names: the last is the newest
        try:
            data = exp.read_bytes(name)
            if fmt == "json":
                json.loads(data)
            else:
                for _ in pickletools.genops(data):
                    pass
        except (ValueError, UnicodeDecodeError, OSError) as e:
            raise SweepError(
                f"--resume {exp.uri}: Ray Tune's state file {exp.uri_of(name)} is truncated or "
                f"corrupt ({type(e).__name__}: {str(e).splitlines()[0][:120]})",
                "restore the folder from a backup; or rerun the sweep under a new --name "
                "(its results.parquet and trial folders here stay readable)",
            ) from None


def validate_args(sweep: Sweep, args: argparse.Namespace) -> None:
    """Check flag values before anything starts; each problem names its fix."""

    def need(ok: bool, problem: str, fix: str) -> None:
        if not ok:
            raise SweepError(problem, fix)

    need(
        args.space in sweep.spaces,
        f"unknown --space {args.space!r}",
        f"choose one of {', '.join(sweep.spaces)}",
    )
    need(
        args.num_samples >= 1,
        f"--num-samples {args.num_samples} must be at least 1",
        "pass the number of trials to run, e.g. --num-samples 20",
    )
    need(
        args.max_epochs >= 1,
        f"--max-epochs {args.max_epochs} must be at least 1",
        "pass e.g. --max-epochs 20",
    )
    need(
        1 <= args.grace_period <= args.max_epochs,
        f"--grace-period {args.grace_period} must be between 1 and --max-epochs {args.max_epochs}",
        "lower --grace-period or raise --max-epochs",
    )
    need(
        args.reduction_factor > 1,
        f"--reduction-factor {args.reduction_factor:g} must be above 1",
        "pass e.g. --reduction-factor 3 (keep a third of the trials at each rung)",
    )
    need(
        args.max_concurrent >= 1,
        f"--max-concurrent {args.max_concurrent} must be at least 1",
        "pass e.g. --max-concurrent 4",
    )
    need(
        args.cpus_per_trial > 0,
        f"--cpus-per-trial {args.cpus_per_trial:g} must be positive",
        "pass e.g. --cpus-per-trial 1",
    )
    need(
        args.gpus_per_trial is None or args.gpus_per_trial >= 0,
        f"--gpus-per-trial {args.gpus_per_trial} is negative",
        "pass 0 for CPU trials or a GPU share such as 0.25",
    )
    need(
        args.gpus_per_trial is None or args.gpus_per_trial <= 1 or args.gpus_per_trial.is_integer(),
        f"--gpus-per-trial {args.gpus_per_trial}: above 1, Ray gives whole GPUs only",
        "pass a share up to 1 (e.g. 0.5) or a whole number of GPUs",
    )
    need(
        args.max_failures >= 0,
        f"--max-failures {args.max_failures} is negative",
        "pass 0 to never retry a failed trial",
    )
    need(
        args.num_cpus is None or args.num_cpus >= 1,
        f"--num-cpus {args.num_cpus} must be at least 1",
        "omit it to use every CPU of this machine",
    )
    need(
        0 <= args.val_size < 60000,
        f"--val-size {args.val_size} is not between 0 and 59999",
        "pass the number of validation images held out of the 60,000, e.g. 5000",
    )
    need(
        args.subset is None or args.subset >= 1,
        f"--subset {args.subset} must be positive",
        "omit --subset to use every training image",
    )
    need(
        bool(args.name) and "/" not in args.name and args.name not in (".", ".."),
        f"--name {args.name!r} is not a folder name",
        "pass a plain name such as ae_sweep_v2",
    )
    if args.lr_range is not None:
        low, high = args.lr_range
        need(
            low > 0 and high > 0,
            f"--lr-range {low:g} {high:g} has a bound that is not positive",
            "learning rates are sampled log-uniformly, so both bounds must be above 0",
        )
        need(
            low < high,
            f"--lr-range {low:g} {high:g} is reversed or empty",
            f"give the lower bound first: --lr-range {min(low, high):g} {max(low, high):g}",
        )


# ---------------------------------------------------------------------------------------------
# Search space


def with_lr_range(space: dict[str, Any], lr_range: list[float] | None) -> dict[str, Any]:
    """``space`` with every log-uniform learning-rate axis (lr, lr_*) set to ``lr_range``."""
    if lr_range is None:
        return space
    low, high = lr_range
    out = dict(space)
    for key, value in space.items():
        if (key == "lr" or key.startswith("lr_")) and isinstance(value, Float):
            out[key] = tune.loguniform(low, high)
    if out == space:
        raise SweepError("--lr-range: this space has no lr axis", "omit --lr-range")
    return out


def describe_space(space: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(searched axes as plain JSON, fixed values) of a Tune param space, for sweep.json."""
    axes, fixed = {}, {}
    for key, value in space.items():
        if isinstance(value, Categorical):
            axes[key] = {"choice": list(value.categories)}
        elif isinstance(value, Float | Integer):
            kind = "log" if isinstance(value.get_sampler(), LogUniform) else ""
            kind += "uniform" if isinstance(value, Float) else "randint"
            axes[key] = {kind: [value.lower, value.upper]}
        elif isinstance(value, Domain):
            axes[key] = {"domain": repr(value)}
        else:
            fixed[key] = value
    return axes, fixed


def check_space(module, space: dict[str, Any]) -> None:
    """Every value of every axis must make a valid trial config: catches a typo in a key or an
    out-of-range bound before Ray starts (raises core.ConfigError naming the key)."""
    base = {}
    for key, value in space.items():
        base[key] = _extremes(value)[0] if isinstance(value, Domain) else value
    module.CONFIG.from_dict(base)
    for key, value in space.items():
        if isinstance(value, Domain):
            for v in _extremes(value):
                module.CONFIG.from_dict({**base, key: v})


def _extremes(domain: Domain) -> list[Any]:
    if isinstance(domain, Categorical):
        return list(domain.categories)
    if isinstance(domain, Integer):
        return [domain.lower, domain.upper - 1]
    return [domain.lower, domain.upper]


# ---------------------------------------------------------------------------------------------
# Ray


def start_ray(args: argparse.Namespace) -> bool:
    """Join --address, or start a local Ray (dashboard off). True if this call started or joined
    Ray (so ``run`` shuts it down); False if Ray was already up in this process (tests)."""
    if ray.is_initialized():
        return False
    if args.address:
        try:
            ray.init(address=args.address)
        except (ConnectionError, RuntimeError, TimeoutError, ValueError) as e:
            raise SweepError(
                f"cannot connect to Ray at --address {args.address} ({str(e).splitlines()[0]})",
                "start the cluster (ray start --head, or ray up cluster.yaml) or fix --address",
            ) from None
    else:
        ray.init(
            address="local",  # a fresh local instance, never someone else's `ray start` cluster
            num_cpus=args.num_cpus,
            include_dashboard=False,
            dashboard_host="127.0.0.1",
            configure_logging=True,
            logging_level="WARNING",
        )
    return True


def check_reachable(address: str) -> None:
    """Fail in seconds, not minutes, when --address names a host:port nothing listens on."""
    if address == "auto":
        return
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise SweepError(
            f"--address {address!r} is not auto, HOST:PORT or ray://HOST:PORT",
            "pass e.g. --address auto on the head node, or --address ray://HEAD_IP:10001",
        )
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise SweepError(
            f"cannot reach Ray at --address {address} ({e.strerror or e})",
            "start the cluster (ray start --head, or ray up cluster.yaml) or fix --address",
        ) from None


def local_gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def resolve_resources(
    args: argparse.Namespace, gpus: float, cpus: float, autoscaling: bool = False
) -> None:
    """Default --gpus-per-trial from what exists; refuse shares no single node can give. On a
    cluster (--address) the autoscaler may still add bigger nodes, so that is only a warning."""
    if args.gpus_per_trial is None:
        args.gpus_per_trial = args._gpus_default if gpus > 0 else 0.0
    for kind, wanted, largest in (
        ("gpus", args.gpus_per_trial, gpus),
        ("cpus", args.cpus_per_trial, cpus),
    ):
        if wanted <= largest:
            continue
        problem = f"--{kind}-per-trial {wanted:g} but the largest node has {largest:g} {kind[:3].upper()}(s)"
        if autoscaling:
            print(f"warning: {problem}; trials wait until the autoscaler adds such a node")
        else:
            raise SweepError(problem, f"lower --{kind}-per-trial (at most {largest:g})")


def cluster_node_resources() -> tuple[float, float]:
    """(GPUs, CPUs) of the largest live node: a trial must fit on one node."""
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    return (
        max((n.get("GPU", 0.0) for n in nodes), default=0.0),
        max((n.get("CPU", 0.0) for n in nodes), default=0.0),
    )


def warn_if_node_local(exp: Folder) -> None:
    """Say before trials start when a local experiment folder meets a multi-node cluster: trials
    write checkpoints and results on the node they run on, so the folder must be one file system
    shared by every node (NFS, or several nodes on one machine as in tests/test_cluster.py)."""
    nodes = sum(bool(n.get("Alive")) for n in ray.nodes())
    if exp.local is None or nodes < 2:
        return
    print(
        f"warning: experiment folder {exp.local} is a local path, but the Ray cluster has "
        f"{nodes} nodes: unless every node mounts it at that path (NFS), trials on other nodes "
        "cannot save results or checkpoints the driver reads (Ray fails them with 'Unable to "
        "set up cluster storage'); use --storage-path s3://BUCKET/PATH or gs://BUCKET/PATH",
        flush=True,
    )


def trial_dirname(trial) -> str:
    return f"{trial.trainable_name}_{trial.trial_id}"


# Keys of the last result of a trial that diverged (see ``end_on_divergence``).
DIVERGED, ERROR = "diverged", "error"


def end_on_divergence(train, metric: str):
    """``train``, but a trial whose loss became NaN/inf ends with one last result saying so
    (``diverged: True``, ``error``: the reason, ``metric``: NaN) instead of raising. Raised, Tune
    would retry it --max-failures times from its last checkpoint, and since epochs replay
    exactly it would diverge again each time. ASHA ignores a NaN (its cutoffs use nanpercentile);
    PruningOptunaSearch tells Optuna FAIL with the reason; ``finish`` marks it DIVERGED."""

    @functools.wraps(train)  # keeps the name: Tune's trial folders and --resume depend on it
    def trainable(config: dict[str, Any], **kwargs: Any) -> None:
        try:
            train(config, **kwargs)
        except core.DivergedError as e:
            # Tune requires the metric in every result; NaN says "no score" to all its parts.
            tune.report({**e.metrics, metric: math.nan, DIVERGED: True, ERROR: str(e)})

    return trainable


# ---------------------------------------------------------------------------------------------
# The sweep


def run(sweep: Sweep, args: argparse.Namespace, param_space: dict[str, Any]) -> dict[str, Any]:
    """Run (or with --resume, continue) the sweep, then ``finish`` it; returns the summary.

    Everything a user can get wrong is checked before Ray starts and raised as SweepError
    (or ConfigError, CheckpointError, DataError); call this inside ``cli_errors()``."""
    t0 = time.time()
    module = module_for(sweep.kind)
    space = {
        **with_lr_range(param_space, args.lr_range),
        "epochs": args.max_epochs,  # ASHA's max_t; schedules such as cosine span it
        "data_dir": args.data_dir,
        "val_size": args.val_size,
        "data_seed": args.data_seed,
        "subset": args.subset,
    }
    try:
        check_space(module, space)
    except core.ConfigError as e:
        flag = f"--{e.key.replace('_', '-')}" if e.key else "a flag"
        raise SweepError(
            f"{e} (in the search space or set by a flag)",
            f"fix {flag} if you gave it, else the space in sweeps/{sweep.name}.py",
        ) from None

    if args.resume:
        exp = Folder(args.resume)
        args.storage_path, args.name = exp.parent_uri(), exp.name
        check_restorable(exp)
    else:
        args.storage_path = Folder(args.storage_path).uri  # absolute, as recorded in sweep.json
        exp = Folder(args.storage_path).child(args.name)
        check_writable(Folder(args.storage_path))
        if exp.exists(SWEEP_FILE):
            raise SweepError(
                f"experiment {exp.uri} already exists",
                f"continue it with --resume {exp.uri}, or pick another --name",
            )
    wandb_mode = resolve_wandb_mode(args.wandb_mode)
    if args.address:
        check_reachable(args.address)
    else:
        resolve_resources(args, local_gpu_count(), args.num_cpus or os.cpu_count() or 1)

    # The driver loads the data once; Tune ships it to trials through the object store.
    splits = load_splits(args.data_dir, args.val_size, args.data_seed, args.subset)
    space["data_dir"] = splits.source  # checkpoints then name the files they were trained on
    study_url = study_storage = None
    if not args.resume:
        study_url = study_storage_url(args, exp)
        exp.make()
        study_storage = open_study_storage(study_url, args.name)

    started_ray = start_ray(args)
    try:
        if args.address or not started_ray:
            resolve_resources(args, *cluster_node_resources(), autoscaling=bool(args.address))
            warn_if_node_local(exp)
        trainable = tune.with_resources(
            tune.with_parameters(end_on_divergence(module.TRAINABLE, sweep.metric), data=splits),
            {"cpu": args.cpus_per_trial, "gpu": args.gpus_per_trial},
        )
        if args.resume:
            record = exp.read_json(SWEEP_FILE)
            fetch_study_copy(exp, record)
            record.setdefault("resumes", []).append(
                {"time": _now(), "address": args.address, "wandb_mode": wandb_mode}
            )
            exp.write_json(SWEEP_FILE, record)
            tuner = tune.Tuner.restore(
                exp.uri, trainable=trainable, resume_errored=True, param_space=space
            )
        else:
            exp.write_json(SWEEP_FILE, sweep_record(sweep, args, space, study_url, wandb_mode))
            tuner = make_tuner(sweep, args, trainable, space, study_storage, wandb_mode)
        print(f"{sweep.name}: {splits.describe()}; experiment {exp.uri}", flush=True)
        # The classic progress table (CLIReporter); W&B's mode for SweepWandbCallback; and an
        # experiment snapshot every 3 s at most (Tune's "auto" waits 10 s or more), which keeps
        # --resume close to where the driver stopped: 1 s cost 15% of a 20-trial sweep's wall on
        # 2 CPUs, 3 s 7% (BENCHMARKS.md).
        with (
            _environ(
                RAY_AIR_NEW_OUTPUT="0",
                WANDB_MODE=wandb_mode,
                TUNE_GLOBAL_CHECKPOINT_S=os.environ.get("TUNE_GLOBAL_CHECKPOINT_S", "3"),
            ),
            _no_credentials_through_ray(),
        ):
            tuner.fit()
        summary = finish(sweep, args, exp, splits, module)
    finally:
        if started_ray:
            ray.shutdown()  # also flushes the trials' and W&B actors' output before the summary
    summary["wall_s"] = round(time.time() - t0, 1)
    print_summary(sweep, args, summary, wandb_mode)
    return summary


def make_tuner(
    sweep: Sweep,
    args: argparse.Namespace,
    trainable,
    space: dict[str, Any],
    study_storage: optuna.storages.BaseStorage,
    wandb_mode: str,
) -> tune.Tuner:
    searcher = PruningOptunaSearch(
        max_epochs=args.max_epochs, study_name=args.name, storage=study_storage, seed=args.seed
    )
    scheduler = (RevisingASHAScheduler if args.asha_revise else ASHAScheduler)(
        time_attr=TRAINING_ITERATION,
        max_t=args.max_epochs,
        grace_period=args.grace_period,
        reduction_factor=args.reduction_factor,
    )
    callbacks: list[tune.Callback] = [CheckpointPruner(sweep.metric, sweep.mode)]
    if wandb_mode != "disabled":
        callbacks.append(SweepWandbCallback(project=args.wandb_project, group=args.name))
    reporter = tune.CLIReporter(
        metric_columns=["training_iteration", *sweep.columns],
        parameter_columns=[k for k, v in space.items() if isinstance(v, Domain)],
        sort_by_metric=True,  # by TuneConfig's metric and mode
        max_report_frequency=30,
    )
    return tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(
            metric=sweep.metric,
            mode=sweep.mode,
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=args.max_concurrent),
            scheduler=scheduler,
            num_samples=args.num_samples,
            trial_dirname_creator=trial_dirname,
            reuse_actors=True,  # a new trial reuses a finished trial's worker: no restart cost
        ),
        run_config=tune.RunConfig(
            name=args.name,
            storage_path=Folder(args.storage_path).uri,
            # Tune keeps every checkpoint; CheckpointPruner deletes all but each trial's best and
            # latest once no snapshot --resume could read names them (Tune's num_to_keep deletes
            # before the snapshot that stops naming them is written: a race on a killed driver).
            checkpoint_config=tune.CheckpointConfig(
                checkpoint_score_attribute=sweep.metric,
                checkpoint_score_order=sweep.mode,
            ),
            failure_config=tune.FailureConfig(max_failures=args.max_failures),
            callbacks=callbacks,
            progress_reporter=reporter,
            verbose=1,
        ),
    )


def sweep_record(
    sweep: Sweep,
    args: argparse.Namespace,
    space: dict[str, Any],
    study_url: str,
    wandb_mode: str,
) -> dict[str, Any]:
    """sweep.json: what analysis needs to recognise and read this sweep, and what --resume needs."""
    axes, fixed = describe_space(space)
    saved_args = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    if args.study_storage:
        saved_args["study_storage"] = masked_url(args.study_storage)
    return {
        "model": sweep.kind,
        "script": f"sweeps/{sweep.name}.py",
        "experiment": args.name,
        "experiment_dir": Folder(args.storage_path).uri_of(args.name),
        "metric": sweep.metric,
        "mode": sweep.mode,
        "space": args.space,
        "search_space": axes,
        "fixed_config": fixed,
        "num_samples": args.num_samples,
        "max_epochs": args.max_epochs,
        "scheduler": {
            "name": "ASHA, revising" if args.asha_revise else "ASHA",
            "time_attr": TRAINING_ITERATION,
            "grace_period": args.grace_period,
            "reduction_factor": args.reduction_factor,
        },
        "searcher": {"name": "optuna.TPESampler", "seed": args.seed},
        "max_concurrent": args.max_concurrent,
        "resources_per_trial": {"cpu": args.cpus_per_trial, "gpu": args.gpus_per_trial},
        "study_storage": masked_url(study_url),
        "study_name": args.name,
        # the study as a SQLite file inside the experiment folder (None: only in study_storage)
        "study_file": None if args.study_storage else STUDY_FILE,
        "wandb": {"project": args.wandb_project, "group": args.name, "mode": wandb_mode},
        "smoke_test": args.smoke_test,
        "started": _now(),
        "versions": {"ray": ray.__version__, "optuna": optuna.__version__},
        "args": saved_args,
    }


@contextlib.contextmanager
def _no_credentials_through_ray() -> Iterator[None]:
    """Keep the driver's AWS_* credentials out of the trials' runtime_env. Ray Tune copies them
    there, and Ray's runtime-env agent logs every runtime_env in plain text (session logs, on
    every node). Trials need not get them that way: a local Ray's workers inherit the driver's
    environment, and a cluster's nodes have their own (instance role, ~/.aws, or the environment
    `ray start` ran in; see docs/cluster.md)."""
    from ray.tune.execution import class_cache

    propagated = getattr(class_cache, "ENV_VARS_TO_PROPAGATE", None)
    if propagated is None:  # another Ray version: nothing to filter
        yield
        return
    class_cache.ENV_VARS_TO_PROPAGATE = {v for v in propagated if not v.startswith("AWS_")}
    try:
        yield
    finally:
        class_cache.ENV_VARS_TO_PROPAGATE = propagated


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------
# After the sweep: results.parquet, the best trial, its test metrics, the summary


def diverged(trial) -> bool:
    """The trial ended because its loss became NaN/inf (see ``end_on_divergence``)."""
    return (trial.last_result or {}).get(DIVERGED) is True


def trial_error(trial) -> str | None:
    """Why a trial failed, in one line: its divergence, or what ended an errored trial (the last
    line of Ray's error.txt naming an exception, else its first line after the "Failure # N"
    header); None if it did not fail."""
    if diverged(trial):
        return str(trial.last_result.get(ERROR) or "the trial diverged")
    if trial.status != "ERROR":
        return None
    try:
        text = trial.get_error() or ""
    except Exception:  # an unreadable error file must not stop the results being written
        text = ""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    named = [line for line in lines if re.match(r"^[\w.]*(Error|Exception|Interrupt)\b", line)]
    first = [line for line in lines if not line.startswith("Failure #")][:1]
    return (named or first or ["the trial errored"])[-1][:500]


def trial_rows(trial, history, max_epochs: int, error: str | None = None) -> list[dict[str, Any]]:
    """One row per epoch of one trial (an epoch repeated by a restore keeps its latest row); a
    trial that never reported gets one row with empty metrics so it is not lost. A diverged
    trial's status is DIVERGED (Ray says TERMINATED); ``error`` is why a trial failed."""
    by_iteration: dict[int, dict[str, Any]] = {}
    for record in history:
        if record.get(TRAINING_ITERATION) is not None:
            by_iteration[int(record[TRAINING_ITERATION])] = record
    last = max(by_iteration, default=0)
    ended = diverged(trial)
    head = {
        "trial_id": trial.trial_id,
        "status": "DIVERGED" if ended else trial.status,
        "stopped_early": trial.status == "TERMINATED" and not ended and 0 < last < max_epochs,
    }
    config = {f"config/{k}": v for k, v in trial.config.items()}
    if not by_iteration:
        return [{**head, "epoch": None, TRAINING_ITERATION: None, ERROR: error, **config}]
    rows = []
    for iteration, record in sorted(by_iteration.items()):
        metrics = {
            k: v
            for k, v in record.items()
            if k not in TUNE_KEYS
            and not k.startswith("config/")
            and k not in ("epoch", DIVERGED, ERROR)
        }
        rows.append(
            {
                **head,
                "epoch": record.get("epoch", iteration),
                TRAINING_ITERATION: iteration,
                ERROR: error,
                **metrics,
                **config,
            }
        )
    return rows


def rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Columns in first-seen order, types inferred per column (missing values are null)."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    arrays = {}
    for col in columns:
        values = [_plain(row.get(col)) for row in rows]
        try:
            arrays[col] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays[col] = pa.array([None if v is None else str(v) for v in values])
    return pa.table(arrays)


def _plain(value: Any) -> Any:
    """numpy scalars (pandas hands them out) as Python values."""
    if hasattr(value, "item") and not isinstance(value, list | dict):
        return value.item()
    return value


def finish(sweep: Sweep, args: argparse.Namespace, exp: Folder, splits, module) -> dict[str, Any]:
    """Write results.parquet; if every trial has finished, pick the best by its last ``metric``
    (ERROR and DIVERGED trials excluded), evaluate its checkpoint on the test split and write
    best.json and best/checkpoint.pt. Returns the numbers of the summary."""
    record = exp.read_json(SWEEP_FILE)
    if record.get("study_file") and exp.local is None:
        local_db = sqlite_path(record["study_storage"])
        exp.copy_in(pafs.LocalFileSystem(), str(local_db), STUDY_FILE)
    analysis = tune.ExperimentAnalysis(exp.uri)
    trials = sorted(analysis.trials, key=lambda t: t.trial_id)
    rows, failures = [], {}
    for trial in trials:
        df = analysis.trial_dataframes.get(trial.trial_id)
        history = df.to_dict("records") if df is not None and len(df) else []
        error = trial_error(trial)
        if error:
            failures[trial.trial_id] = ("diverged" if diverged(trial) else "errored", error)
        rows.extend(trial_rows(trial, history, args.max_epochs, error))
    table = rows_to_table(rows)
    table = table.set_column(  # a string column even when no trial failed
        table.schema.get_field_index(ERROR), ERROR, table[ERROR].cast(pa.string())
    )
    exp.write_parquet(RESULTS_FILE, table)

    unfinished = [t for t in trials if t.status not in ("TERMINATED", "ERROR")]
    summary: dict[str, Any] = {
        "experiment": exp.uri,
        "trials": len(trials),
        "errored": sum(t.status == "ERROR" for t in trials),
        "diverged": sum(map(diverged, trials)),
        "failures": failures,  # trial id -> (errored | diverged, why)
        "stopped_early": len({r["trial_id"] for r in rows if r["stopped_early"]}),
        "trial_epochs": sum(int((t.last_result or {}).get(TRAINING_ITERATION, 0)) for t in trials),
        "trial_epochs_budget": args.num_samples * args.max_epochs,
        "complete": not unfinished and len(trials) >= args.num_samples,
        "best": None,
    }
    candidates = [
        t
        for t in trials
        if t.status == "TERMINATED"
        and not diverged(t)
        and _finite((t.last_result or {}).get(sweep.metric))
    ]
    if summary["complete"] and candidates:
        sign = 1 if sweep.mode == "min" else -1
        best = min(candidates, key=lambda t: sign * t.last_result[sweep.metric])
        summary["best"] = write_best(sweep, args, exp, record, analysis, best, splits, module)
    return summary


def write_best(sweep, args, exp: Folder, record, analysis, best, splits, module) -> dict[str, Any]:
    checkpoint = analysis.get_last_checkpoint(best)
    source = f"{checkpoint.path.rstrip('/')}/{core.CHECKPOINT_FILE}"
    checkpoint_uri = exp.copy_in(checkpoint.filesystem, source, BEST_CHECKPOINT)
    if exp.local is not None:
        test = module.evaluate_checkpoint(exp.local / BEST_CHECKPOINT, data=splits)
    else:
        with checkpoint.as_directory() as d:
            test = module.evaluate_checkpoint(d, data=splits)
    last = best.last_result
    val = {k: v for k, v in last.items() if k not in TUNE_KEYS or k == TRAINING_ITERATION}
    val = {k: v for k, v in val.items() if not k.startswith("config/")}
    best_record = {
        "model": sweep.kind,
        "experiment": args.name,
        "metric": sweep.metric,
        "mode": sweep.mode,
        "trial_id": best.trial_id,
        "stopped_early": 0 < int(last.get(TRAINING_ITERATION, 0)) < args.max_epochs,
        "config": dict(best.config),
        "val": val,
        "test": test,
        "checkpoint": checkpoint_uri,
        "study_storage": record["study_storage"],
        "study_name": record["study_name"],
        "study_file": record.get("study_file"),
    }
    exp.write_json(BEST_FILE, best_record)
    return best_record


def fetch_study_copy(exp: Folder, record: dict[str, Any]) -> None:
    """Resuming a remote experiment on another machine: put its optuna.db back where the
    searcher's SQLite URL expects it."""
    if not record.get("study_file") or exp.local is not None:
        return
    local_db = sqlite_path(record["study_storage"])
    if local_db.exists():
        return
    if not exp.exists(STUDY_FILE):  # the driver died before it could copy the study up
        raise SweepError(
            f"--resume {exp.uri}: its Optuna study {local_db} is not on this machine, and "
            f"{exp.uri_of(STUDY_FILE)} does not exist (the sweep's driver was killed)",
            "resume it on the machine whose driver started it; for sweeps that must resume "
            "anywhere, pass --study-storage postgresql://... when you start them",
        )
    local_db.parent.mkdir(parents=True, exist_ok=True)
    local_db.write_bytes(exp.read_bytes(STUDY_FILE))


def exit_status(summary: dict[str, Any]) -> int:
    """A sweep script's exit status: 0 once every trial has finished (errored and diverged ones
    included), else 130, as after Ctrl-C (the sweep was interrupted: continue it with --resume)."""
    return 0 if summary["complete"] else 130


def print_summary(sweep: Sweep, args: argparse.Namespace, summary: dict, wandb_mode: str) -> None:
    name, exp, best = sweep.name, summary["experiment"], summary["best"]
    if not summary["complete"]:
        print(
            f"{name}: stopped before all {args.num_samples} trials finished; continue with: "
            f"python sweeps/{name}.py --resume {exp}"
        )
    elif best is None:
        print(f"{name}: no trial finished with a finite {sweep.metric}; nothing to evaluate")
    failures = list(summary["failures"].items())
    for trial_id, (what, why) in failures[:5]:
        print(f"{name}: trial {trial_id} {what}: {why}")
    if len(failures) > 5:
        print(f"{name}: {len(failures) - 5} more failed; see the error column of {RESULTS_FILE}")
    if best:
        print(f"{name}: best trial {best['trial_id']}: " + json.dumps(best["config"]))
    parts = [
        f"{summary['trials']} trials",
        f"{summary['errored']} errored",
        f"{summary['diverged']} diverged",
        f"{summary['stopped_early']} stopped early",
    ]
    if best:
        parts.append(f"best {sweep.metric} {best['val'][sweep.metric]:.5g}")
        test_key = "test_" + sweep.metric.removeprefix("val_")
        if isinstance(best["test"].get(test_key), float):
            parts.append(f"{test_key} {best['test'][test_key]:.5g}")
    budget = summary["trial_epochs_budget"]
    parts += [
        f"wall {datetime.timedelta(seconds=round(summary['wall_s']))}",
        f"{summary['trial_epochs']}/{budget} trial-epochs "
        f"({100 * summary['trial_epochs'] / max(budget, 1):.0f}% of "
        f"{args.num_samples}x{args.max_epochs})",
    ]
    print(f"{name}: " + ", ".join(parts))
    written = (RESULTS_FILE, BEST_FILE, BEST_CHECKPOINT) if best else (RESULTS_FILE,)
    print(f"{name}: results in {exp} ({', '.join(written)}, {STUDY_FILE})")
    if wandb_mode == "offline":
        wandb_dir = wandb_root(Folder(exp).local) / "wandb"
        print(
            f"{name}: W&B runs are offline; upload them with: wandb sync {wandb_dir}/offline-run-*"
        )
    sys.stdout.flush()


# ---------------------------------------------------------------------------------------------
# Inputs from another sweep


def resolve_encoder(checkpoint: str | None, sweep_dir: str | None) -> str:
    """The autoencoder checkpoint a classifier sweep builds on, as an absolute file path:
    ``checkpoint`` itself, or the best checkpoint of the autoencoder sweep in ``sweep_dir``
    (``sweep_dir/best/checkpoint.pt``, which its best.json names). Raises SweepError."""
    if bool(checkpoint) == bool(sweep_dir):
        raise SweepError(
            "the classifier needs an encoder: give exactly one of --encoder-checkpoint and "
            "--encoder-from",
            "e.g. --encoder-from runs/ae_sweep (the best of an autoencoder sweep)",
        )
    if sweep_dir:
        folder = Folder(sweep_dir)
        if folder.local is None:
            raise SweepError(
                f"--encoder-from {sweep_dir} is remote; trials need a local file",
                "download its best/checkpoint.pt and pass --encoder-checkpoint PATH",
            )
        if not folder.exists(BEST_FILE):
            raise SweepError(
                f"--encoder-from {sweep_dir}: no {BEST_FILE} (not a finished sweep folder)",
                "pass the folder of a finished autoencoder sweep, or --encoder-checkpoint PATH",
            )
        best = folder.read_json(BEST_FILE)
        if best.get("model") != "autoencoder":
            raise SweepError(
                f"--encoder-from {sweep_dir} is a {best.get('model')} sweep",
                "pass the folder of an autoencoder sweep (e.g. runs/ae_sweep)",
            )
        checkpoint = str(folder.local / BEST_CHECKPOINT)
    path = Path(checkpoint).expanduser().resolve()
    if not path.exists():
        raise SweepError(
            f"encoder checkpoint {path} does not exist",
            "train one (python -m trainables.autoencoder --out DIR) or run sweeps/ae_sweep.py",
        )
    try:
        return core.load_checkpoint(path, kind="autoencoder")["path"]
    except core.CheckpointError as e:
        raise SweepError(
            str(e), "pass an autoencoder checkpoint (python -m trainables.autoencoder writes one)"
        ) from None
