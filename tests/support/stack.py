"""Real Kafka and PostgreSQL for tests (DESIGN section 8): never mocks, never skips.

`services()` returns the bootstrap servers and the admin DATABASE_URL: the ones in the
environment when both are set (checked to answer), else those printed by
`deploy/local/stack up` (idempotent: it starts the stack once and reuses it afterwards, for
every pytest session).
"""

from __future__ import annotations

import asyncio
import shlex
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "deploy" / "local" / "stack"
STACK_UP_TIMEOUT_S = 900  # a cold Maven download plus start-up, with a wide margin


class ServiceUnavailable(RuntimeError):
    """A real service the tests need cannot be reached; tests must fail, not skip."""


@dataclass(frozen=True)
class Services:
    kafka_bootstrap: str
    admin_database_url: str


def unique_name(prefix: str) -> str:
    """`prefix` plus a random suffix: a name no other test or pytest session uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def unique_topic(prefix: str = "test") -> str:
    """A fresh Kafka topic name (legal characters only), unique across sessions."""
    return unique_name(prefix.replace("_", "-"))


def _parse_exports(text: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in text.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, _, value = words[1].partition("=")
            env[name] = value
    return env


def services() -> Services:
    # `stack up` starts what is missing and checks what the environment gives (it starts
    # nothing when both KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL are set).
    try:
        result = subprocess.run(
            [str(STACK), "up"],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            text=True,
            timeout=STACK_UP_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServiceUnavailable(f"`deploy/local/stack up` could not run: {exc}") from exc
    if result.returncode != 0:
        reason = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise ServiceUnavailable(
            f"`deploy/local/stack up` failed (exit {result.returncode}); the integration tests "
            f"need a real Kafka and PostgreSQL:\n{reason}"
        )
    env = _parse_exports(result.stdout)
    try:
        return Services(env["KAFKA_BOOTSTRAP_SERVERS"], env["DATABASE_URL"])
    except KeyError as exc:
        raise ServiceUnavailable(f"`deploy/local/stack up` printed no {exc}: {result.stdout!r}") from exc


def with_database(url: str, database: str) -> str:
    """The same server and credentials, another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


async def _admin(url: str, statement: str) -> None:
    try:
        conn = await asyncpg.connect(url, timeout=15)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise ServiceUnavailable(f"PostgreSQL at DATABASE_URL cannot be reached: {exc!r}") from exc
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def create_database(admin_url: str) -> str:
    """Create a fresh, empty database on the admin URL's server; return its URL."""
    name = f"iw_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    return with_database(admin_url, name)


def drop_database(admin_url: str, url: str) -> None:
    """Drop a database made by `create_database`, disconnecting whoever still uses it."""
    name = urlsplit(url).path.lstrip("/")
    if not name.startswith("iw_test_"):
        raise ValueError(f"refusing to drop {name!r}: not a test database")
    asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
