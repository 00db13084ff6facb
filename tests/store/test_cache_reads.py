"""The cache's reads at scale (DESIGN §12, T1, T2), held by mechanism, not by timing: the periodic
read asks only for what changed (rows counted), removed communities leave without a
notification, and a notification is applied while a slow read is still running."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.support.store import SECRET, SECRET_2, hs_key, wait_until, write
from worker.core.community import Community
from worker.core.config import CommunitySpec
from worker.store import refresh as refresh_module
from worker.store import repository as repo
from worker.store.cache import ConfigCache
from worker.store.db import NOTIFY_ALL, NOTIFY_CHANNEL
from worker.store.refresh import Slicer

pytestmark = pytest.mark.integration


def held(cache: ConfigCache, community_id: str) -> Community:
    community = cache.get(community_id)
    assert community is not None, community_id
    return community


async def silently(url: str, statement: str) -> None:
    """A change whose notification is lost (triggers of replica mode off): only a read sees it."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture
async def cache_of(store_url: str) -> AsyncIterator[list[ConfigCache]]:
    made: list[ConfigCache] = []
    yield made
    for cache in made:
        await cache.close()


async def test_a_periodic_read_reads_only_what_changed(store_url: str, cache_of: list[ConfigCache]) -> None:
    """T1: 40 communities stored, one changed, one removed, both without a notification: the
    safety net reads one row for the change and none for the removal, and nothing when
    nothing changed."""

    async def add_all(conn: asyncpg.Connection) -> None:
        for n in range(40):
            await repo.add_community(conn, CommunitySpec(id=f"c{n:02d}", jwt_keys=[hs_key("k1", SECRET)]))

    await write(store_url, add_all)
    cache = ConfigCache(store_url, refresh_interval=0.2)
    cache_of.append(cache)
    await cache.start(timeout=10)
    assert cache.stats.rows_read == 40 and len(cache) == 40

    await silently(store_url, "UPDATE communities SET leeway_seconds = 99 WHERE id = 'c07'")
    await wait_until(lambda: held(cache, "c07").leeway_seconds == 99, 3.0, "the periodic read")
    assert cache.stats.last_refresh_rows == 1 and cache.stats.full_reloads == 1

    refreshes = cache.stats.refreshes
    await wait_until(lambda: cache.stats.refreshes >= refreshes + 2, 3.0, "two more reads")
    assert cache.stats.last_refresh_rows == 0  # nothing changed: nothing read

    await silently(store_url, "DELETE FROM communities WHERE id = 'c13'")
    await wait_until(lambda: cache.get("c13") is None, 3.0, "the removal")
    assert cache.stats.last_refresh_rows == 0 and len(cache) == 39
    assert cache.stats.rows_read == 41 and cache.stats.full_reloads == 1


class GatedSlicer(Slicer):
    """A read made slow on purpose: every row waits for the gate."""

    def __init__(self, gate: asyncio.Event, waiting: asyncio.Event) -> None:
        super().__init__(seconds=0.0)
        self.gate, self.waiting = gate, waiting

    async def pause(self) -> None:
        self.waiting.set()
        await self.gate.wait()


class SlowReads(ConfigCache):
    gate: asyncio.Event
    waiting: asyncio.Event

    def slicer(self, rest: float) -> Slicer:
        return GatedSlicer(self.gate, self.waiting)


async def test_a_notification_is_applied_while_a_slow_read_runs(
    store_url: str, cache_of: list[ConfigCache]
) -> None:
    """T2: a key removed while a full read is held up is refused at once (C2), and the read, whose
    snapshot still had the key, does not put it back when it ends."""
    for n in range(5):
        spec = CommunitySpec(id=f"c{n}", jwt_keys=[hs_key("k1", SECRET), hs_key("k2", SECRET_2)])
        await write(store_url, lambda conn, spec=spec: repo.add_community(conn, spec))  # type: ignore[misc]
    cache = SlowReads(store_url, refresh_interval=3600)
    cache.gate, cache.waiting = asyncio.Event(), asyncio.Event()
    cache.gate.set()
    cache_of.append(cache)
    await cache.start(timeout=10)
    assert cache.stats.full_reloads == 1

    cache.gate.clear()
    cache.waiting.clear()
    await write(store_url, lambda conn: conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, NOTIFY_ALL))
    await asyncio.wait_for(cache.waiting.wait(), 5)  # the full read has begun and is held

    await write(store_url, lambda conn: repo.remove_key(conn, "c3", "k1"))
    await wait_until(lambda: "k1" not in held(cache, "c3").keys, 1.0, "the removal, during the read")
    assert cache.stats.full_reloads == 1  # the read is still running

    cache.gate.set()
    await wait_until(lambda: cache.stats.full_reloads == 2, 5.0, "the read's end")
    assert "k1" not in held(cache, "c3").keys and "k1" in held(cache, "c2").keys


class CountingSlicer(Slicer):
    """Every tick gives the loop back; `seen` records the replaced configuration's size then."""

    def __init__(self, replaced: dict[str, Community], seen: list[int]) -> None:
        super().__init__(seconds=0.0)
        self.replaced, self.seen = replaced, seen

    async def pause(self) -> None:
        self.seen.append(len(self.replaced))
        await asyncio.sleep(0)


class CountedReads(ConfigCache):
    replaced: dict[str, Community]
    seen: list[int]

    def slicer(self, rest: float) -> Slicer:
        return CountingSlicer(self.replaced, self.seen)


async def test_a_full_read_lets_the_replaced_configuration_go_in_slices(
    store_url: str, cache_of: list[ConfigCache], monkeypatch: pytest.MonkeyPatch
) -> None:
    """T1: freeing 100 000 replaced communities at once held the loop ~50 ms; a full read lets
    the configuration it replaced go `RELEASE_BATCH` communities at a time, the loop running
    between batches."""
    monkeypatch.setattr(refresh_module, "RELEASE_BATCH", 4)

    async def add_all(conn: asyncpg.Connection) -> None:
        for n in range(10):
            await repo.add_community(conn, CommunitySpec(id=f"c{n}", jwt_keys=[hs_key("k1", SECRET)]))

    await write(store_url, add_all)
    cache = CountedReads(store_url, refresh_interval=3600)
    cache.replaced, cache.seen = {}, []
    cache_of.append(cache)
    await cache.start(timeout=10)
    cache.replaced = cache._communities  # the configuration the next full read replaces
    cache.seen = []
    await write(store_url, lambda conn: conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, NOTIFY_ALL))
    await wait_until(lambda: cache.stats.full_reloads == 2, 5.0, "the full read")
    assert cache.replaced == {} and len(cache) == 10
    released = [n for n in cache.seen if n < 10]
    assert released[:3] == [6, 2, 0], cache.seen  # 4 at a time, a turn of the loop after each
