"""W&B logging for a sweep: one run per trial, all of them kept by one process.

Ray's ``WandbLoggerCallback`` starts two actors per trial (a ``ray.util.Queue`` and a logging
actor whose ``wandb.init`` starts a W&B service of its own), so every trial costs three new
processes that compete with the trials for the CPUs: at 20 trials x 2 epochs on 2 CPUs that was
48% of the sweep's wall time (BENCHMARKS.md). Here one actor, started with the first trial,
holds every trial's run (``wandb.init(reinit="create_new")``: several runs in one process, one
W&B service), and the driver sends it what to log without waiting, in one batch at most
``SweepWandbCallback.FLUSH_EVERY_S`` apart (one actor call for many results; the calls run in
the order they were sent, and the messages of a batch in their order).

Online, W&B must be reachable: ``wandb.init`` waits for its timeout when the server is not, once
per trial in turn inside the one actor (a 14 s smoke sweep took 6 minutes), and the trial's run
is lost. ``sweep_wandb_mode`` therefore opens one TCP connection to the server (or to the proxy
the environment names for it) when a sweep starts, for a few seconds at most; if it fails, the
whole sweep logs offline and says so in one line, with the ``wandb sync`` command.
"""

from __future__ import annotations

import logging
import netrc
import numbers
import os
import shlex
import socket
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pyarrow.fs as pafs
import ray
from ray.air.constants import TRAINING_ITERATION
from ray.air.integrations.wandb import WandbLoggerCallback
from ray.tune.utils import flatten_dict

from sweeps.cluster import private_api  # private_api: Ray's W&B helpers
from sweeps.folder import old_folders, outcome
from sweeps.folder.layout import WANDB_DIR
from trainables.errors import UsageError

logger = logging.getLogger(__name__)

WANDB_MODES = ("online", "offline", "disabled")
WANDB_CHECKPOINTS = ("none", "best")  # --wandb-log-checkpoint
BEST_TAG = "best"  # the tag of the best trial's run
DEFAULT_SERVER = "https://api.wandb.ai"
PROBE_TIMEOUT_S = 3.0  # the most a sweep waits to learn that W&B cannot be reached


def wandb_key_configured() -> bool:
    """True when W&B can log in without asking: WANDB_API_KEY or a ~/.netrc entry for its host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(wandb_server()).hostname
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
        raise UsageError(
            "W&B online mode needs an API key and none is configured",
            "set WANDB_API_KEY or run `wandb login`, or pass --wandb-mode offline",
        )
    return mode


def wandb_server() -> str:
    """The W&B server runs are sent to: $WANDB_BASE_URL, else W&B's cloud."""
    return os.environ.get("WANDB_BASE_URL") or DEFAULT_SERVER


def unreachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None if a TCP connection to the server of ``url`` opens within ``timeout`` seconds (to
    the proxy $https_proxy / $http_proxy / $all_proxy names for it, if any), else why not."""
    parsed = urlparse(url)
    host = parsed.hostname or ""
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
    except ValueError:  # a port that is not a number
        return f"{url} is not a valid URL"
    target, via = (host, port), ""
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parsed.scheme) or proxies.get("all")
    if proxy and not urllib.request.proxy_bypass(host):
        p = urlparse(proxy if "://" in proxy else f"http://{proxy}")
        target, via = (p.hostname or "", p.port or 80), f" through the proxy {p.hostname}:{p.port}"
    start = time.monotonic()
    try:
        socket.create_connection(target, timeout=timeout).close()
    except OSError as e:
        why = e.strerror or str(e) or type(e).__name__  # "timed out" has no strerror
        return f"{host}:{port}{via}: {why} after {time.monotonic() - start:.1f} s"
    return None


def sweep_wandb_mode(
    requested: str | None,
    experiment_dir: str | os.PathLike | None = None,
    timeout: float = PROBE_TIMEOUT_S,
) -> tuple[str, str | None]:
    """The mode a sweep logs in, and the line to print about it (None: nothing to say).
    ``resolve_wandb_mode``'s, but online only if the W&B server answers within ``timeout``
    seconds; if not, the sweep logs offline (into ``wandb_root(experiment_dir)/wandb``) and the
    line says why and how to upload the runs later."""
    mode = resolve_wandb_mode(requested)
    if mode != "online":
        return mode, None
    server = wandb_server()
    why = unreachable(server, timeout)
    if why is None:
        return mode, None
    runs = wandb_root(experiment_dir) / WANDB_DIR
    return "offline", (
        f"W&B: cannot reach {server} ({why}), so this sweep logs its W&B runs offline; upload "
        f"them from a machine that can reach it with: wandb sync {shlex.quote(str(runs))}/offline-run-*"
    )


def wandb_root(experiment_dir: str | os.PathLike | None) -> Path:
    """W&B writes its runs to <root>/wandb/: the experiment folder when it is local, else
    $WANDB_DIR or the current directory."""
    return Path(experiment_dir or os.environ.get("WANDB_DIR") or os.getcwd())


def configure_runs(kwargs: dict, trial) -> None:
    """Set a W&B callback's ``wandb.init`` arguments for ``trial``'s run: the mode from the
    driver's $WANDB_MODE, the folder (``wandb_root``), resume, and ``RUN_SETTINGS``."""
    kwargs["mode"] = os.environ.get("WANDB_MODE", "offline")
    local = isinstance(trial.storage.storage_filesystem, pafs.LocalFileSystem)
    kwargs["dir"] = str(wandb_root(trial.storage.experiment_fs_path if local else None))
    kwargs.setdefault("resume", "allow")  # a resumed trial continues its W&B run
    # merged, not set once: a callback pickled by an older version (a resumed sweep) has its own
    kwargs["settings"] = {**RUN_SETTINGS, **(kwargs.get("settings") or {})}


# Every trial's run: quiet (the sweep prints the sync command); no system metrics, which from the
# hub would chart the driver's machine, not the trial's; and the environment's package list
# (requirements.txt) saved by the hub's first run only: reading every installed package's
# metadata took 0.09 of the 0.11 CPU seconds of each run's wandb.init here, on the CPUs the
# trials train on (BENCHMARKS.md, section 6). The list is the same for every run of a sweep.
RUN_SETTINGS = {
    "silent": True,
    "x_disable_stats": True,
    "x_save_requirements": False,
    "symlink": False,  # wandb/latest-run: three symlinks remade per run, of no use in a sweep
}


def git_found(settings) -> dict[str, Any]:
    """What the hub's first run found of git, as settings for the later runs: the same commit,
    remote and root, and no git of their own. wandb.init runs git three times a run (its root,
    HEAD, the remote), a process each: 4.5 ms of the CPUs the trials train on per run here,
    for the answer the first run already has (BENCHMARKS.md, section 6)."""
    found = {k: getattr(settings, k, None) for k in ("git_commit", "git_remote_url", "git_root")}
    return {"disable_git": True, **{k: v for k, v in found.items() if v}}


def wandb_row(result: dict, exclude, to_config, wandb) -> tuple[dict, dict]:
    """(row to log, config update) of a Tune result, split as Ray's W&B callback splits it:
    keys under ``exclude`` dropped, keys under ``to_config`` into the run's config, the rest
    logged if W&B can chart them (a number, a one-element array, a W&B media object)."""

    def under(key: str, prefixes) -> bool:
        return any(key == p or key.startswith(p + "/") for p in prefixes)

    chartable = (numbers.Number, wandb.Image, wandb.Video, wandb.Table, wandb.Histogram)
    config_update, row = dict(result.get("config", {})), {}
    for key, value in flatten_dict(result, delimiter="/").items():
        if under(key, exclude):
            continue
        if under(key, to_config):
            config_update[key] = value
        elif isinstance(value, chartable) or (
            isinstance(value, np.ndarray)
            and value.size == 1
            and isinstance(value.item(), numbers.Number)
        ):
            row[key] = value
    config_update.pop("callbacks", None)
    return row, config_update


