"""A throwaway SSH server for the tests: Debian's ``openssh-server`` (``sshd``) with its own config,
host key and client key pair in a temporary folder, listening on 127.0.0.1 only, on a free port,
key authentication only.

    with SSHServer(env={"RAY_TMPDIR": ...}) as ssh:
        ssh.proxy_command   # what a client's ProxyCommand runs to reach it (Ray's auth config)

Ray's cluster launcher always connects to port 22 and has no port setting, but it passes
``ssh_proxy_command`` to ``ssh`` and ``rsync`` alike: ``tests/tcp_pipe.py`` joins ssh's stdin and
stdout to this server's port. Every session gets ``home`` as its HOME (``SetEnv``), so what a
login writes under ``~`` (Ray's bootstrap config, the copied checkout, ``~/.bashrc``) stays in the
temporary folder, and the variables in ``env``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
PIPE = Path(__file__).with_name("tcp_pipe.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SSHServer:
    def __init__(self, env: dict[str, str] | None = None):
        if not os.path.exists(SSHD):
            raise RuntimeError(
                "no sshd here; apt-get install openssh-server rsync (make services does it)"
            )
        # Short and world-traversable: the user logs in as this process's user.
        self.root = Path(tempfile.mkdtemp(prefix="ssh-"))
        self.home = self.root / "home"
        self.key = self.root / "id_ed25519"
        self.port = _free_port()
        self.user = os.environ.get("USER") or __import__("pwd").getpwuid(os.getuid()).pw_name
        self.env = {"HOME": str(self.home), **(env or {})}
        self.process: subprocess.Popen | None = None

    @property
    def proxy_command(self) -> str:
        return f"{sys.executable} {PIPE} 127.0.0.1 {self.port}"

    def __enter__(self) -> SSHServer:
        self.home.mkdir(parents=True)
        host_key = self.root / "host_ed25519"
        for key in (host_key, self.key):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True
            )
        shutil.copy(f"{self.key}.pub", self.root / "authorized_keys")
        setenv = " ".join(f"{k}={v}" for k, v in self.env.items())
        config = self.root / "sshd_config"
        config.write_text(
            f"""ListenAddress 127.0.0.1:{self.port}
HostKey {host_key}
PidFile {self.root}/sshd.pid
AuthorizedKeysFile {self.root}/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers {self.user}
StrictModes no
UsePAM no
SetEnv {setenv}
Subsystem sftp internal-sftp
"""
        )
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege-separation directory
        checked = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, text=True)
        if checked.returncode != 0:
            raise RuntimeError(f"sshd -t: {checked.stderr.strip()}")
        self.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "sshd.log", "w"),  # noqa: SIM115 (closed with the process)
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.2)
        log = (self.root / "sshd.log").read_text()
        self.__exit__()
        raise RuntimeError(f"sshd did not start on 127.0.0.1:{self.port}:\n{log}")

    def log(self) -> str:
        return (self.root / "sshd.log").read_text()

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.root, ignore_errors=True)
