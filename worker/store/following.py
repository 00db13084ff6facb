"""The one connection by which the worker's cache follows the configuration store (C1, C3).

`Following` keeps a LISTEN connection open and tells its `Reader` (the `ConfigCache`) what to
read: everything at start, after a reconnect and on a NOTIFY of every community; what changed
since the last read every `refresh_interval` (a safety net, T1); the communities a NOTIFY
names, a few per statement. A ping every `health_interval` finds a connection that died
silently. LISTEN starts before each full read, so no change falls between the two. A lost
connection is retried on the worker's one retry policy (`worker.backoff`, K8);
meanwhile the reader serves what it loaded (C3).

T2: a notification never waits behind a read. Full and periodic reads run in a task of their
own, on a connection of their own, prepared in slices; the LISTEN connection's task goes on
reading the notified communities meanwhile (under `lock`, which it shares with V2's direct
reads). Thousands of notifications at once (a bulk `config apply`) become one read of what
changed, so the ones that follow are not queued behind them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
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
#: The connection of a full or periodic read, while it runs.
READER_NAME = "identity-worker-config-read"
#: Notified ids read back in one statement; a notification waits behind at most this many (T2).
RELOAD_BATCH = 64
#: More notified ids than this (a bulk change) are read as "what changed" instead (T1).
PENDING_AS_READ = 512


@dataclass(slots=True)
class CacheStats:
    """The cache's counters, monotonic since it was created, served as the `config_*` metrics
    (`worker.runtime.service.CACHE_METRICS`)."""

    full_reloads: int = 0
    community_reloads: int = 0
    notifications: int = 0
    failures: int = 0
    reconnects: int = 0
    negative_hits: int = 0
    direct_reads: int = 0
    direct_reads_limited: int = 0
    #: T1: periodic reads of what changed (`full_reloads` counts the reads of everything).
    refreshes: int = 0
    #: Community rows read by full and periodic reads, in all and by the last one.
    rows_read: int = 0
    last_refresh_rows: int = 0


class Reader(Protocol):
    """What `Following` keeps current. `reload_many` runs on the LISTEN connection under `lock`;
    `refresh` on a connection of its own, beside the notifications (T2)."""

    async def refresh(self, conn: asyncpg.Connection, *, full: bool) -> None: ...

    async def reload_many(self, conn: asyncpg.Connection, ids: list[str]) -> None: ...

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
        # Ids notified and not yet read, in the order they came (a dict keeps it).
        self._pending: dict[str, None] = {}
        self._reload_all = False
        self._task: asyncio.Task[None] | None = None
        self._read_task: asyncio.Task[None] | None = None
        self._read_again: str | None = None  # "full" or "changes": asked while a read ran

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
        for task in (self._task, self._read_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._read_task = None
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
        """Start-up: LISTEN, then read everything (awaited: the worker is not ready before)."""
        conn = await self._listen()
        try:
            await self._read(full=True)
        except BaseException as exc:
            conn.terminate()
            if isinstance(exc, _DB_ERRORS):
                raise translate(exc, self._dsn) from None
            raise
        self.conn = conn
        log.info("config_store_following", where=self.where, communities=len(self._reader))

    async def _listen(self) -> asyncpg.Connection:
        """A new LISTEN connection. LISTEN starts before the full read that follows it, so no
        change falls between the two (C1)."""
        conn = await connect(
            self._dsn, timeout=self.query_timeout, server_settings={"application_name": APPLICATION_NAME}
        )
        try:
            await check_schema(conn)
            await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
            conn.add_termination_listener(self._on_terminated)
        except BaseException as exc:
            conn.terminate()
            if isinstance(exc, _DB_ERRORS):
                raise translate(exc, self._dsn) from None
            raise
        self._pending.clear()
        self._reload_all = False
        return conn

    async def _read(self, *, full: bool) -> None:
        """One full or periodic read on a connection of its own: the LISTEN connection stays free
        for notifications meanwhile (T2), and its transaction would hold them back."""
        conn = await connect(
            self._dsn, timeout=self.query_timeout, server_settings={"application_name": READER_NAME}
        )
        try:
            await self._reader.refresh(conn, full=full)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=2)
            conn.terminate()

    def _start_read(self, *, full: bool) -> None:
        """Read in the background; when a read runs already, once more after it (it may have
        begun before the change that asks for this one)."""
        if self._read_task is not None and not self._read_task.done():
            self._read_again = "full" if full or self._read_again == "full" else "changes"
            return
        self._read_task = asyncio.create_task(self._reads(full), name="config-cache-read")

    async def _reads(self, full: bool) -> None:
        backoff = self.retry.backoff()
        while not self._closing.is_set():
            try:
                await self._read(full=full)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the LISTEN connection's ping decides about an outage (C3)
                self.stats.failures += 1
                delay = backoff.next_delay()
                error = translate(exc, self._dsn).message if isinstance(exc, _DB_ERRORS) else describe(exc)
                log.warning("config_read_failed", where=self.where, full=full, error=error, retry_in=delay)
                await pause(delay, self._closing)
                continue
            if self._read_again is None:
                return
            full, self._read_again = self._read_again == "full", None

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
            if not self._pending:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()
            lost = self.conn is not conn  # (a bool: see `lose`)
            if lost:
                continue  # lost meanwhile (termination listener)
            if self._reload_all or loop.time() >= next_refresh:
                self._start_read(full=self._reload_all)
                self._reload_all = False
                next_refresh = loop.time() + self.refresh_interval
            try:
                if len(self._pending) > PENDING_AS_READ:
                    # A bulk change (config apply): one sliced read of what changed, in the
                    # background; the notifications that follow are served one by one (T2).
                    self._pending.clear()
                    self._start_read(full=False)
                elif self._pending:
                    ids = list(itertools.islice(self._pending, RELOAD_BATCH))
                    for community_id in ids:
                        del self._pending[community_id]
                    async with self.lock:
                        await self._reader.reload_many(conn, ids)
                elif loop.time() >= next_ping:
                    async with self.lock:
                        await conn.fetchval("SELECT 1", timeout=self.query_timeout)
                    self._reader.confirmed()
                next_ping = loop.time() + self.health_interval
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.lose(conn, exc)

    async def _reconnect(self) -> None:
        """After a lost connection: backoff, LISTEN, then a full read (C1) beside the
        notifications that arrive meanwhile (T2)."""
        backoff = self.retry.backoff()
        delay = backoff.next_delay()
        while not self._closing.is_set():
            await pause(delay, self._closing)
            if self._closing.is_set():
                return
            try:
                conn = await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.failures += 1
                delay = backoff.next_delay()
                error = exc.message if isinstance(exc, StoreError) else describe(exc)
                log.warning("config_store_unreachable", where=self.where, error=error, retry_in=delay)
                continue
            self.conn = conn
            self._start_read(full=True)
            self.stats.reconnects += 1
            log.info("config_store_reconnected", where=self.where)
            return

    def _on_notify(self, conn: Any, pid: int, channel: str, payload: object) -> None:
        self.stats.notifications += 1
        if payload == NOTIFY_ALL:
            self._reload_all = True
        else:
            self._pending[str(payload)] = None
        self._wake.set()

    def _on_terminated(self, conn: Any) -> None:
        if conn is self.conn and not self._closing.is_set():
            self.lose(conn, None)