def same(a: Any, b: Any) -> bool:
    """a == b, False where they cannot be compared (an array in a config)."""
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def run_status(trial, failed: bool = False) -> dict[str, Any]:
    """What a trial's run summary says of its end: ``status`` (finished, stopped early,
    diverged, errored: the console's words), the epochs it ran and, if it failed, why."""
    epochs = outcome.epochs(trial)
    status = (
        "errored" if failed else outcome.how_it_ended(trial, trial.config.get("epochs", epochs))
    )
    out = {"status": status, "epochs": epochs}
    error = outcome.trial_error(trial)
    if error:
        out["error"] = error
    return out


def mark_best_run(
    settings, exp_local, best: dict[str, Any], wandb_mode: str, checkpoint: str | None
) -> str | None:
    """After the sweep: the best trial's run (resumed by its id, the trial id) gets the tag
    ``best``, its test metrics in its summary and, with ``--wandb-log-checkpoint best``, the
    checkpoint as a model artifact. Returns a warning line if W&B failed (the sweep's results
    stand either way)."""
    import wandb

    try:
        run = wandb.init(
            id=best["trial_id"],
            resume="allow",
            project=settings.wandb_project,
            entity=settings.wandb_entity,
            group=settings.name,
            mode=wandb_mode,
            dir=str(wandb_root(exp_local)),
            # no metadata: it would hold this driver's command line, whose --study-storage
            # may carry a database password (the trials' runs start in an actor, which has none)
            settings={"silent": True, "x_disable_meta": True, "save_code": False},
            reinit="create_new",
        )
        run.tags = tuple(dict.fromkeys((*run.tags, BEST_TAG)))
        run.summary.update({**best.get("test", {}), "best_of_sweep": True})
        if checkpoint and settings.wandb_log_checkpoint == "best":
            artifact = wandb.Artifact(name=f"{settings.name}-best", type="model")
            artifact.add_file(str(checkpoint))
            run.log_artifact(artifact, aliases=["best"])
        run.finish()
        wandb.teardown()
    except Exception as e:  # W&B is a view of the results, never a reason to lose them
        return f"W&B: could not mark the best trial's run ({type(e).__name__}: {e})"
    return None


