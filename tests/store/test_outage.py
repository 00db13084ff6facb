"""PostgreSQL stopped under a running cache (DESIGN §5 C3, K8), on a private server: the
shared stack's server is used by other tests at the same time and is never stopped.

While the server is down the cache serves what it loaded and says it is degraded; an event
for a community it does not hold waits (ConfigUnavailable), it is never rejected; when the
server is back the cache reconnects, reads everything and follows changes again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator

import asyncpg
import pytest

from tests.support.private_stack import PrivatePostgres, private_postgres
from tests.support.store import (
    RECEIVED_AT,
    SECRET,
    SECRET_2,
    hs256_token,
    hs_key,
    migrated,
    signed_event,
    wait_until,
    write,
)
from worker.backoff import RetryPolicy
from worker.core.community import ConfigUnavailable
from worker.core.config import CommunitySpec
from worker.core.pipeline import process_event
from worker.core.reasons import Mode, Outcome, Reason
from worker.core.records import Output
from worker.core.times import parse_rfc3339
from worker.store import repository as repo
from worker.store.cache import ConfigCache

pytestmark = pytest.mark.integration

NOW = parse_rfc3339(RECEIVED_AT).timestamp() + 1
OLD_TOKEN = hs256_token(SECRET, "k1", exp=int(NOW) + 7200)
NEW_TOKEN = hs256_token(SECRET_2, "k2", exp=int(NOW) + 7200)


@pytest.fixture
def server() -> Iterator[PrivatePostgres]:
    with private_postgres() as pg:
        yield pg


def run(community_id: str, token: str, cache: ConfigCache) -> Output:
    return process_event(signed_event(community_id, token), lookup=cache, now=NOW)


async def write_when_back(dsn: str, action: Callable[[asyncpg.Connection], Awaitable[object]]) -> None:
    """The server accepts connections a moment after pg_ctl says it started."""
    for _ in range(100):
        try:
            await write(dsn, action)
            return
        except (OSError, asyncpg.CannotConnectNowError):
            await asyncio.sleep(0.05)
    raise AssertionError("the restarted server never accepted the change")


async def test_an_outage_is_served_from_the_cache_and_recovered(server: PrivatePostgres) -> None:
    dsn = server.dsn
    await migrated(dsn)
    keys = [hs_key("k1", SECRET), hs_key("k9", SECRET_2)]  # k1 can be removed later: S1 keeps k9
    await write(dsn, lambda conn: repo.add_community(conn, CommunitySpec(id="acme", jwt_keys=keys)))
    cache = ConfigCache(dsn, retry=RetryPolicy(0.1, 1.0), health_interval=1.0)
    await cache.start(timeout=10)
    try:
        assert run("acme", OLD_TOKEN, cache).outcome is Outcome.ENRICHED
        assert run("gamma", OLD_TOKEN, cache).reason is Reason.UNKNOWN_COMMUNITY  # store up: a verdict

        await asyncio.to_thread(server.stop)
        await wait_until(lambda: cache.degraded, 5.0, "degraded")
        await asyncio.sleep(1.5)  # several reconnection attempts fail meanwhile

        # C3: verification goes on with the cached configuration...
        acme = cache.get("acme")
        assert acme is not None and "k1" in acme.keys
        assert run("acme", OLD_TOKEN, cache).outcome is Outcome.ENRICHED
        # ...and an uncached community waits: no verdict caused by the outage (V2, K8).
        with pytest.raises(ConfigUnavailable):
            run("gamma", OLD_TOKEN, cache)
        with pytest.raises(ConfigUnavailable):
            await cache.refresh_community("gamma")
        assert cache.degraded
        assert cache.stats.failures >= 2
        age = cache.config_age_seconds()
        assert age is not None and age >= 1.5

        # Back up: changes made right away are followed, whether they land before the
        # reconnection (full read) or after it (notification).
        await asyncio.to_thread(server.start)
        await write_when_back(
            dsn,
            lambda conn: repo.add_community(
                conn, CommunitySpec(id="gamma", jwt_keys=[hs_key("k2", SECRET_2)])
            ),
        )
        await wait_until(lambda: not cache.degraded, 5.0, "recovered")
        assert cache.stats.reconnects == 1
        await wait_until(lambda: cache.get("gamma") is not None, 1.0, "gamma")
        assert run("gamma", NEW_TOKEN, cache).outcome is Outcome.ENRICHED
        age = cache.config_age_seconds()
        assert age is not None and age < 1.5

        await write(dsn, lambda conn: repo.remove_key(conn, "acme", "k1"))
        await wait_until(lambda: run("acme", OLD_TOKEN, cache).reason is Reason.UNKNOWN_KID, 1.0, "removal")
    finally:
        await cache.close()


async def test_start_waits_for_a_store_that_is_down(server: PrivatePostgres) -> None:
    dsn = server.dsn
    await migrated(dsn)
    spec = CommunitySpec(id="acme", signed_identities=Mode.REJECT)  # S1: no key, so reject mode
    await write(dsn, lambda conn: repo.add_community(conn, spec))
    await asyncio.to_thread(server.stop)
    cache = ConfigCache(dsn, retry=RetryPolicy(0.1, 0.5))
    starting = asyncio.create_task(cache.start(timeout=30))
    try:
        await asyncio.sleep(1.0)
        assert not starting.done()
        with pytest.raises(ConfigUnavailable):
            cache.get("acme")
        await asyncio.to_thread(server.start)
        await asyncio.wait_for(starting, 10)
        assert cache.get("acme") is not None and not cache.degraded
        assert cache.stats.failures >= 2
    finally:
        starting.cancel()
        await cache.close()
