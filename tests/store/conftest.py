"""Fixtures for the configuration store tests (DESIGN §5, §7): real PostgreSQL, never mocked.

Tests run on databases of their own on the shared stack's server, dropped afterwards:
`store_url` is a migrated database per test module, emptied before each test (tests never
see each other's rows); `fresh_db` is an empty database per test. Admin commands run
in-process through `worker.cli.main.main` (`cli`) or, to check the real entry point, as a
subprocess (`cli_subprocess`).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import jwt
import pytest
from support import stack

from worker.cli.main import main
from worker.core.config import JwtKeySpec, validate_spec
from worker.store.db import connect
from worker.store.migrate import migrate

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
IDENTITY_WORKER = str(Path(sys.executable).with_name("identity-worker"))
SECRET = "0123456789abcdef01234567"
SECRET_2 = "fedcba9876543210fedcba98"
SECRET_3 = "00112233445566778899aabb"
RECEIVED_AT = "2026-11-24T10:00:00Z"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    @property
    def output(self) -> str:
        return self.out + self.err


Cli = Callable[..., Result]


def run_sql(url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    """One statement on its own connection (sync tests: no loop is running)."""

    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(url)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    return asyncio.run(go())


async def migrated(url: str) -> None:
    conn = await connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()


@pytest.fixture
def fresh_db(admin_database_url: str) -> Iterator[str]:
    """An empty database of its own (no schema)."""
    url = stack.create_database(admin_database_url)
    yield url
    stack.drop_database(admin_database_url, url)


@pytest.fixture(scope="module")
def module_db(admin_database_url: str) -> Iterator[str]:
    """A migrated database shared by one test module (creating one costs ~0.3 s)."""
    url = stack.create_database(admin_database_url)
    asyncio.run(migrated(url))
    yield url
    stack.drop_database(admin_database_url, url)


@pytest.fixture
def store_url(module_db: str) -> str:
    """The module's migrated database, emptied for this test: no rows of another test."""
    run_sql(module_db, "TRUNCATE communities CASCADE")
    return module_db


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], store_url: str, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Run `identity-worker ARGS...` in-process against `store_url` (via DATABASE_URL)."""
    monkeypatch.setenv("DATABASE_URL", store_url)

    def run(*args: str, stdin: str | None = None) -> Result:
        capsys.readouterr()
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", _Stdin(stdin))
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        else:
            code = 0
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


class _Stdin:
    """A text stdin for in-process commands (`-` arguments)."""

    def __init__(self, text: str) -> None:
        import io

        self._io = io.StringIO(text)

    def read(self, *args: Any) -> str:
        return self._io.read(*args)

    def readline(self, *args: Any) -> str:
        return self._io.readline(*args)

    def isatty(self) -> bool:
        return False


def cli_subprocess(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    """The real console script, as an operator runs it."""
    full_env = {**os.environ, **(env or {})}
    done = subprocess.run(
        [IDENTITY_WORKER, *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=full_env,
        timeout=60,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def hs256_token(secret: str, kid: str, *, exp: int, uuid: str = "visitor-1", **claims: Any) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT warns about 24-byte HMAC keys (DESIGN §1 fixes them)
        return jwt.encode(
            {"uuid": uuid, "exp": exp, **claims},
            secret,
            algorithm="HS256",
            headers={"kid": kid, "typ": "JWT"},
        )


def hs_key(kid: str, secret: str) -> JwtKeySpec:
    """An HS256 key, validated like the YAML loader does."""
    return validate_spec(JwtKeySpec, {"kid": kid, "hmac_secret": secret})


def signed_event(community_id: str, token: str, event_id: str = "e-1") -> bytes:
    import json

    return json.dumps(
        {
            "event_id": event_id,
            "community_id": community_id,
            "received_at": RECEIVED_AT,
            "signed_identity": token,
        }
    ).encode()


async def wait_until(predicate: Callable[[], bool], timeout: float = 3.0, what: str = "condition") -> float:
    """Poll `predicate` (letting the event loop run) until true; returns the seconds it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not predicate():
        if loop.time() - start > timeout:
            raise AssertionError(f"{what}: not true after {timeout} s")
        await asyncio.sleep(0.002)
    return loop.time() - start


async def write(url: str, action: Callable[[asyncpg.Connection], Any]) -> Any:
    """Run one admin action in its own transaction, as a command would; committed on return."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            return await action(conn)
    finally:
        await conn.close()
