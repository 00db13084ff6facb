"""A private single-node Kafka broker for the test that stops and restarts one (K8).

The shared broker serves every concurrent test session and is never stopped. This one is
started by `deploy/local/stack up` in a temporary STACK_DIR (same jars, same KRaft
configuration), stopped with SIGTERM, and started again on the same port and data
directory from the configuration the script wrote — `stack up` would wipe the data.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.worker import free_port

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "deploy" / "local" / "stack"
PROBE = ROOT / "deploy" / "local" / "kafka_probe.py"
HEAP = "-Xms128m -Xmx512m"


class PrivateBroker:
    def __init__(self, database_url: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="identity-worker-private-kafka."))
        self.port = free_port()
        self.database_url = database_url

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _kafka_dir(self) -> Path:
        return self.dir / "kafka"

    def pid(self) -> int:
        return int((self._kafka_dir() / "pid").read_text().strip())

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
        env.update(
            STACK_DIR=str(self.dir),
            KAFKA_PORT=str(self.port),
            DATABASE_URL=self.database_url,  # starts no PostgreSQL of its own
            KAFKA_HEAP_OPTS=HEAP,
        )
        result = subprocess.run(
            [str(STACK), "up"], env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
        )
        if result.returncode != 0:
            raise RuntimeError(f"private broker did not start: {result.stderr[-2000:]}")

    def stop(self, timeout: float = 60) -> None:
        pid = self.pid()
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid):
            if time.monotonic() > deadline:
                os.killpg(pid, signal.SIGKILL)
                time.sleep(0.5)
                break
            time.sleep(0.2)

    def add_config(self, lines: str) -> None:
        """Append to server.properties: read by the next `restart` (stop the broker first)."""
        properties = self._kafka_dir() / "server.properties"
        properties.write_text(properties.read_text() + "\n" + lines + "\n")

    def restart(self, timeout: float = 120) -> None:
        kafka = self._kafka_dir()
        version = (kafka / "version").read_text().strip()
        cache = os.environ.get("IDENTITY_WORKER_CACHE") or str(
            Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "identity-worker"
        )
        libs = Path(cache) / f"kafka-{version}" / "libs"
        command = [
            "java",
            *HEAP.split(),
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={kafka / 'logs'}",
            f"-Dlog4j2.configurationFile={kafka / 'log4j2.properties'}",
            "-cp",
            f"{libs}/*",
            "kafka.Kafka",
            str(kafka / "server.properties"),
        ]
        with (kafka / "logs" / "restart.log").open("ab") as out:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
            )
        (kafka / "pid").write_text(f"{process.pid}\n")
        deadline = time.monotonic() + timeout
        while True:
            probe = subprocess.run(
                ["python3", str(PROBE), "--timeout", "2", self.bootstrap], capture_output=True, timeout=30
            )
            if probe.returncode == 0:
                return
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"private broker did not restart (exit {process.poll()})")
            time.sleep(0.3)

    def destroy(self) -> None:
        """Kill the broker (its data is deleted with it: no clean shutdown to wait for)."""
        try:
            if (self._kafka_dir() / "pid").exists() and _alive(self.pid()):
                self.stop(timeout=0)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
