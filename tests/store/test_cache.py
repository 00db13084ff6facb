"""The worker's store cache on the shared PostgreSQL (DESIGN §5, C1–C4). Stopping the server
is tested against a private one in `test_outage.py`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from tests.support import stack
from tests.support.store import SECRET, SECRET_2, hs_key, wait_until, write
from worker.backoff import RetryPolicy
from worker.core.community import Community, ConfigUnavailable
from worker.core.config import CommunitySpec, JwtKeySpec
from worker.core.reasons import Mode
from worker.store import repository as repo
from worker.store.cache import APPLICATION_NAME, ConfigCache
from worker.store.db import SchemaMissing, StoreUnavailable

pytestmark = pytest.mark.integration

StartCache = Callable[..., Awaitable[ConfigCache]]


def held(cache: ConfigCache, community_id: str) -> Community:
    """The cached community, which the test knows is there."""
    community = cache.get(community_id)
    assert community is not None, community_id
    return community


async def add(url: str, community_id: str, *keys: JwtKeySpec, mode: str | None = None) -> None:
    """Add a community: in require mode when it has keys, else in reject mode (S1)."""
    chosen = Mode(mode) if mode is not None else Mode.REQUIRE if keys else Mode.REJECT
    spec = CommunitySpec(id=community_id, signed_identities=chosen, jwt_keys=list(keys))
    await write(url, lambda conn: repo.add_community(conn, spec))


async def silently(url: str, statement: str, *args: object) -> None:
    """A change that notifies nobody (triggers off): only a full or direct read can see it."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(statement, *args)
    finally:
        await conn.close()


@pytest.fixture
async def caches() -> AsyncIterator[list[ConfigCache]]:
    made: list[ConfigCache] = []
    yield made
    for cache in made:
        await cache.close()


@pytest.fixture
def start_cache(store_url: str, caches: list[ConfigCache]) -> StartCache:
    async def start(**options: object) -> ConfigCache:
        cache = ConfigCache(store_url, **options)  # type: ignore[arg-type]
        caches.append(cache)
        await cache.start(timeout=10)
        return cache

    return start


async def test_start_loads_everything(store_url: str, start_cache: StartCache) -> None:
    await add(store_url, "acme", hs_key("k1", SECRET))
    await add(store_url, "beta", mode="reject")
    before = time.time()
    cache = await start_cache()
    assert len(cache) == 2 and cache.get("beta") is not None
    acme = cache.get("acme")
    assert acme is not None and list(acme.keys) == ["k1"] and acme.mode is Mode.REQUIRE
    assert cache.get("nobody") is None  # loaded and following: certainly unknown (V2)
    assert not cache.degraded
    age = cache.config_age_seconds()
    assert age is not None and 0 <= age <= time.time() - before
    assert cache.stats.full_reloads == 1 and cache.stats.failures == 0


async def test_a_notification_reloads_that_community(store_url: str, start_cache: StartCache) -> None:
    """C1/C2: added, changed and removed communities and keys are followed within a second."""
    changed: list[str] = []
    await add(store_url, "acme", hs_key("k1", SECRET))
    await add(store_url, "beta")
    cache = await start_cache(on_keys_changed=changed.append)
    version = held(cache, "acme").keys_version

    await write(store_url, lambda conn: repo.add_key(conn, "acme", hs_key("k2", SECRET_2)))
    await wait_until(lambda: "k2" in held(cache, "acme").keys, 1.0, "new key")
    assert held(cache, "acme").keys_version != version
    assert changed == ["acme"]  # C4: the verified-token cache drops acme's entries

    await write(store_url, lambda conn: repo.update_community(conn, "acme", {"signed_identities": "reject"}))
    await wait_until(lambda: held(cache, "acme").mode is Mode.REJECT, 1.0, "mode")
    assert changed == ["acme"]  # the mode is not a key change (V3 is checked per event anyway)

    await add(store_url, "gamma")
    await wait_until(lambda: cache.get("gamma") is not None, 1.0, "new community")

    await write(store_url, lambda conn: repo.remove_key(conn, "acme", "k1"))
    await wait_until(lambda: "k1" not in held(cache, "acme").keys, 1.0, "removed key")
    await write(store_url, lambda conn: repo.remove_community(conn, "beta"))
    await wait_until(lambda: cache.get("beta") is None, 1.0, "removed community")
    await write(store_url, lambda conn: repo.remove_community(conn, "acme"))
    await wait_until(lambda: cache.get("acme") is None, 1.0, "removed community")
    assert changed == ["acme", "acme", "beta", "acme"]  # a removal always drops cached tokens
    assert cache.stats.notifications >= 6 and cache.stats.full_reloads == 1


async def test_truncate_reloads_everything(store_url: str, start_cache: StartCache) -> None:
    await add(store_url, "acme", hs_key("k1", SECRET))
    changed: list[str] = []
    cache = await start_cache(on_keys_changed=changed.append)
    await write(store_url, lambda conn: conn.execute("TRUNCATE communities CASCADE"))
    await wait_until(lambda: cache.get("acme") is None, 1.0, "truncate")
    assert cache.stats.full_reloads == 2 and changed == ["acme"]


