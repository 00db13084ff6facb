"""The worker's cache of the configuration store (DESIGN §5, rules C1–C4).

- C1: `start()` loads every community, then follows changes (`worker.store.following`): the
  LISTEN connection gets the community id of every committed change (triggers, see the
  migrations) and that one community is read again; after a lost connection the cache
  reconnects on the worker's retry policy and reads everything again; a full read also runs
  every `refresh_interval` as a safety net.
- C2: a removed key leaves the cache as soon as the notification is read (milliseconds).
- C3: while PostgreSQL is down, `get` keeps serving what was loaded and `degraded` is
  true; a community that is not cached raises `ConfigUnavailable` (the event waits), it
  is never reported as unknown.
- C4: `on_keys_changed(community_id)` is called when a community's keys change or it is
  removed, so the verified-token cache can drop that community's entries.

`get` is the hot path: one dict lookup, no I/O. A community found absent by a direct read
(`refresh_community`, V2's double check) is remembered for `negative_ttl` seconds: the one
negative cache of "community unknown", dropped as soon as the store says the community exists.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

import asyncpg
import structlog

from worker.backoff import RetryPolicy
from worker.core.community import Community, ConfigUnavailable
from worker.core.config import CommunitySpec
from worker.store.db import describe
from worker.store.following import APPLICATION_NAME, CacheStats, Following
from worker.store.loading import spec_of_row
from worker.store.refresh import (
    SLICE_SECONDS,
    WATERMARK_TRUSTED_SECONDS,
    Slicer,
    changes_since,
    fetch_rows,
    release,
    stored_rows,
    tombstones_of,
)

__all__ = ["APPLICATION_NAME", "CacheStats", "ConfigCache"]

log = structlog.get_logger(__name__)

#: Unknown ids remembered at most (a flood of distinct ids cannot grow memory without bound).
NEGATIVE_MAX_ENTRIES = 10_000


class ConfigCache:
    """A `CommunityLookup` that follows the configuration store (C1–C4)."""

    def __init__(
        self,
        dsn: str,
        *,
        refresh_interval: float = 60.0,
        retry: RetryPolicy | None = None,
        negative_ttl: float = 1.0,
        direct_reads_per_second: float = 20.0,
        query_timeout: float = 5.0,
        health_interval: float = 5.0,
        on_keys_changed: Callable[[str], object] | None = None,
    ) -> None:
        self.negative_ttl = negative_ttl
        self.direct_reads_per_second = direct_reads_per_second
        self._read_budget = direct_reads_per_second
        self._budget_at = time.monotonic()
        self.query_timeout = query_timeout
        self.on_keys_changed = on_keys_changed
        self.stats = CacheStats()
        #: Epoch seconds of the last exchange proving the cache follows the store.
        self._confirmed_at: float | None = None
        self._communities: dict[str, Community] = {}
        self._broken: set[str] = set()  # rows the model refuses, with no good version cached
        self._negative: dict[str, float] = {}  # community id -> monotonic expiry
        self._loaded = False
        #: T1: the read that comes next asks for what changed from here (see `worker.store.refresh`).
        self._watermark: int | None = None
        self._watermark_at: float | None = None
        #: T2: reloads by notification, numbered, so a slower full or periodic read that began
        #: earlier never puts an older version back (id -> the reload's number; ids in flight).
        self._reload_epoch = 0
        self._reloaded: dict[str, int] = {}
        self._reloading: set[str] = set()
        self._following = Following(
            dsn,
            self,
            stats=self.stats,
            retry=retry or RetryPolicy.default(),
            refresh_interval=refresh_interval,
            health_interval=health_interval,
            query_timeout=query_timeout,
        )

    # ------------------------------------------------------------ the lookup (hot path)

    def get(self, community_id: str, /) -> Community | None:
        """The cached community; None only when it is known not to exist (V2, C3)."""
        community = self._communities.get(community_id)
        if community is not None:
            return community
        if community_id in self._broken:  # say why it waits (/readyz, K9)
            raise ConfigUnavailable(f"community {community_id}: its stored configuration is invalid")
        if self._following.conn is not None and self._loaded:
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
        conn = self._following.conn
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
            async with self._following.lock:
                await self.reload_one(conn, community_id)
        except Exception as exc:
            self._following.lose(conn, exc)
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
        return self._following.conn is None

    def config_age_seconds(self) -> float | None:
        """How stale the configuration may be: seconds since the cache last proved it follows
        the store (a read, or a ping of the LISTEN connection). Near 0 while following, it
        grows from the start of an outage (C3). None before the first load."""
        return None if self._confirmed_at is None else max(0.0, time.time() - self._confirmed_at)

    def __len__(self) -> int:
        """The communities held (the `config_communities` metric)."""
        return len(self._communities)

    # ------------------------------------------------------------ lifecycle

    async def start(self, timeout: float | None = None) -> None:
        """Load everything, then follow changes. Retries an unreachable store on the retry
        policy; StoreUnavailable when `timeout` passes first, SchemaMissing at once (run
        `identity-worker db migrate`)."""
        await self._following.start(timeout)

    async def close(self) -> None:
        await self._following.close()

    # ------------------------------------------------------------ reading

    async def refresh(self, conn: asyncpg.Connection, *, full: bool) -> None:
        """Read what changed since the last read (T1), or everything (`full`: start, reconnect,
        a TRUNCATE, or no trusted watermark; C1), on `conn`, a connection of the read's own.

        Rows are prepared in slices (`Slicer`), so the event loop keeps serving events and
        notifications meanwhile (T1, T2). A community reloaded by a notification after this read
        began keeps what that reload found: it is at least as new as this read's snapshot. A
        community whose rows fail the model keeps its last good version.
        """
        started = time.monotonic()
        epoch = self._reload_epoch
        stale = self._watermark_at is None or time.time() - self._watermark_at > WATERMARK_TRUSTED_SECONDS
        since = None if full or stale else self._watermark
        prepared: dict[str, Community] = {}
        invalid: dict[str, list[str]] = {}
        keys_changed: list[str] = []
        slicer = self.slicer(rest=SLICE_SECONDS if self._loaded else 0.0)
        read_at = time.time()
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            changes = await changes_since(conn, since, self.query_timeout)
            async for row in stored_rows(conn, changes.ids, self.query_timeout):
                cid = row["id"]
                spec = spec_of_row(row)
                if isinstance(spec, CommunitySpec):
                    new = prepared[cid] = Community.from_spec(spec, tombstones_of(row))
                    old = self._communities.get(cid)
                    if old is not None and old.keys_version != new.keys_version:
                        keys_changed.append(cid)
                else:
                    invalid[cid] = spec
                await slicer.tick()
        read = len(prepared) + len(invalid)
        self.stats.rows_read += read
        self.stats.last_refresh_rows = read
        fresher = {cid for cid, at in self._reloaded.items() if at > epoch} | self._reloading
        replaced: dict[str, Community] = {}
        if changes.ids is None:
            replaced = self._communities
            gone = self._install_all(prepared, invalid, fresher)
            self.stats.full_reloads += 1
            # T1: 100 000 communities are millions of long-lived objects; a full collection
            # walking them held the loop 0.1-0.3 s. They hold no reference cycles (refcounting
            # frees them when replaced), so the collector is told to leave them alone.
            gc.freeze()
        else:
            gone = self._install_some(changes.ids, prepared, invalid, fresher)
            self.stats.refreshes += 1
        self._reloaded.clear()  # one read at a time (`Following`): the next begins after these
        self._watermark, self._watermark_at = changes.watermark, read_at
        self._loaded = True
        self._confirmed_at = read_at
        for cid in [*keys_changed, *gone]:
            if cid not in fresher:
                self._keys_changed(cid)
        for cid, problems in invalid.items():
            log.error("config_community_invalid", community_id=cid, problems=problems)
        await release(replaced, slicer)
        log.info(
            "config_loaded" if changes.ids is None else "config_refreshed",
            communities=len(self._communities),
            read=read,
            invalid=len(invalid),
            slices=slicer.slices,
            seconds=round(time.monotonic() - started, 4),
        )

    def _install_all(
        self, prepared: dict[str, Community], invalid: dict[str, list[str]], fresher: set[str]
    ) -> list[str]:
        """A full read replaces the cache (one step, no await); returns the ids that left."""
        previous, broken = self._communities, self._broken
        for cid in invalid:
            if cid in previous:
                prepared[cid] = previous[cid]  # keep the last good version
        for cid in fresher:  # what a reload found after this read began stays
            prepared.pop(cid, None)
            if cid in previous:
                prepared[cid] = previous[cid]
        self._broken = {cid for cid in invalid if cid not in previous and cid not in fresher}
        self._broken |= broken & fresher
        self._communities = prepared
        self._negative.clear()
        return [cid for cid in previous if cid not in prepared]

    def _install_some(
        self, ids: list[str], prepared: dict[str, Community], invalid: dict[str, list[str]], fresher: set[str]
    ) -> list[str]:
        """An incremental read updates the communities it read; returns the ids that left."""
        gone = []
        for cid in ids:
            if cid in fresher:
                continue
            self._negative.pop(cid, None)
            if cid in invalid:
                if cid not in self._communities:
                    self._broken.add(cid)
                continue
            self._broken.discard(cid)
            community = prepared.get(cid)
            if community is not None:
                self._communities[cid] = community
            elif self._communities.pop(cid, None) is not None:
                gone.append(cid)
        return gone

    async def reload_many(self, conn: asyncpg.Connection, ids: list[str]) -> None:
        """Read a few communities again, in one statement (the ids of notifications, C1, C2; or
        V2's direct read)."""
        self._reload_epoch += 1
        for cid in ids:
            self._reloaded[cid] = self._reload_epoch
        self._reloading.update(ids)
        try:
            rows = await fetch_rows(conn, ids, self.query_timeout)
        finally:
            self._reloading.difference_update(ids)
        self.stats.community_reloads += len(ids)
        self._confirmed_at = time.time()
        found = {row["id"]: row for row in rows}
        for cid in ids:
            self._reload_row(cid, found.get(cid))

    def _reload_row(self, community_id: str, row: asyncpg.Record | None) -> None:
        old = self._communities.get(community_id)
        spec = None if row is None else spec_of_row(row)
        if isinstance(spec, list):
            log.error("config_community_invalid", community_id=community_id, problems=spec)
            if old is None:
                self._broken.add(community_id)
            return
        self._broken.discard(community_id)
        if spec is None or row is None:
            self._communities.pop(community_id, None)
        else:
            self._communities[community_id] = Community.from_spec(spec, tombstones_of(row))
            self._negative.pop(community_id, None)
        new = self._communities.get(community_id)
        log.info("config_community_reloaded", community_id=community_id, exists=new is not None)
        if old is not None and (new is None or new.keys_version != old.keys_version):
            self._keys_changed(community_id)

    async def reload_one(self, conn: asyncpg.Connection, community_id: str) -> None:
        """Read one community again (V2's direct read)."""
        await self.reload_many(conn, [community_id])

    def slicer(self, rest: float) -> Slicer:
        """How a read gives the event loop back (T1); a test makes it slow on purpose."""
        return Slicer(rest=rest)

    def confirmed(self) -> None:
        self._confirmed_at = time.time()

    def _keys_changed(self, community_id: str) -> None:
        if self.on_keys_changed is None:
            return
        try:
            self.on_keys_changed(community_id)
        except Exception as exc:
            log.error("config_keys_changed_callback_failed", community_id=community_id, error=describe(exc))
