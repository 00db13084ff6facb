"""The Kafka Java client as a test peer (6): `java/TxnPeer.java`, compiled once
per session against the jars `deploy/local/stack` downloads. A missing JDK or jar fails loudly.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = Path(__file__).parent / "java" / "TxnPeer.java"


def kafka_libs() -> Path:
    """The jars of the Kafka release the stack runs (same lookup as deploy/local/stack)."""
    stack = (ROOT / "deploy" / "local" / "stack").read_text()
    found = re.search(r"^DEFAULT_KAFKA_VERSION=(\S+)", stack, re.MULTILINE)
    assert found, "deploy/local/stack names no DEFAULT_KAFKA_VERSION"
    version = os.environ.get("KAFKA_VERSION", found.group(1))
    cache = os.environ.get("IDENTITY_WORKER_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "identity-worker"
    )
    libs = Path(cache) / f"kafka-{version}" / "libs"
    assert libs.is_dir(), f"{libs} is missing: run deploy/local/stack up once"
    return libs


@dataclass(frozen=True)
class JavaPeer:
    classpath: str  # the compiled peer's folder, then the Kafka client's jars

    @classmethod
    def compile(cls, into: Path) -> JavaPeer:
        libs = kafka_libs()
        classpath = ":".join(str(jar) for jar in sorted(libs.glob("*.jar")))
        subprocess.run(
            ["javac", "-d", str(into), "-cp", classpath, str(SOURCE)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        return cls(f"{into}:{classpath}")

    def run(self, *args: str, stdin: bytes = b"") -> str:
        result = subprocess.run(
            ["java", "-Xmx256m", "-cp", self.classpath, "TxnPeer", *args],
            input=stdin,
            capture_output=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise AssertionError(
                f"TxnPeer {args[0]} failed: {result.stderr.decode(errors='replace')[-2000:]}"
            )
        return result.stdout.decode()

    def transactions(
        self, bootstrap: str, topic: str, transactions: list[tuple[int, bool, list[bytes]]]
    ) -> None:
        """One producer writing each (partition, commit?, values) as one transaction, in order."""
        stdin = b"".join(
            f"{partition} {'commit' if commit else 'abort'} ".encode() + value + b"\n"
            for partition, commit, values in transactions
            for value in values
        )
        self.run("produce", bootstrap, topic, stdin=stdin)

    def deny(self, bootstrap: str, topic: str, operation: str) -> None:
        """An ACL denying `operation` (READ, WRITE, ...) on `topic` to PLAINTEXT clients."""
        self.run("deny", bootstrap, topic, operation)

    def lag(self, bootstrap: str, group: str, topic: str, wait: float = 0) -> dict[int, tuple[int, int, int]]:
        """Per partition: (committed offset, latest offset, lag), as kafka-consumer-groups shows
        them; asked again for up to `wait` seconds until every lag is 0."""
        found = {}
        for line in self.run("lag", bootstrap, group, topic, str(wait)).split("\n"):
            if line.strip():
                partition, committed, end, lag = (int(field) for field in line.split())
                found[partition] = (committed, end, lag)
        return found
