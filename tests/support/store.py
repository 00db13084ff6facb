"""Helpers of the tests that use PostgreSQL (DESIGN §5, §7): SQL on a connection of its own
from sync code, migrated databases, the admin commands as a subprocess (`cli_subprocess`),
HS256 tokens and keys, polling. The store tests' fixtures are in tests/store/conftest.py."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import warnings
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import jwt

from tests.support import stack
from worker.core.config import JwtKeySpec, validate_spec
from worker.devtools import examples
from worker.store.db import connect
from worker.store.migrate import migrate

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
IDENTITY_WORKER = str(Path(sys.executable).with_name("identity-worker"))
SECRET = examples.HMAC_SECRET
SECRET_2 = examples.OTHER_SECRET
SECRET_3 = examples.THIRD_SECRET
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


def run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to its end from sync code, even where a loop runs in this thread
    (Playwright's sync API keeps one): on a thread of its own."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def run_sql(url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    """One statement on its own connection, from sync code."""

    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(url)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    return run_async(go)


async def migrated(url: str) -> None:
    conn = await connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()


@contextlib.contextmanager
def migrated_database(admin_database_url: str) -> Iterator[str]:
    """A database of its own on the server, migrated; dropped on exit."""
    url = stack.create_database(admin_database_url)
    try:
        run_async(lambda: migrated(url))
        yield url
    finally:
        stack.drop_database(admin_database_url, url)


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
