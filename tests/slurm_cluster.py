"""A one-node Slurm for the tests: Debian's ``slurm-wlm`` (slurmctld, slurmd) and ``munge``,
configured for this machine only (the node is ``localhost`` at 127.0.0.1, both daemons bound
there, ``proctrack/linuxproc`` and ``task/none``: no cgroups), state and logs in a temporary
folder, both daemons run as root and stopped by process id afterwards.

    with SlurmCluster() as slurm:
        job = slurm.sbatch(["cluster/slurm.sbatch", "--smoke-test"], env={...})
        slurm.wait(job)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

CONF = """\
ClusterName=latentsweep_test
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
SlurmUser=root
SlurmdUser=root
ReturnToService=2
MinJobAge=3600
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 NodeHostname={hostname} CPUs={cpus} RealMemory=4000 State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing() -> list[str]:
    """The programs a one-node Slurm needs that this machine lacks."""
    need = ["slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "munged", "runuser"]
    return [p for p in need if not shutil.which(p) and not Path(f"/usr/sbin/{p}").exists()]


class SlurmCluster:
    def __init__(self) -> None:
        lacking = missing()
        if lacking:
            raise RuntimeError(
                f"a one-node Slurm needs {', '.join(lacking)}: apt-get install slurm-wlm munge "
                "(make services does it)"
            )
        if os.geteuid() != 0:
            raise RuntimeError("the one-node Slurm runs its daemons as root; run the tests as root")
        self.root = Path(tempfile.mkdtemp(prefix="latentsweep-slurm-"))
        self.conf = self.root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self._munged: subprocess.Popen | None = None

    def _munge(self) -> None:
        """munged, as the munge user, unless one answers already (Debian's key is used)."""
        if subprocess.run(["munge", "-n"], capture_output=True).returncode == 0:
            return
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        key = Path("/etc/munge/munge.key")
        if not key.exists():  # Debian's package makes one; make it here if it did not
            subprocess.run(["runuser", "-u", "munge", "--", "mungekey", "--create"], check=True)
        self._munged = subprocess.Popen(["runuser", "-u", "munge", "--", "munged", "-F"])
        for _ in range(50):
            if subprocess.run(["munge", "-n"], capture_output=True).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("munged did not start")

    def __enter__(self) -> SlurmCluster:
        (self.root / "state").mkdir()
        (self.root / "spool").mkdir()
        self.conf.write_text(
            CONF.format(
                root=self.root,
                ctld_port=_free_port(),
                d_port=_free_port(),
                hostname=socket.gethostname(),
                cpus=os.cpu_count() or 1,
            )
        )
        self._munge()
        subprocess.run(["slurmctld", "-f", str(self.conf)], check=True, env=self.env)
        subprocess.run(
            ["slurmd", "-f", str(self.conf), "-N", "localhost"], check=True, env=self.env
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            out = subprocess.run(
                ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=self.env
            ).stdout
            if "idle" in out:
                return self
            time.sleep(0.5)
        raise RuntimeError(f"the Slurm node did not come up: {self.log('slurmd')[-2000:]}")

    def log(self, daemon: str) -> str:
        path = self.root / f"{daemon}.log"
        return path.read_text() if path.exists() else ""

    def sbatch(self, argv: list[str], env: dict[str, str], cwd: Path) -> str:
        """Submit ``argv`` (a batch script and its arguments); the job id."""
        out = subprocess.run(
            ["sbatch", "--parsable", *argv],
            capture_output=True,
            text=True,
            check=True,
            env={**self.env, **env},
            cwd=cwd,
        ).stdout
        return out.strip().split(";")[0]

    def wait(self, job: str, timeout: float = 600) -> str:
        """Wait for ``job`` to leave the queue; its final state (COMPLETED, FAILED, ...)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            out = subprocess.run(
                ["scontrol", "show", "job", job], capture_output=True, text=True, env=self.env
            ).stdout
            state = next((w.split("=", 1)[1] for w in out.split() if w.startswith("JobState=")), "")
            if state and state not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING"):
                return state
            time.sleep(1)
        raise TimeoutError(f"Slurm job {job} still in the queue after {timeout:.0f} s")

    def __exit__(self, *exc) -> None:
        for name in ("slurmd", "slurmctld"):  # stopped by the process ids they wrote
            pid_file = self.root / f"{name}.pid"
            if pid_file.exists():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
        time.sleep(1)
        if self._munged is not None:
            self._munged.terminate()
            self._munged.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)
