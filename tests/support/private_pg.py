"""A private, throw-away PostgreSQL server for tests that must stop and restart it (C3).

The shared stack's server is used by other tests at the same time, so the outage test
never stops it: it runs its own server from Debian's binaries (DESIGN §8) in a temporary
folder, on 127.0.0.1 and a free port. `initdb` refuses to run as root, so as root the
server runs as the `postgres` OS user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from worker.demo import free_port  # the one definition; store tests import it from here

ROLE = "identity"
DATABASE = "postgres"


def find_bindir() -> Path:
    """Debian keeps initdb/pg_ctl in /usr/lib/postgresql/<major>/bin, outside PATH."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(Path(d).parent.name), reverse=True
    )
    for directory in candidates:
        if os.access(f"{directory}/initdb", os.X_OK) and os.access(f"{directory}/pg_ctl", os.X_OK):
            return Path(directory)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise RuntimeError(
        "PostgreSQL server binaries not found: apt-get install postgresql (or run deploy/local/stack up)"
    )


class PrivatePostgres:
    """`start()` (initdb on first use), `stop()`, `start()` again on the same port, `destroy()`."""

    def __init__(self) -> None:
        self.bindir = find_bindir()
        self.os_user = "postgres" if os.geteuid() == 0 else None
        self.home = Path(tempfile.mkdtemp(prefix="identity-worker-private-pg."))
        self.data = self.home / "data"
        self.port = free_port()
        self._initialised = False
        if self.os_user:
            shutil.chown(self.home, self.os_user)

    @property
    def dsn(self) -> str:
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *argv: str) -> None:
        command = [str(self.bindir / argv[0]), *argv[1:]]
        if self.os_user:
            command = ["runuser", "-u", self.os_user, "--", *command]
        result = subprocess.run(
            command, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")

    def _initdb(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            ROLE,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        settings = (
            "\n# tests/support/private_pg.py: a throw-away server\n"
            "listen_addresses = '127.0.0.1'\n"
            f"port = {self.port}\n"
            f"unix_socket_directories = '{self.home}'\n"
            "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
        )
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(settings)
        self._initialised = True

    def start(self) -> None:
        if not self._initialised:
            self._initdb()
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.home / "postgres.log"), "-w", "-t", "60", "start"
        )

    def stop(self) -> None:
        """A fast shutdown: clients are disconnected at once, as in a real outage."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError):
            if (self.data / "postmaster.pid").exists():
                self.stop()
        shutil.rmtree(self.home, ignore_errors=True)


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        server.start()
        yield server
    finally:
        server.destroy()
