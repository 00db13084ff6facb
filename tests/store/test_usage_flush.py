"""Usage counts of events spread over many communities (DESIGN §12, T1, T6): a flush writes them
in chunks of `FLUSH_CHUNK` buckets, one statement each, so no statement's preparation holds the
event loop long, and every bucket still arrives once."""

from __future__ import annotations

import time

import pytest

from tests.support.store import run_sql
from worker.core.reasons import Outcome
from worker.core.records import Output
from worker.runtime.usage_recorder import FLUSH_CHUNK, UsageRecorder

pytestmark = pytest.mark.integration


async def test_a_spread_flush_is_written_in_chunks(store_url: str) -> None:
    communities = [f"c{n:05d}" for n in range(2 * FLUSH_CHUNK + 500)]
    usage = UsageRecorder(store_url, configured=lambda community: True)
    outputs = [Output(Outcome.ENRICHED, {"community_id": c}, None, kid="k1") for c in communities]
    usage.count(outputs, time.time())
    try:
        assert await usage.flush()
    finally:
        await usage.close()
    assert usage.statements == 3 and usage.rows_written == 2 * len(communities) and usage.pending == 0
    health = run_sql(store_url, "SELECT count(*), sum(events) FROM integration_health_minute")[0]
    keys = run_sql(store_url, "SELECT count(*), sum(verified) FROM key_usage_total")[0]
    assert tuple(health) == tuple(keys) == (len(communities), len(communities))
