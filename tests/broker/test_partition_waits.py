"""A record that must wait holds back only its own partition (issue 11 item 9, K8, K9).

The real runtime in-process against the real broker, with a processor that answers
`ConfigUnavailable` for one community's events while "the store is down" (the cache raises
exactly that for an uncached community during an outage): the waiting partition is paused at
its record and retried on its own backoff; the other partition's events are answered at full
speed meanwhile, and what waits, and why, shows in metrics and /readyz.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from tests.support.private_stack import private_postgres
from tests.support.worker import (
    Outputs,
    Store,
    Topics,
    cli,
    communities_file,
    in_process_worker,
    new_topics,
    produce,
    produce_signed,
    raw_event,
    start_worker,
    stream_values,
    wait_ready,
)
from worker.core.community import ConfigUnavailable
from worker.core.contracts import Source
from worker.core.records import Output
from worker.runtime.decide import pipeline_processor
from worker.settings import load_settings
from worker.store.yaml_io import load_config_file

pytestmark = pytest.mark.integration


async def flowing_latencies(
    bootstrap: str, topics: Topics, outputs: Outputs, rounds: int, prefix: str
) -> list[float]:
    """K9: once partition 0's backoff has grown to seconds, `rounds` rounds of 20 events on
    partition 1 (`<prefix>-<round>-i`); how long each round took to be answered (s)."""
    await asyncio.sleep(3.0)
    latencies = []
    for round_ in range(rounds):
        sent = time.monotonic()
        await produce_signed(bootstrap, topics.raw, f"{prefix}-{round_}", 20, partition=1)
        latencies.append(await outputs.wait_for(20 * (round_ + 1), 30) - sent)
        await asyncio.sleep(0.3)
    return latencies


async def test_a_waiting_record_holds_back_only_its_partition(
    kafka_bootstrap: str, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    config = communities_file(tmp_path)
    topics = await new_topics(kafka_bootstrap, unique_topic("i11-waits"), 2)
    real = pipeline_processor(load_config_file(str(config)), load_settings().limits, None)
    outage = True

    def processor(value: bytes | None, source: Source, now: float) -> Output:
        if outage and value and b'"waits-' in value:
            raise ConfigUnavailable(
                "community acme is not cached and the configuration store cannot be read now"
            )
        return real(value, source, now)

    await produce_signed(kafka_bootstrap, topics.raw, "waits", 20, partition=0)
    async with (
        in_process_worker(
            kafka_bootstrap,
            topics,
            config,
            processor=processor,
            retry_backoff_initial_ms="200",
            retry_backoff_max_ms="4000",
        ) as member,
        Outputs(kafka_bootstrap, topics) as outputs,
    ):
        latencies = await flowing_latencies(kafka_bootstrap, topics, outputs, 5, "flows")
        print(
            f"\nlatency of the flowing partition while the other waits: {[round(t, 2) for t in latencies]} s"
        )
        assert max(latencies) < 1.5, f"the flowing partition was held back: {latencies}"
        problems = member.health.problems()
        gauge = member.metrics.partitions_waiting._value.get()
        retries = member.metrics.infrastructure_retries.labels("store", "ConfigUnavailable")._value.get()
        assert not any(source[0] == 0 for source in outputs.by_source), "nothing answered while it waits"
        outage = False
        await outputs.wait_for(120, 30)
        await outputs.settle(0.5)
        after = member.health.problems(), member.metrics.partitions_waiting._value.get()
    assert gauge == 1 and retries >= 3
    assert any(
        p.startswith("waiting: ") and "[0] waits at offset 0" in p and "ConfigUnavailable" in p
        for p in problems
    )
    assert after == ([], 0), "ready again once the record is answered"
    assert outputs.check_exactly_once([(0, o) for o in range(20)] + [(1, o) for o in range(100)]) == (0, 0)
    names = [data["event_id"] for _, _, data in outputs.records if data["source"]["partition"] == 0]
    assert names == [f"waits-{i}" for i in range(20)], "in order, once, after the wait (K3)"


async def test_a_community_whose_stored_rows_fail_the_model_shows_in_readyz_and_holds_back_only_its_partition(
    kafka_bootstrap: str, store: Store, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    """The store answers, but one community's rows cannot be used (a custom field whose regex
    does not compile, written past the CLI): its events wait (no verdict, C3), /readyz says
    which partition waits and why — the old runtime stayed ready — and the others flow."""
    broken = f"broken-{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(store.url)
    try:
        await conn.execute("INSERT INTO communities (id, signed_identities) VALUES ($1, 'reject')", broken)
        await conn.execute(
            "INSERT INTO custom_fields (community_id, key, label, regex) VALUES ($1, 'f', 'F', '(')", broken
        )
        await _waits_for_the_broken_community(kafka_bootstrap, store, broken, unique_topic, tmp_path)
    finally:  # the session's store is shared: `config apply` elsewhere refuses a broken one
        await conn.execute("DELETE FROM communities WHERE id = $1", broken)
        await conn.close()


async def _waits_for_the_broken_community(
    kafka_bootstrap: str, store: Store, broken: str, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    topics = await new_topics(kafka_bootstrap, unique_topic("i11-broken"), 2)
    now = time.time()
    waiting = [raw_event("w-0", broken, now, identity={"uuid": "v"})]
    await produce(kafka_bootstrap, topics.raw, [(b"k", v, None) for v in waiting], partition=0)
    worker = start_worker(tmp_path, "broken", kafka_bootstrap, store.url, topics)
    try:
        async with Outputs(kafka_bootstrap, topics) as outputs:
            flowing = await produce(
                kafka_bootstrap,
                topics.raw,
                [(b"k", v, None) for v in stream_values(store.acme, 50, now)],
                partition=1,
            )
            await outputs.wait_for(50, 60)
            deadline = time.monotonic() + 20
            while True:
                status, body = await asyncio.to_thread(worker.http, "/readyz")
                if status == 503 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.3)
            _, metrics = await asyncio.to_thread(worker.http, "/metrics")
    finally:
        code = worker.stop()
    assert status == 503 and f"{topics.raw}[0] waits at offset 0" in body, body
    assert "stored configuration is invalid" in body, body
    assert "identity_worker_partitions_waiting 1.0" in metrics
    assert sorted(outputs.by_source) == sorted(flowing), "the waiting record has no verdict; the others flow"
    assert code == 0, worker.tail()


async def test_postgresql_down_one_uncached_community_waits_and_cached_ones_flow_at_full_speed(
    kafka_bootstrap: str, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    """Item 9 with a real outage: a private PostgreSQL is stopped; an event of a community the
    cache does not hold waits on partition 0, events of a cached community on partition 1 are
    answered at once; after the restart the waiting one gets its verdict, exactly once."""
    topics = await new_topics(kafka_bootstrap, unique_topic("i11-pgdown"), 2)
    with private_postgres() as server:
        store = Store(server.dsn, "acme", "shop")
        config = communities_file(tmp_path)
        cli("db", "migrate", env=store.env())
        cli("config", "apply", str(config), env=store.env())
        worker = start_worker(
            tmp_path,
            "pgdown",
            kafka_bootstrap,
            server.dsn,
            topics,
            retry_backoff_initial_ms="200",
            retry_backoff_max_ms="4000",
        )
        try:
            await wait_ready(worker)
            async with Outputs(kafka_bootstrap, topics) as outputs:
                server.stop()
                now = time.time()
                ghost = [raw_event("ghost-0", "never-cached", now, identity={"uuid": "v"})]
                await produce(kafka_bootstrap, topics.raw, [(b"k", v, None) for v in ghost], partition=0)
                latencies = await flowing_latencies(kafka_bootstrap, topics, outputs, 4, "cached")
                print(
                    f"\nlatency of a cached community during the outage: {[round(t, 2) for t in latencies]} s"
                )
                assert max(latencies) < 1.5, f"cached communities were held back: {latencies}"
                status, body = await asyncio.to_thread(worker.http, "/readyz")
                assert status == 503 and f"{topics.raw}[0] waits at offset 0" in body, body
                server.start()
                await outputs.wait_for(81, 60)
                await outputs.settle(0.5)
        finally:
            code = worker.stop()
    assert code == 0, worker.tail()
    assert outputs.check_exactly_once([(0, 0)] + [(1, o) for o in range(80)]) == (0, 0)
    verdict = next(data for _, _, data in outputs.records if data["source"]["partition"] == 0)
    assert (verdict["event_id"], verdict["reason"]) == ("ghost-0", "unknown_community")