async def test_periodic_refresh_is_a_safety_net(store_url: str, start_cache: StartCache) -> None:
    await add(store_url, "acme")
    cache = await start_cache(refresh_interval=0.3)
    await silently(store_url, "UPDATE communities SET leeway_seconds = 99 WHERE id = 'acme'")
    await asyncio.sleep(0.05)
    assert held(cache, "acme").leeway_seconds == 10  # no notification
    await wait_until(lambda: held(cache, "acme").leeway_seconds == 99, 2.0, "refresh")
    assert cache.stats.refreshes >= 1 and cache.stats.full_reloads == 1  # T1: what changed, not everything


async def test_refresh_community_reads_through_with_a_negative_ttl(
    store_url: str, start_cache: StartCache
) -> None:
    cache = await start_cache(negative_ttl=0.5)
    assert await cache.refresh_community("late") is None
    await silently(store_url, "INSERT INTO communities (id) VALUES ('late')")
    assert cache.get("late") is None
    assert await cache.refresh_community("late") is None  # within the negative TTL: no query
    assert cache.stats.negative_hits == 1
    await asyncio.sleep(0.55)
    late = await cache.refresh_community("late")
    assert late is not None and late.id == "late"
    assert cache.get("late") is late


async def test_invalid_stored_rows_never_become_unknown_community(
    store_url: str, start_cache: StartCache
) -> None:
    """A regex RE2 refuses passes the CHECK (SQL cannot run RE2): the model catches it on read.
    A community seen before keeps its last good version; one never seen waits (not a verdict)."""
    await add(store_url, "acme")
    await silently(store_url, "INSERT INTO communities (id) VALUES ('broken')")
    await silently(store_url, "INSERT INTO custom_fields VALUES ('broken', 'f', 'F', '(?<=a)b')")
    cache = await start_cache()
    assert cache.get("acme") is not None
    with pytest.raises(ConfigUnavailable):
        cache.get("broken")
    with pytest.raises(ConfigUnavailable):
        await cache.refresh_community("broken")

    good = cache.get("acme")
    await write(
        store_url, lambda conn: conn.execute("INSERT INTO custom_fields VALUES ('acme', 'f', 'F', '(?<=a)')")
    )
    await wait_until(lambda: cache.stats.community_reloads >= 1, 1.0, "reload")
    assert cache.get("acme") is good


async def test_a_lost_listen_connection_reconnects_and_reloads_everything(
    store_url: str, start_cache: StartCache
) -> None:
    """C1: after a lost connection the cache reconnects (capped backoff) and reads everything;
    changes made meanwhile are not missed even though their notification was."""
    await add(store_url, "acme", hs_key("k1", SECRET))
    cache = await start_cache(retry=RetryPolicy(0.05, 0.2))
    admin = await asyncpg.connect(store_url)
    try:
        await admin.execute("SET session_replication_role = replica")  # nobody is notified
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1 AND datname = current_database()",
            APPLICATION_NAME,
        )
        assert killed == 1
        await admin.execute("DELETE FROM jwt_keys WHERE kid = 'k1'")
    finally:
        await admin.close()
    await wait_until(lambda: cache.stats.reconnects == 1, 5.0, "reconnected")
    assert not cache.degraded
    # T2: the full read runs beside the notifications, after the reconnect
    await wait_until(lambda: cache.stats.full_reloads == 2, 5.0, "full read after the reconnect")
    assert "k1" not in held(cache, "acme").keys
    assert cache.stats.full_reloads == 2 and cache.stats.failures >= 1


async def test_start_fails_fast_without_the_schema(admin_database_url: str) -> None:
    empty = await asyncio.to_thread(stack.create_database, admin_database_url)
    try:
        cache = ConfigCache(empty)
        with pytest.raises(SchemaMissing, match="identity-worker db migrate"):
            await cache.start(timeout=5)
        await cache.close()
    finally:
        await asyncio.to_thread(stack.drop_database, admin_database_url, empty)


async def test_start_gives_up_after_its_timeout() -> None:
    from tests.support.ports import free_port

    cache = ConfigCache(
        f"postgresql://identity:hunter2@127.0.0.1:{free_port()}/x", retry=RetryPolicy(0.05, 0.1)
    )
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as failed:
        await cache.start(timeout=0.5)
    assert time.monotonic() - started < 2
    assert "did not answer within 0.5 s" in failed.value.message and "hunter2" not in failed.value.message
    assert cache.stats.failures >= 2
    with pytest.raises(ConfigUnavailable):  # never loaded: nothing can be said about any community
        cache.get("acme")
    await cache.close()


async def test_a_flood_of_unknown_ids_cannot_hammer_the_store(start_cache: StartCache) -> None:
    cache = await start_cache(direct_reads_per_second=5.0)
    started = time.monotonic()
    answers = [await cache.refresh_community(f"unknown-{n}") for n in range(200)]
    elapsed = time.monotonic() - started
    assert answers == [None] * 200  # from the store, then from the cache, which follows it
    assert cache.stats.direct_reads <= 5 + 5 * elapsed + 1
    assert cache.stats.direct_reads_limited >= 200 - cache.stats.direct_reads
