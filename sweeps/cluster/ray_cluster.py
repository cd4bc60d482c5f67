"""Ray for a sweep: start a local instance or join a cluster (``--address``), and decide what each
trial gets (``TrialResources``: CPUs and GPUs, fractions allowed), once, from what the machine or
the cluster has.

Also the environment the driver runs Tune in: W&B's mode, Tune's snapshot period, and no AWS
credentials copied into the trials' runtime_env (Ray would log them).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import ray

from sweeps.cluster import private_api
from sweeps.folder.storage import Folder
from sweeps.request.settings import Settings, SweepSpec
from trainables.errors import UsageError


@dataclass(frozen=True)
class TrialResources:
    """What one trial asks Ray for."""

    cpu: float
    gpu: float


SNAPSHOT_FLOOR_S = 3.0  # Tune's experiment snapshots: at most this far apart while they are cheap


def start_ray(settings: Settings) -> bool:
    """Join --address, or start a local Ray (dashboard off). True if this call started or joined
    Ray (so the runner shuts it down); False if Ray was already up in this process (tests)."""
    if ray.is_initialized():
        return False
    if settings.address:
        try:
            ray.init(address=settings.address)
        except (ConnectionError, RuntimeError, TimeoutError, ValueError) as e:
            raise UsageError(
                f"cannot connect to Ray at --address {settings.address} ({str(e).splitlines()[0]})",
                "start the cluster (ray start --head, or ray up cluster.yaml) or fix --address",
            ) from None
    else:
        private_api.ray_on_loopback_only()  # nothing of a local sweep listens beyond 127.0.0.1
        ray.init(
            address="local",  # a fresh local instance, never someone else's `ray start` cluster
            num_cpus=settings.num_cpus,
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
        raise UsageError(
            f"--address {address!r} is not auto, HOST:PORT or ray://HOST:PORT",
            "pass e.g. --address auto on the head node, or --address ray://HEAD_IP:10001",
        )
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise UsageError(
            f"cannot reach Ray at --address {address} ({e.strerror or e})",
            "start the cluster (ray start --head, or ray up cluster.yaml) or fix --address",
        ) from None


def local_node_resources(settings: Settings) -> tuple[float, float]:
    """(GPUs, CPUs) of this machine, as the local Ray a sweep starts will have them."""
    import torch

    return float(torch.cuda.device_count()), float(settings.num_cpus or os.cpu_count() or 1)


def cluster_node_resources() -> tuple[float, float]:
    """(GPUs, CPUs) of the largest live node: a trial must fit on one node."""
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    return (
        max((n.get("GPU", 0.0) for n in nodes), default=0.0),
        max((n.get("CPU", 0.0) for n in nodes), default=0.0),
    )


def trial_resources(
    spec: SweepSpec,
    settings: Settings,
    gpus: float,
    cpus: float,
    autoscaling: bool = False,
    chosen: TrialResources | None = None,
) -> TrialResources:
    """What a trial asks for, given the largest node's ``gpus`` and ``cpus``: --gpus-per-trial,
    else the script's default share where GPUs exist, else 0 (or the share ``chosen`` already,
    when a local decision is checked again against the Ray this process runs in). A share no
    single node can give is refused; on a cluster (--address) the autoscaler may still add
    bigger nodes, so there it is only a warning."""
    gpu = settings.gpus_per_trial if chosen is None else chosen.gpu
    if gpu is None:
        gpu = spec.defaults["gpus_per_trial"] if gpus > 0 else 0.0
    for kind, wanted, largest in (("gpus", gpu, gpus), ("cpus", settings.cpus_per_trial, cpus)):
        if wanted <= largest:
            continue
        problem = f"--{kind}-per-trial {wanted:g} but the largest node has {largest:g} {kind[:3].upper()}(s)"
        if autoscaling:
            print(f"warning: {problem}; trials wait until the autoscaler adds such a node")
        else:
            raise UsageError(problem, f"lower --{kind}-per-trial (at most {largest:g})")
    return TrialResources(cpu=settings.cpus_per_trial, gpu=gpu)


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


@contextlib.contextmanager
def tune_environment(wandb_mode: str, verbose: bool) -> Iterator[None]:
    """What ``Tuner.fit`` runs under: Tune's classic reporter interface, which the compact view
    (or, with --verbose, Ray's table) implements (``sweeps/fit/progress.py``); W&B's mode for
    the W&B callback; an experiment snapshot every 3 s, or 19 times the last snapshot's time
    when that is longer (Tune's "auto" with a 3 s floor for its 10 s), which keeps --resume close
    to where the driver stopped: 1 s cost 15% of a 20-trial sweep's wall on 2 CPUs, 3 s 7%
    (BENCHMARKS.md). A snapshot holds every trial, so in a sweep of thousands it takes a
    second or more, and every 3 s it would take the driver's time away from the trials (section
    6 of BENCHMARKS.md); at 19x it takes 5% at most. $TUNE_GLOBAL_CHECKPOINT_S set to a number is
    Tune's fixed period. And no credentials through Ray."""
    with (
        environ(
            RAY_AIR_NEW_OUTPUT="0",
            LATENTSWEEP_PROGRESS="verbose" if verbose else "compact",
            WANDB_MODE=wandb_mode,
            TUNE_GLOBAL_CHECKPOINT_S=os.environ.get("TUNE_GLOBAL_CHECKPOINT_S", "auto"),
        ),
        private_api.snapshot_period_floor(SNAPSHOT_FLOOR_S),
        no_credentials_through_ray(),
    ):
        yield


@contextlib.contextmanager
def no_credentials_through_ray() -> Iterator[None]:
    """Keep the driver's AWS_* credentials out of the trials' runtime_env. Ray Tune copies them
    there, and Ray's runtime-env agent logs every runtime_env in plain text (session logs, on
    every node). Trials need not get them that way: a local Ray's workers inherit the driver's
    environment, and a cluster's nodes have their own (instance role, ~/.aws, or the environment
    `ray start` ran in; see docs/cluster.md). Tune's list is a private name of Ray's: if it is
    missing, this fails in one line (``sweeps/cluster/private_api.py``) rather than let them through."""
    with private_api.tune_env_vars_propagated(keep=lambda name: not name.startswith("AWS_")):
        yield


@contextlib.contextmanager
def environ(**values: str) -> Iterator[None]:
    """``os.environ`` with ``values`` set, restored afterwards."""
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
