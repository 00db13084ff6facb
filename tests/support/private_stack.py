"""Servers of a test's own, from the same `deploy/local/stack` as the shared ones (DESIGN §8).

The shared broker and PostgreSQL serve every concurrent test session and are never stopped.
A test that must stop and restart a server (K8, C3) or change its configuration runs its own:
`stack up` in a temporary STACK_DIR on a free port (the same jars, KRaft settings, Debian
binaries and `initdb` options as the shared stack), `stack stop` (data and port kept), `stack
start` (the same data on the same port), `stack down` when done. The secured stack of
tests/secure is run with the same `run_stack`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.support import stack

UP_TIMEOUT_S = 300
#: Never inherited: with them set, `stack up` would start nothing and hand back the shared ones.
SHARED = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")


def run_stack(
    command: str, folder: Path, timeout: float, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """`deploy/local/stack COMMAND ARGS` with STACK_DIR=`folder` and `env` added."""
    base = {k: v for k, v in os.environ.items() if k not in SHARED}
    return subprocess.run(
        [str(stack.STACK), command, *args],
        env={**base, "STACK_DIR": str(folder), **env},
        capture_output=True,
        stdin=subprocess.DEVNULL,
        text=True,
        timeout=timeout,
        check=False,
    )


class PrivateStack:
    """One service of the stack (`kafka` or `postgresql`) in a folder of its own.

    `start()` brings it up (the first time) or back (after `stop()`); `destroy()` removes it.
    """

    def __init__(self, service: str, **env: str) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix=f"identity-worker-private-{service}."))
        self.env = {"STACK_SERVICES": service, **env}
        self.exports: dict[str, str] = {}

    def _run(self, command: str) -> str:
        done = run_stack(command, self.folder, UP_TIMEOUT_S, **self.env)
        if done.returncode != 0:
            raise RuntimeError(f"`stack {command}` of {self.folder} failed: {done.stderr[-2000:]}")
        return done.stdout

    def start(self) -> None:
        self.exports = stack._parse_exports(self._run("start" if self.exports else "up"))

    def stop(self) -> None:
        self._run("stop")

    def destroy(self) -> None:
        try:
            self._run("down")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


class PrivateBroker(PrivateStack):
    """A single-node broker: stop it mid-stream, change its configuration, start it again."""

    def __init__(self) -> None:
        super().__init__("kafka", KAFKA_HEAP_OPTS="-Xms128m -Xmx512m")

    @property
    def bootstrap(self) -> str:
        return self.exports["KAFKA_BOOTSTRAP_SERVERS"]

    def add_config(self, lines: str) -> None:
        """Append to server.properties: read by the next `start` (stop the broker first)."""
        properties = self.folder / "kafka" / "server.properties"
        properties.write_text(properties.read_text() + "\n" + lines + "\n")

    def restart(self) -> None:
        self.start()


class PrivatePostgres(PrivateStack):
    """A PostgreSQL server: `stop()` is a fast shutdown (clients disconnected at once, as in a
    real outage), `start()` brings it back with its data."""

    def __init__(self) -> None:
        super().__init__("postgresql")

    @property
    def dsn(self) -> str:
        return self.exports["DATABASE_URL"]


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        server.start()
        yield server
    finally:
        server.destroy()