class WandbHub:
    """The actor that holds the sweep's W&B runs, keyed by Tune trial id. A failure in one run
    is logged and does not touch the others (nor the sweep)."""

    def __init__(self) -> None:
        import wandb

        self._wandb = wandb
        self._runs: dict[str, tuple[Any, tuple[tuple, tuple]]] = {}  # run, (exclude, to_config)
        # RUN_SETTINGS: None until the first run, which saves the package list and reads git;
        # then the settings that let the later runs record the same commit without git
        self._found_once: dict[str, Any] | None = None
        self._configs: dict[str, dict] = {}  # trial id -> the config its run last got (log)

    def start(
        self, trial_id: str, logdir: str, exclude: list, to_config: list, init_kwargs: dict
    ) -> None:
        if trial_id in self._runs:  # a trial restarted after a failure keeps its run
            return
        settings = dict(init_kwargs.get("settings") or {})
        if self._found_once is None:
            settings["x_save_requirements"] = True
        else:
            settings.update(self._found_once)
        # the trial's folder goes into the run's config with the trial's config, in wandb.init:
        # one message to W&B's service less per run than a config.update of its own
        config = {**(init_kwargs.get("config") or {}), "trial_log_path": logdir}
        try:
            run = self._wandb.init(
                **{**init_kwargs, "config": config, "settings": settings, "reinit": "create_new"}
            )
            if self._found_once is None:
                self._found_once = git_found(run.settings)
            # Charts against the epoch, not W&B's own step (``log`` below says why).
            run.define_metric(TRAINING_ITERATION)
            run.define_metric("*", step_metric=TRAINING_ITERATION)
            private_api.wandb_run_info_hook(run)
        except Exception:
            logger.warning("W&B: could not start the run of trial %s", trial_id, exc_info=True)
            return
        self._runs[trial_id] = (run, (tuple(exclude), tuple(to_config)))

    def log(self, trial_id: str, result: dict) -> None:
        """One W&B row per result, at W&B's own step, which only grows. A trial's epochs can go
        back: Population Based Training clones a donor's checkpoint from an earlier epoch, a
        retried trial restarts from its last checkpoint. W&B drops a row logged at a step below
        its current one, so the epoch (``training_iteration``) is the charts' x-axis instead
        (``define_metric`` in ``start``) and a rewound epoch is a new row, as in results.parquet."""
        if trial_id not in self._runs:
            logger.warning("W&B: no run for trial %s; result dropped", trial_id)
            return
        run, keys = self._runs[trial_id]
        try:
            row, config_update = wandb_row(result, *keys, self._wandb)
            # Tune sends the config with every result; the run gets it when it changes (the
            # first result, a PBT perturbation): one message to W&B's service less per result
            if not same(config_update, self._configs.get(trial_id)):
                run.config.update(config_update, allow_val_change=True)
                self._configs[trial_id] = config_update
            run.log(row)
        except Exception:
            logger.warning("W&B: could not log a result of trial %s", trial_id, exc_info=True)

    def log_checkpoint(self, trial_id: str, path: str) -> None:
        if trial_id in self._runs:
            run = self._runs[trial_id][0]
            artifact = self._wandb.Artifact(name=f"checkpoint_{run.name}", type="model")
            artifact.add_dir(path)
            run.log_artifact(artifact)

    def end(self, trial_id: str, failed: bool = False, status: dict | None = None) -> None:
        """Finish the trial's run, its summary holding how the trial ended (``status``)."""
        run, _ = self._runs.pop(trial_id, (None, None))
        self._configs.pop(trial_id, None)
        if run is not None:
            try:
                run.summary.update(status or {})
                run.finish(exit_code=1 if failed else 0)
            except Exception:
                logger.warning("W&B: could not finish the run of trial %s", trial_id, exc_info=True)

    def apply(self, messages: list[tuple[str, tuple]]) -> None:
        """A batch from the driver (``SweepWandbCallback``): each (method, arguments) in order;
        one that fails is logged and the rest still run, as separate calls would."""
        for name, args in messages:
            try:
                getattr(self, name)(*args)
            except Exception:
                logger.warning("W&B: %s of trial %s failed", name, args[0], exc_info=True)

    def close(self) -> int:
        """Finish the runs still open and stop W&B's service (left to an atexit hook, it races
        Ray's shutdown and prints a ConnectionResetError traceback). Returns how many were open."""
        open_runs = list(self._runs)
        for trial_id in open_runs:
            self.end(trial_id)
        self._wandb.teardown()
        return len(open_runs)


