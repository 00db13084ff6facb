"""The one connection by which the worker's cache follows the configuration store (C1, C3).

`Following` keeps a LISTEN connection open and tells its `Reader` (the `ConfigCache`) what to
read: everything at start, after a reconnect, on a NOTIFY of every community and every
`refresh_interval` (a safety net); one community on a NOTIFY carrying its id. A ping every
`health_interval` finds a connection that died silently. LISTEN starts before each full read,
so no change falls between the two. A lost connection is retried on the worker's one retry
policy (`worker.backoff`, K8); meanwhile the reader serves what it loaded (C3).

Queries share the connection under `lock`; all of this runs in one background task.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
import structlog

from worker.backoff import RetryPolicy, pause, retry_until
from worker.store.db import (
    NOTIFY_ALL,
    NOTIFY_CHANNEL,
    TRANSIENT_ERRORS,
    SchemaMissing,
    StoreError,
    StoreMisconfigured,
    StoreUnavailable,
    address,
    connect,
    describe,
    translate,
)
from worker.store.migrate import check_schema

log = structlog.get_logger(__name__)

_DB_ERRORS = (asyncpg.PostgresError, *TRANSIENT_ERRORS)
#: How the cache's connection shows in pg_stat_activity.
APPLICATION_NAME = "identity-worker-config-cache"


@dataclass(slots=True)
class CacheStats:
    """Counters for metrics (monotonic since the cache was created)."""

    full_reloads: int = 0
    community_reloads: int = 0
    notifications: int = 0
    failures: int = 0
    reconnects: int = 0
    negative_hits: int = 0
    direct_reads: int = 0
    direct_reads_limited: int = 0


class Reader(Protocol):
    """What `Following` keeps current; the queries run on the given connection under `lock`."""

    async def load_all(self, conn: asyncpg.Connection) -> None: ...

    async def reload_one(self, conn: asyncpg.Connection, community_id: str) -> None: ...

    def confirmed(self) -> None:
        """The store answered: the configuration is current as of now."""

    def config_age_seconds(self) -> float | None: ...

    def __len__(self) -> int:
        """Communities served."""


class Following:
    def __init__(
        self,
        dsn: str,
        reader: Reader,
        *,
        stats: CacheStats,
        retry: RetryPolicy,
        refresh_interval: float,
        health_interval: float,
        query_timeout: float,
    ) -> None:
        self._dsn = dsn
        self._reader = reader
        self.stats = stats
        self.retry = retry
        self.refresh_interval = refresh_interval
        self.health_interval = health_interval
        self.query_timeout = query_timeout
        self.where = address(dsn)
        #: The open connection; None while the store cannot be followed (C3).
        self.conn: asyncpg.Connection | None = None
        self.lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._pending: set[str] = set()
        self._reload_all = False
        self._task: asyncio.Task[None] | None = None

    async def start(self, timeout: float | None) -> None:
        """Connect and load everything, retrying an unreachable store; then follow in the background.

        StoreUnavailable once `timeout` (seconds; None: never) has passed; SchemaMissing and
        StoreMisconfigured at once (K10: retrying cannot fix them).
        """

        def on_fault(exc: Exception, delay: float) -> None:
            if isinstance(exc, SchemaMissing | StoreMisconfigured) or not isinstance(exc, StoreError):
                raise exc
            self.stats.failures += 1
            log.warning("config_store_unreachable", where=self.where, error=exc.message, retry_in=delay)

        def gave_up(exc: Exception) -> StoreUnavailable:
            message = exc.message if isinstance(exc, StoreError) else describe(exc)
            return StoreUnavailable(
                f"the configuration store at {self.where} did not answer within {timeout} s: {message}"
            )

        deadline = None if timeout is None else time.monotonic() + timeout
        policy = self.retry.for_startup()
        await retry_until(
            self._connect_and_load, policy, deadline=deadline, on_fault=on_fault, gave_up=gave_up
        )
        self._task = asyncio.create_task(self._run(), name="config-cache")

    async def close(self) -> None:
        self._closing.set()
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=2)
            conn.terminate()

    def lose(self, conn: asyncpg.Connection, exc: BaseException | None) -> None:
        """Drop a connection that failed: degraded until `_reconnect` succeeds (C3)."""
        current = conn is self.conn  # not `if conn is not self.conn`: mypy would narrow conn to None
        if not current:
            return
        self.conn = None
        self.stats.failures += 1
        error = "connection closed" if exc is None else translate(exc, self._dsn).message
        log.warning(
            "config_store_lost",
            where=self.where,
            error=error,
            serving_communities=len(self._reader),
            config_age_seconds=self._reader.config_age_seconds(),
        )
        conn.terminate()
        self._wake.set()

    async def _connect_and_load(self) -> None:
        conn = await connect(
            self._dsn, timeout=self.query_timeout, server_settings={"application_name": APPLICATION_NAME}
        )
        try:
            await check_schema(conn)
            await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
            conn.add_termination_listener(self._on_terminated)
            self._pending.clear()
            self._reload_all = False
            async with self.lock:
                await self._reader.load_all(conn)
        except BaseException as exc:
            conn.terminate()
            if isinstance(exc, _DB_ERRORS):
                raise translate(exc, self._dsn) from None
            raise
        self.conn = conn
        log.info("config_store_following", where=self.where, communities=len(self._reader))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_refresh = loop.time() + self.refresh_interval
        next_ping = loop.time() + self.health_interval
        while not self._closing.is_set():
            conn = self.conn
            if conn is None:
                await self._reconnect()
                next_refresh = loop.time() + self.refresh_interval
                next_ping = loop.time() + self.health_interval
                continue
            wait = max(0.0, min(next_refresh, next_ping) - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()
            lost = self.conn is not conn  # (a bool: see `lose`)
            if lost:
                continue  # lost meanwhile (termination listener)
            try:
                async with self.lock:
                    if self._reload_all or loop.time() >= next_refresh:
                        self._reload_all = False
                        self._pending.clear()
                        await self._reader.load_all(conn)
                        next_refresh = loop.time() + self.refresh_interval
                    elif self._pending:
                        ids, self._pending = self._pending, set()
                        for community_id in sorted(ids):
                            await self._reader.reload_one(conn, community_id)
                    elif loop.time() >= next_ping:
                        await conn.fetchval("SELECT 1", timeout=self.query_timeout)
                        self._reader.confirmed()
                next_ping = loop.time() + self.health_interval
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.lose(conn, exc)

    async def _reconnect(self) -> None:
        """After a lost connection: backoff, then LISTEN and a full read (C1)."""
        backoff = self.retry.backoff()
        delay = backoff.next_delay()
        while not self._closing.is_set():
            await pause(delay, self._closing)
            if self._closing.is_set():
                return
            try:
                await self._connect_and_load()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.failures += 1
                delay = backoff.next_delay()
                error = exc.message if isinstance(exc, StoreError) else describe(exc)
                log.warning("config_store_unreachable", where=self.where, error=error, retry_in=delay)
                continue
            self.stats.reconnects += 1
            log.info("config_store_reconnected", where=self.where)
            return

    def _on_notify(self, conn: Any, pid: int, channel: str, payload: object) -> None:
        self.stats.notifications += 1
        if payload == NOTIFY_ALL:
            self._reload_all = True
        else:
            self._pending.add(str(payload))
        self._wake.set()

    def _on_terminated(self, conn: Any) -> None:
        if conn is self.conn and not self._closing.is_set():
            self.lose(conn, None)
