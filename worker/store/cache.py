"""The worker's cache of the configuration store (DESIGN §5, rules C1–C4).

- C1: `start()` loads every community, then follows changes: the LISTEN connection gets
  the community id of every committed change (triggers, see the migrations) and that one
  community is read again; after a lost connection the cache reconnects with capped
  backoff and reads everything again; a full read also runs every `refresh_interval` as
  a safety net, and a ping every `health_interval` finds a connection that died silently.
  LISTEN starts before each full read, so no change falls between the two.
- C2: a removed key leaves the cache as soon as the notification is read (milliseconds).
- C3: while PostgreSQL is down, `get` keeps serving what was loaded and `degraded` is
  true; a community that is not cached raises `ConfigUnavailable` (the event waits), it
  is never reported as unknown.
- C4: `on_keys_changed(community_id)` is called when a community's keys change or it is
  removed, so the verified-token cache can drop that community's entries.

`get` is the hot path: one dict lookup, no I/O. Everything else runs in one background
task; queries share the one connection under a lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog

from worker.core.community import Community, ConfigUnavailable
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
from worker.store.lifecycle import read_tombstones
from worker.store.loading import read_specs
from worker.store.migrate import check_schema

log = structlog.get_logger(__name__)

_DB_ERRORS = (asyncpg.PostgresError, *TRANSIENT_ERRORS)
#: Unknown ids remembered at most (a flood of distinct ids cannot grow memory without bound).
NEGATIVE_MAX_ENTRIES = 10_000
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
    keys_changed: int = 0
    negative_hits: int = 0
    direct_reads: int = 0
    direct_reads_limited: int = 0


class ConfigCache:
    """A `CommunityLookup` that follows the configuration store (C1–C4)."""

    def __init__(
        self,
        dsn: str,
        *,
        refresh_interval: float = 60.0,
        reconnect_backoff: tuple[float, float] = (0.1, 5.0),
        negative_ttl: float = 1.0,
        direct_reads_per_second: float = 20.0,
        query_timeout: float = 5.0,
        health_interval: float = 5.0,
        on_keys_changed: Callable[[str], object] | None = None,
    ) -> None:
        self._dsn = dsn
        self.refresh_interval = refresh_interval
        self.backoff_initial, self.backoff_max = reconnect_backoff
        self.negative_ttl = negative_ttl
        self.direct_reads_per_second = direct_reads_per_second
        self._read_budget = direct_reads_per_second
        self._budget_at = time.monotonic()
        self.query_timeout = query_timeout
        self.health_interval = health_interval
        self.on_keys_changed = on_keys_changed
        self.stats = CacheStats()
        #: Epoch seconds of the last complete read of the store (None before the first).
        self.last_loaded_at: float | None = None
        #: Epoch seconds of the last exchange proving the cache follows the store.
        self._confirmed_at: float | None = None
        self._communities: dict[str, Community] = {}
        self._broken: set[str] = set()  # rows the model refuses, with no good version cached
        self._negative: dict[str, float] = {}  # community id -> monotonic expiry
        self._loaded = False
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._pending: set[str] = set()
        self._reload_all = False
        self._task: asyncio.Task[None] | None = None
        self._where = address(dsn)

    # ------------------------------------------------------------ the lookup (hot path)

    def get(self, community_id: str, /) -> Community | None:
        """The cached community; None only when it is known not to exist (V2, C3)."""
        community = self._communities.get(community_id)
        if community is not None:
            return community
        if community_id in self._broken:  # say why it waits (/readyz, K9)
            raise ConfigUnavailable(f"community {community_id}: its stored configuration is invalid")
        if self._conn is not None and self._loaded:
            return None
        raise ConfigUnavailable(
            f"community {community_id} is not cached and the configuration store cannot be read now"
        )

    async def refresh_community(self, community_id: str) -> Community | None:
        """Read one community now, bypassing the cache (before a verdict of unknown_community).

        The store cannot be hammered by events for unknown ids: an id found absent is not
        read again for `negative_ttl` seconds, and beyond `direct_reads_per_second` (many
        distinct unknown ids) the answer is the cache's own, which follows the store.
        ConfigUnavailable on outage.
        """
        now = time.monotonic()
        expiry = self._negative.get(community_id)
        if expiry is not None and now < expiry:
            self.stats.negative_hits += 1
            return None
        conn = self._conn
        if conn is None:
            raise ConfigUnavailable(f"community {community_id}: the configuration store cannot be read now")
        self._read_budget = min(
            self.direct_reads_per_second,
            self._read_budget + (now - self._budget_at) * self.direct_reads_per_second,
        )
        self._budget_at = now
        if self._read_budget < 1:
            self.stats.direct_reads_limited += 1
            return self.get(community_id)
        self._read_budget -= 1
        self.stats.direct_reads += 1
        try:
            async with self._lock:
                await self._reload_one(conn, community_id)
        except Exception as exc:
            self._lose(conn, exc)
            raise ConfigUnavailable(
                f"community {community_id}: the configuration store cannot be read now"
            ) from None
        community = self._communities.get(community_id)
        if community is None and community_id in self._broken:
            raise ConfigUnavailable(f"community {community_id}: its stored configuration is invalid")
        if community is None:
            if len(self._negative) >= NEGATIVE_MAX_ENTRIES:
                self._negative.clear()
            self._negative[community_id] = time.monotonic() + self.negative_ttl
        return community

    # ------------------------------------------------------------ observable state

    @property
    def degraded(self) -> bool:
        """True while the store cannot be followed: serving the last loaded configuration."""
        return self._conn is None

    @property
    def loaded(self) -> bool:
        return self._loaded

    def config_age_seconds(self) -> float | None:
        """How stale the configuration may be: seconds since the cache last proved it follows
        the store (a read, or a ping of the LISTEN connection). Near 0 while following, it
        grows from the start of an outage (C3). None before the first load."""
        return None if self._confirmed_at is None else max(0.0, time.time() - self._confirmed_at)

    def __len__(self) -> int:
        return len(self._communities)

    def community_ids(self) -> list[str]:
        return sorted(self._communities)

    # ------------------------------------------------------------ lifecycle

    async def start(self, timeout: float | None = None) -> None:
        """Load everything, then follow changes. Retries an unreachable store with backoff;
        StoreUnavailable when `timeout` passes first, SchemaMissing at once (run
        `identity-worker db migrate`)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = self.backoff_initial
        while True:
            try:
                await self._connect_and_load()
                break
            except (SchemaMissing, StoreMisconfigured):  # K10: fatal, retrying cannot fix them
                raise
            except StoreError as exc:
                self.stats.failures += 1
                log.warning("config_store_unreachable", where=self._where, error=exc.message, retry_in=delay)
                if deadline is not None and time.monotonic() + delay > deadline:
                    raise StoreUnavailable(
                        f"the configuration store at {self._where} did not answer within {timeout} s: "
                        + exc.message
                    ) from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
        self._task = asyncio.create_task(self._run(), name="config-cache")

    async def close(self) -> None:
        self._closing.set()
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=2)
            conn.terminate()

    async def __aenter__(self) -> ConfigCache:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------ following the store

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
            async with self._lock:
                await self._load_all(conn)
        except BaseException as exc:
            conn.terminate()
            if isinstance(exc, _DB_ERRORS):
                raise translate(exc, self._dsn) from None
            raise
        self._conn = conn
        log.info("config_store_following", where=self._where, communities=len(self._communities))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_refresh = loop.time() + self.refresh_interval
        next_ping = loop.time() + self.health_interval
        while not self._closing.is_set():
            conn = self._conn
            if conn is None:
                await self._reconnect()
                next_refresh = loop.time() + self.refresh_interval
                next_ping = loop.time() + self.health_interval
                continue
            wait = max(0.0, min(next_refresh, next_ping) - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()
            lost = self._conn is not conn
            if lost:
                continue  # lost meanwhile (termination listener)
            try:
                async with self._lock:
                    if self._reload_all or loop.time() >= next_refresh:
                        self._reload_all = False
                        self._pending.clear()
                        await self._load_all(conn)
                        next_refresh = loop.time() + self.refresh_interval
                    elif self._pending:
                        ids, self._pending = self._pending, set()
                        for community_id in sorted(ids):
                            await self._reload_one(conn, community_id)
                    elif loop.time() >= next_ping:
                        await conn.fetchval("SELECT 1", timeout=self.query_timeout)
                        self._confirmed_at = time.time()
                next_ping = loop.time() + self.health_interval
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._lose(conn, exc)

    async def _reconnect(self) -> None:
        """After a lost connection: capped backoff, then LISTEN and a full read (C1)."""
        delay = self.backoff_initial
        while not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), delay)
            if self._closing.is_set():
                return
            try:
                await self._connect_and_load()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.failures += 1
                error = exc.message if isinstance(exc, StoreError) else describe(exc)
                log.warning("config_store_unreachable", where=self._where, error=error, retry_in=delay)
                delay = min(delay * 2, self.backoff_max)
                continue
            self.stats.reconnects += 1
            log.info("config_store_reconnected", where=self._where)
            return

    def _lose(self, conn: asyncpg.Connection, exc: BaseException | None) -> None:
        """Drop a connection that failed: degraded until `_reconnect` succeeds (C3)."""
        current = conn is self._conn
        if not current:
            return
        self._conn = None
        self.stats.failures += 1
        error = "connection closed" if exc is None else translate(exc, self._dsn).message
        log.warning(
            "config_store_lost",
            where=self._where,
            error=error,
            serving_communities=len(self._communities),
            config_age_seconds=self.config_age_seconds(),
        )
        conn.terminate()
        self._wake.set()

    def _on_notify(self, conn: Any, pid: int, channel: str, payload: object) -> None:
        self.stats.notifications += 1
        if payload == NOTIFY_ALL:
            self._reload_all = True
        else:
            self._pending.add(str(payload))
        self._wake.set()

    def _on_terminated(self, conn: Any) -> None:
        if conn is self._conn and not self._closing.is_set():
            self._lose(conn, None)

    # ------------------------------------------------------------ reading

    async def _load_all(self, conn: asyncpg.Connection) -> None:
        started = time.monotonic()
        specs, invalid = await asyncio.wait_for(read_specs(conn), self.query_timeout)
        tombstones = await asyncio.wait_for(read_tombstones(conn), self.query_timeout)
        previous = self._communities
        fresh = {cid: Community.from_spec(spec, tombstones.get(cid)) for cid, spec in specs.items()}
        broken = set()
        for cid, problems in invalid.items():
            log.error("config_community_invalid", community_id=cid, problems=problems)
            if cid in previous:
                fresh[cid] = previous[cid]  # keep the last good version
            else:
                broken.add(cid)
        self._communities = fresh
        self._broken = broken
        self._negative.clear()
        self._loaded = True
        self.last_loaded_at = self._confirmed_at = time.time()
        self.stats.full_reloads += 1
        for cid, old in previous.items():
            new = fresh.get(cid)
            if new is None or new.keys_version != old.keys_version:
                self._keys_changed(cid)
        log.info(
            "config_loaded",
            communities=len(fresh),
            invalid=len(invalid),
            seconds=round(time.monotonic() - started, 4),
        )

    async def _reload_one(self, conn: asyncpg.Connection, community_id: str) -> None:
        specs, invalid = await asyncio.wait_for(read_specs(conn, community_id), self.query_timeout)
        self.stats.community_reloads += 1
        self._confirmed_at = time.time()
        old = self._communities.get(community_id)
        if community_id in invalid:
            log.error("config_community_invalid", community_id=community_id, problems=invalid[community_id])
            if old is None:
                self._broken.add(community_id)
            return
        self._broken.discard(community_id)
        spec = specs.get(community_id)
        if spec is None:
            self._communities.pop(community_id, None)
        else:
            tombstones = await asyncio.wait_for(read_tombstones(conn, community_id), self.query_timeout)
            self._communities[community_id] = Community.from_spec(spec, tombstones.get(community_id))
            self._negative.pop(community_id, None)
        new = self._communities.get(community_id)
        log.info("config_community_reloaded", community_id=community_id, exists=new is not None)
        if old is not None and (new is None or new.keys_version != old.keys_version):
            self._keys_changed(community_id)

    def _keys_changed(self, community_id: str) -> None:
        self.stats.keys_changed += 1
        if self.on_keys_changed is None:
            return
        try:
            self.on_keys_changed(community_id)
        except Exception as exc:
            log.error("config_keys_changed_callback_failed", community_id=community_id, error=describe(exc))
