"""A Ray head for the tests, started the way a user starts one (``ray start --head``), on
127.0.0.1 only, with its session files in a folder of its own, and stopped by process id.

    with RayHead() as head:
        head.run(["ray", "job", "submit", "--address", head.dashboard_url, ...])

Ray makes every node address, 127.0.0.1 included, the machine's external IP and listens on all
interfaces unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (its single-machine mode: see
``sweeps/cluster/private_api.py``); the head gets it, and ``listening_beyond_loopback`` checks that no
process of this Ray listens anywhere else. ``ray stop`` would stop every Ray on the machine, other
tests' included, so ``stop`` kills only this head's processes: those whose environment names its
session folder (``RAY_TMPDIR``), which every process Ray starts inherits.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

BIN = Path(sys.executable).parent  # ray, python: the test's own virtual environment


def free_port(low: int = 6400, high: int = 9999) -> int:
    """A free TCP port on 127.0.0.1 in [low, high]: Ray's head port must stay clear of the
    worker ports Ray takes (10002-19999)."""
    for port in range(low, high + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {low}-{high}")


def processes_of(tmpdir: str) -> list[psutil.Process]:
    """The processes whose environment has ``RAY_TMPDIR=tmpdir``: one Ray's, whoever started it."""
    found = []
    for p in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if p.environ().get("RAY_TMPDIR") == tmpdir:
                found.append(p)
    return found


def listening_beyond_loopback(procs: list[psutil.Process]) -> list[str]:
    """'name address:port' for each socket one of ``procs`` listens on that is not loopback."""
    wide = []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            for c in p.net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN:
                    ip = ipaddress.ip_address(c.laddr.ip)
                    ip = getattr(ip, "ipv4_mapped", None) or ip
                    if not ip.is_loopback:
                        wide.append(f"{p.name()} {c.laddr.ip}:{c.laddr.port}")
    return wide


def kill_all(procs: list[psutil.Process], grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL what is left after ``grace`` seconds."""
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=grace)


class RayHead:
    def __init__(self, num_cpus: int = 2):
        # Short: Ray's socket paths under it must fit in 107 bytes.
        self.tmpdir = tempfile.mkdtemp(prefix="ray-head-")
        # Every port chosen: Ray's fixed defaults (the dashboard's 8265, its agent's 52365) clash
        # with any other Ray on the machine.
        self.port, self.dashboard_port = free_port(), free_port(8300)
        self.agent_port = free_port(52400, 52999)
        self.num_cpus = num_cpus
        self.env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # `python` in jobs
            "RAY_TMPDIR": self.tmpdir,
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # 127.0.0.1 only
            # Ray 2.60's `ray start` turns token authentication on; the CLI must send the token,
            # kept here rather than in the home folder's ~/.ray.
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": os.path.join(self.tmpdir, "auth_token"),
        }

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def run(self, cmd: list[str], timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(
            cmd, env=self.env, capture_output=True, text=True, timeout=timeout, **kwargs
        )

    def __enter__(self) -> RayHead:
        Path(self.env["RAY_AUTH_TOKEN_PATH"]).write_text(os.urandom(32).hex())
        started = self.run(
            [
                str(BIN / "ray"),
                "start",
                "--head",
                "--node-ip-address=127.0.0.1",
                f"--port={self.port}",
                "--include-dashboard=true",  # the job server lives in the dashboard
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={self.dashboard_port}",
                f"--dashboard-agent-listen-port={self.agent_port}",
                f"--num-cpus={self.num_cpus}",
                "--num-gpus=0",
                "--disable-usage-stats",
            ],
            timeout=120,
        )
        if started.returncode != 0:
            self.stop()
            raise RuntimeError(f"ray start --head failed:\n{started.stdout}\n{started.stderr}")
        return self

    def processes(self) -> list[psutil.Process]:
        return processes_of(self.tmpdir)

    def stop(self) -> None:
        kill_all(self.processes())
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_for(predicate, timeout: float, what: str, every: float = 0.5):
    """Poll ``predicate`` until it returns something true; AssertionError naming ``what``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
