"""A throwaway PostgreSQL server for a test: initdb as the postgres user (the server refuses root), listening
only on a Unix socket in its own folder, stopped and removed afterwards."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional


def server_bin() -> Optional[Path]:
    """The newest installed PostgreSQL's bin folder (Debian's layout), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:  # the number names the socket file; nothing listens on TCP
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(*command: str) -> None:
    subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True, capture_output=True, text=True)


@contextmanager
def postgres_server() -> Iterator[str]:
    """A running server's SQLAlchemy URL (psycopg 3 over the socket) to its ``postgres`` database."""
    binaries = server_bin()
    root = Path(tempfile.mkdtemp(prefix="pg-"))
    shutil.chown(root, "postgres")  # pytest's folders are root's alone
    data, port = root / "data", _free_port()
    try:
        _as_postgres(str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
        options = f"-k {root} -p {port} -c listen_addresses='' -c max_connections=50"
        _as_postgres(str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start")
        yield f"postgresql+psycopg://postgres@/postgres?host={root}&port={port}"
    finally:
        if (data / "postmaster.pid").exists():
            _as_postgres(str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def can_run() -> bool:
    """Root (runuser, unshare) and an installed server."""
    return hasattr(os, "geteuid") and os.geteuid() == 0 and server_bin() is not None
