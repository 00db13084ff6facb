"""The local stack's real services do what the worker relies on (DESIGN section 8).

These tests are the evidence for the Kafka version pinned in deploy/local/stack: the
broker must serve aiokafka's transactional producer, `send_offsets_to_transaction` and
`read_committed` consumers (K2), and consumer groups that split and rebalance partitions
(K7); PostgreSQL must deliver LISTEN/NOTIFY through asyncpg (C1).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.support.kafka import create_topics, read_all

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def started(client: AIOKafkaProducer | AIOKafkaConsumer) -> AsyncIterator[None]:
    await client.start()
    try:
        yield
    finally:
        await client.stop()


async def test_kafka_transaction_commits_outputs_with_offsets_and_hides_aborted_ones(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    """K2: a transactional producer writes outputs and the input offsets atomically
    (`send_offsets_to_transaction`); `read_committed` readers see committed outputs only;
    an aborted transaction publishes neither its outputs nor its offsets."""
    source, sink = unique_topic("it-txn-in"), unique_topic("it-txn-out")
    group = unique_topic("it-txn-group")
    await create_topics(kafka_bootstrap, {source: 1, sink: 1})
    tp = TopicPartition(source, 0)

    plain = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    async with started(plain):
        for i in range(3):
            await plain.send_and_wait(source, f"in-{i}".encode(), key=f"k{i}".encode())

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=f"it-{uuid.uuid4().hex}")
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    async with started(producer), started(consumer):
        records = []
        deadline = time.monotonic() + 30
        while len(records) < 3:
            assert time.monotonic() < deadline, f"consumed only {records}"
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
        assert [r.value for r in records] == [b"in-0", b"in-1", b"in-2"]

        # Transaction 1 (committed): outputs for in-0 and in-1 with the offset after in-1.
        async with producer.transaction():
            for r in records[:2]:
                await producer.send(sink, b"out-" + r.value, key=r.key)
            await producer.send_offsets_to_transaction({tp: records[1].offset + 1}, group)

        # Transaction 2 (aborted): output for in-2 and its offset, then abort.
        await producer.begin_transaction()
        await producer.send(sink, b"out-" + records[2].value, key=records[2].key)
        await producer.send_offsets_to_transaction({tp: records[2].offset + 1}, group)
        await producer.abort_transaction()

    committed = await read_all(kafka_bootstrap, sink, isolation_level="read_committed")
    assert [(r.key, r.value) for r in committed] == [(b"k0", b"out-in-0"), (b"k1", b"out-in-1")]
    # The aborted output really reached the log: only read_committed hides it.
    everything = await read_all(kafka_bootstrap, sink, isolation_level="read_uncommitted")
    assert [r.value for r in everything] == [b"out-in-0", b"out-in-1", b"out-in-2"]

    # The group's committed offset is transaction 1's, not the aborted transaction 2's.
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    assert offsets[tp].offset == 2


async def _poll_until(
    consumers: list[AIOKafkaConsumer], done: Callable[[], bool], timeout_s: float = 45.0
) -> None:
    """Keep every member polling (as a worker does) until `done()` or the timeout."""
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "consumer group did not settle in time"
        await asyncio.gather(*(c.getmany(timeout_ms=100) for c in consumers))


async def test_consumer_group_of_two_splits_partitions_and_rebalances(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    """K7: processes share the work as one consumer group: two members split the
    partitions (disjoint, complete), each record goes to the member owning its partition,
    and when one member leaves the other takes every partition back (rebalance)."""
    topic, group = unique_topic("it-group"), unique_topic("it-group")
    await create_topics(kafka_bootstrap, {topic: 4})
    everything = {TopicPartition(topic, p) for p in range(4)}

    def member() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            session_timeout_ms=6000,
            heartbeat_interval_ms=500,
        )

    a, b = member(), member()
    async with started(a):
        await _poll_until([a], lambda: a.assignment() == everything)
        async with started(b):
            # Settled: both own partitions, none twice, none missing (each member updates
            # its own view when its rejoin completes, so wait for the two to agree).
            await _poll_until(
                [a, b],
                lambda: (
                    bool(a.assignment())
                    and bool(b.assignment())
                    and not a.assignment() & b.assignment()
                    and a.assignment() | b.assignment() == everything
                ),
            )
            assert len(a.assignment()) == len(b.assignment()) == 2

            # Positions resolved ("latest") before producing, so no record is missed.
            for c in (a, b):
                for tp in c.assignment():
                    await c.position(tp)
            producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
            async with started(producer):
                for p in range(4):
                    await producer.send_and_wait(topic, f"p{p}".encode(), partition=p)
            got: dict[str, list[tuple[int, bytes]]] = {"a": [], "b": []}
            deadline = time.monotonic() + 30
            while len(got["a"]) + len(got["b"]) < 4:
                assert time.monotonic() < deadline, f"received only {got}"
                for name, c in (("a", a), ("b", b)):
                    for tp, batch in (await c.getmany(timeout_ms=100)).items():
                        got[name].extend((tp.partition, r.value) for r in batch)
            assert {p for p, _ in got["a"]} == {tp.partition for tp in a.assignment()}
            assert {p for p, _ in got["b"]} == {tp.partition for tp in b.assignment()}
            assert sorted(v for _, v in got["a"] + got["b"]) == [b"p0", b"p1", b"p2", b"p3"]
        # b left the group (LeaveGroup on stop): a gets every partition back.
        await _poll_until([a], lambda: a.assignment() == everything)


async def test_postgres_listen_notify_reaches_a_listener(database_url: str) -> None:
    """C1: the worker LISTENs for configuration changes; a committed `pg_notify` reaches
    the listening asyncpg connection with its payload (the community id), a rolled-back
    one never does."""
    channel = f"it_{uuid.uuid4().hex[:12]}"
    received: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(database_url)
    writer = await asyncpg.connect(database_url)
    try:
        await listener.add_listener(channel, lambda _c, _pid, _ch, payload: received.put_nowait(payload))
        tx = writer.transaction()
        await tx.start()
        await writer.execute("SELECT pg_notify($1, 'rolled-back')", channel)
        await tx.rollback()
        async with writer.transaction():
            await writer.execute("SELECT pg_notify($1, 'acme')", channel)
        assert await asyncio.wait_for(received.get(), timeout=5) == "acme"
        await asyncio.sleep(0.2)
        assert received.empty()
    finally:
        await listener.close()
        await writer.close()


async def test_database_url_is_a_database_of_this_session(database_url: str, admin_database_url: str) -> None:
    """Each pytest session works in its own database (created for it, dropped after it),
    so sessions sharing one stack never see each other's tables."""
    assert database_url != admin_database_url
    conn = await asyncpg.connect(database_url)
    try:
        name = await conn.fetchval("SELECT current_database()")
    finally:
        await conn.close()
    assert name.startswith("iw_test_")
