"""The experiment folder on a local disk or in object storage (s3://, gs://): one ``Folder``
class through which every file a sweep writes goes, and the checks made on it before a sweep
starts. What the files are called is ``sweeps/folder/layout.py``'s."""

from __future__ import annotations

import json
import os
import socket
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from trainables.errors import UsageError


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

    def files(self) -> list[str]:
        """The names of the plain files directly in this folder."""
        return [
            info.base_name
            for info in self.fs.get_file_info(pafs.FileSelector(self.path))
            if info.type == pafs.FileType.File
        ]

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

    def read_parquet(self, name: str) -> pa.Table:
        with self.fs.open_input_file(self._p(name)) as f:
            return pq.read_table(f)

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
    """Create ``folder`` and write a probe file there, or raise UsageError saying why not.

    The probe's name is this call's own: sweeps started together on one storage path (two drivers
    sharing a PostgreSQL study, a Slurm array) each write and delete their own probe, never one
    another's."""
    probe = f".write-test-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex}"
    try:
        folder.make()
        folder.write_bytes(probe, b"ok")
        folder.delete(probe)
    except (OSError, pa.ArrowException) as e:
        raise UsageError(
            f"cannot write to storage path {folder.uri} ({e})",
            "pass a writable --storage-path (a local folder or an s3:// / gs:// URI you can write to)",
        ) from None


def check_new(exp: Folder, sweep_file: str) -> None:
    """A new sweep never writes into an experiment that exists: that is what --resume is for."""
    if exp.exists(sweep_file):
        raise UsageError(
            f"experiment {exp.uri} already exists",
            f"continue it with --resume {exp.uri}, or pick another --name",
        )
