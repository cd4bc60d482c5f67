"""A throwaway PostgreSQL server for the tests: Debian's ``postgresql`` binaries, a fresh cluster
(``initdb``) in a temporary folder, run as the unprivileged ``postgres`` user, listening on
127.0.0.1 only, on a free port, with password (SCRAM) authentication for TCP connections.

    with PostgresServer(password="...") as server:
        url = server.url("studies")   # postgresql://sweeper:<password>@127.0.0.1:<port>/studies
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

USER = "sweeper"  # the database role the sweeps log in as


def binaries() -> Path | None:
    """The folder of Debian's PostgreSQL server binaries (initdb, pg_ctl), newest version."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self, password: str, os_user: str = "postgres"):
        self.bin = binaries()
        if self.bin is None:
            raise RuntimeError(
                "PostgreSQL's server is not installed (no /usr/lib/postgresql/*/bin/initdb); "
                "apt-get install postgresql (make services does it)"
            )
        # Not under pytest's tmp_path: its folders are root's alone, and the server runs as
        # os_user, who must reach its data folder.
        self.root = Path(tempfile.mkdtemp(prefix="latentsweep-postgres-"))
        self.password, self.os_user = password, os_user
        self.data, self.sockets = self.root / "data", self.root / "sockets"
        self.port = _free_port()

    def _as_user(self, *cmd: str, **kwargs) -> subprocess.CompletedProcess:
        """Run a server binary as the unprivileged OS user (PostgreSQL refuses to run as root)."""
        if os.geteuid() == 0:
            cmd = ("runuser", "-u", self.os_user, "--", *cmd)
        return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs)

    def __enter__(self) -> PostgresServer:
        self.root.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(exist_ok=True)
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            account = pwd.getpwnam(self.os_user)
            for path in (self.root, self.sockets, pwfile):
                os.chown(path, account.pw_uid, account.pw_gid)
        os.chmod(pwfile, 0o600)
        self._as_user(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            USER,
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            f"--pwfile={pwfile}",
        )
        pwfile.unlink()
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.sockets}"
        self._as_user(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "start",
        )
        return self

    def create_database(self, name: str) -> None:
        self._as_user(
            str(self.bin / "createdb"),
            "-h",
            str(self.sockets),
            "-p",
            str(self.port),
            "-U",
            USER,
            name,
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def __exit__(self, *exc) -> None:
        subprocess.run(
            (["runuser", "-u", self.os_user, "--"] if os.geteuid() == 0 else [])
            + [str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
            capture_output=True,
        )
        shutil.rmtree(self.root, ignore_errors=True)