class SweepWandbCallback(WandbLoggerCallback):
    """One W&B run per trial (run id = Tune trial id), grouped by experiment name, all logged
    from one ``WandbHub`` actor on the driver's node that uses no CPU of Ray's.

    The mode is read from the driver's $WANDB_MODE at each trial start (``run`` sets it), so a
    resumed sweep follows the --wandb-mode it was resumed with although Tune restores this
    callback from its pickle. Offline runs go to ``<experiment>/wandb/`` for a local experiment
    folder, else to $WANDB_DIR or the current directory. The API key is never passed through
    Ray (Ray's callback hands it to its actors as a runtime_env variable, which Ray's runtime_env
    agent writes to its log): the hub runs on the driver's node, so it inherits the key from the
    environment (local Ray) or reads ~/.netrc.

    What a trial's run gets (its start, each result, its end) waits in an outbox that goes to
    the hub in one actor call at the end of a step of Tune's loop, at most ``FLUSH_EVERY_S``
    apart, and at the end of the sweep before the runs are finished. An actor call per
    message (about three a trial and one a result) cost the driver about 0.8 ms each on 2 busy
    CPUs, and the hub its own share of each (BENCHMARKS.md, section 6). A driver killed
    outright loses what its outbox held (at most the last ``FLUSH_EVERY_S`` of rows), as it
    may lose what the hub had not yet logged, which local Ray ends with the driver; the results
    and the study keep those epochs. Ctrl-C and a normal end send everything first.
    """

    FLUSH_EVERY_S = 0.5

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._hub = None
        self._outbox: list[tuple[str, tuple]] = []
        self._flushed = 0.0  # time.monotonic() of the last batch sent

    def __getstate__(self) -> dict:
        # Tune pickles its callbacks; actor handles belong to one Ray session, the outbox goes
        # to this session's hub, and time.monotonic() counts from this machine's boot (a resume
        # elsewhere could find its clock behind it and never send).
        state = self.__dict__.copy()
        state["_hub"], state["_trial_logging_actors"] = None, {}
        state["_outbox"], state["_flushed"] = [], 0.0
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(old_folders.wandb_callback_state(state))

    def log_trial_start(self, trial) -> None:
        configure_runs(self.kwargs, trial)
        super().log_trial_start(trial)  # builds wandb.init's arguments, then calls the next

    def _start_logging_actor(self, trial, exclude_results, **wandb_init_kwargs) -> None:
        if self._hub is None:
            pin = private_api.force_on_current_node()
            hub = ray.remote(num_cpus=0, max_restarts=-1, **pin)(WandbHub)
            self._hub = hub.remote()
        to_config = list(self.AUTO_CONFIG_KEYS)
        args = (trial.trial_id, trial.local_path, exclude_results, to_config, wandb_init_kwargs)
        self._send("start", *args)
        self._trial_logging_actors[trial] = self._hub

    def log_trial_result(self, iteration: int, trial, result: dict) -> None:
        if trial not in self._trial_logging_actors:
            self.log_trial_start(trial)
        result = private_api.wandb_clean_log(result, self.video_kwargs, self.image_kwargs)
        self._send("log", trial.trial_id, result)

    def log_trial_save(self, trial) -> None:
        checkpoint = trial.checkpoint if trial in self._trial_logging_actors else None
        local = checkpoint is not None and isinstance(checkpoint.filesystem, pafs.LocalFileSystem)
        if self.upload_checkpoints and local:
            self._send("log_checkpoint", trial.trial_id, checkpoint.path)
            self._flush()  # now: the pruner may delete a checkpoint that is not the best

    def log_trial_end(self, trial, failed: bool = False) -> None:
        if self._trial_logging_actors.pop(trial, None) is not None:
            self._send("end", trial.trial_id, failed, run_status(trial, failed))

    def _send(self, method: str, *args: Any) -> None:
        self._outbox.append((method, args))

    def _flush(self) -> None:
        if self._outbox and self._hub is not None:
            self._hub.apply.remote(self._outbox)
            self._outbox = []
        self._flushed = time.monotonic()

    def on_step_end(self, iteration: int, trials, **info) -> None:
        if self._outbox and time.monotonic() - self._flushed >= self.FLUSH_EVERY_S:
            self._flush()

    def on_experiment_end(self, trials, **info) -> None:
        """Wait (up to ``upload_timeout``) until every run is finished and written."""
        if self._hub is None:
            return
        self._flush()
        try:
            ray.get(self._hub.close.remote(), timeout=self._upload_timeout)
        except Exception as e:
            logger.warning("W&B: the runs did not finish cleanly (%s: %s)", type(e).__name__, e)
        ray.kill(self._hub)
        self._hub, self._trial_logging_actors = None, {}

    def __del__(self) -> None:
        pass  # Ray's version signals per-trial actors this callback does not have
