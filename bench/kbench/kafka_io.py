"""Kafka side of the benchmark: fresh topics, producing raw events, collecting outputs.

Delay of one event = wall time at which the collector (a read_committed consumer) received its
output − the raw record's Kafka timestamp (CreateTime, set by our producer at send, no linger).
The broker answers a waiting read_committed fetch as soon as the last stable offset passes
the fetch position (the commit's markers are written), so the consumption time is the
commit time plus one fetch round trip; `fetch_max_wait_ms` (20 ms) only bounds an empty wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.support.worker import Topics as WorkerTopics
from worker.kafka.security import client_options  # the worker's security variables (issue 17)


@dataclass(frozen=True)
class Topics(WorkerTopics):
    """The worker's topics (the suite's `Topics`) and the pass-through reference's copy topic."""

    passthrough: str

    @classmethod
    def fresh(cls, prefix: str) -> Topics:
        return cls(*(f"{prefix}.identity.{name}" for name in ("raw", "enriched", "rejected", "dlq", "copy")))


async def create_topics(
    bootstrap: str, names: Sequence[str], partitions: int, configs: dict[str, str] | None = None
) -> None:
    """`names` with `partitions` each, replication 1; `configs`: topic settings for every one."""
    admin = AIOKafkaAdminClient(**client_options(bootstrap))
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(name, num_partitions=partitions, replication_factor=1, topic_configs=configs or {})
                for name in names
            ]
        )
    finally:
        await admin.close()


def _producer(bootstrap: str, linger_ms: int = 5) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **client_options(bootstrap), enable_idempotence=True, linger_ms=linger_ms, max_batch_size=256 * 1024
    )


async def produce_backlog(bootstrap: str, topic: str, values: Sequence[bytes], first_key: int = 0) -> None:
    """All values as fast as possible; keys are the event index (outputs carry the same key, K1)."""
    producer = _producer(bootstrap)
    await producer.start()
    try:
        futures = []
        for i, value in enumerate(values):
            futures.append(await producer.send(topic, value, key=str(first_key + i).encode()))
            if len(futures) >= 5000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def produce_paced(
    bootstrap: str,
    topic: str,
    values: Sequence[bytes],
    rate: float,
    sent: dict[int, float],
    first_key: int = 0,
) -> float:
    """Values at `rate` events/s, timestamp = send time (also stored in `sent`). Returns the achieved rate.

    No linger: each record leaves at once, so its delay is the worker's, not the harness's.
    Acknowledged sends are checked and dropped as the level goes (`_unacknowledged`): one
    `gather` of a whole level's futures at its end held this loop before the last records
    left (57 / 131 / 391 ms for 17 000 / 42 600 / 85 200 records), a "delay" of the harness's."""
    producer = _producer(bootstrap, linger_ms=0)
    await producer.start()
    try:
        futures: list[asyncio.Future[object]] = []
        start = time.time()
        for i, value in enumerate(values):
            due = start + i / rate
            delay = due - time.time()
            if delay > 0.005:
                await asyncio.sleep(delay)
            stamp = int(time.time() * 1000)
            sent[first_key + i] = stamp / 1000
            futures.append(
                await producer.send(topic, value, key=str(first_key + i).encode(), timestamp_ms=stamp)
            )
            if len(futures) >= 1000:
                futures = _unacknowledged(futures)
        await asyncio.gather(*futures)
        return len(values) / max(time.time() - start, 1e-9)
    finally:
        await producer.stop()


def _unacknowledged(futures: list[asyncio.Future[object]]) -> list[asyncio.Future[object]]:
    """The futures still pending; raises the first failed send among the others."""
    for future in futures:
        if future.done() and future.exception() is not None:
            raise future.exception()  # type: ignore[misc]
    return [future for future in futures if not future.done()]


def ready() -> bool:
    """Nothing: run once in the paced producer's process pool, it starts (spawns and imports)
    that process before the first level, not during it."""
    return True


def produce_paced_apart(
    bootstrap: str, topic: str, values: Sequence[bytes], rate: float, first_key: int
) -> tuple[dict[int, float], float]:
    """`produce_paced` in a process of its own (`runs.paced_runs` runs it in a process pool):
    (send times by key, achieved rate). In the collector's process the two shared one event
    loop: at 15 000 events/s the producer's sends held the loop, the load offered fell short of
    the rate asked (13 700 for 14 750) and outputs were stamped when the loop got to them, not
    when they arrived (a max "delay" of 0.9 s that was the harness's)."""
    sent: dict[int, float] = {}
    achieved = asyncio.run(produce_paced(bootstrap, topic, values, rate, sent, first_key))
    return sent, achieved


@dataclass
class Collected:
    # key (event index) -> wall time the output was received by the read_committed collector
    received: dict[int, float] = field(default_factory=dict)
    by_topic: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    first: float = 0.0
    last: float = 0.0
    # With `parts`: key -> (processed_at, the output record's CreateTime), epoch seconds: the
    # worker's decision and its producer's append, to split a delay into its parts.
    parts: dict[int, tuple[float, float]] = field(default_factory=dict)


class Collector:
    """A read_committed consumer of the output topics, running until `expected` keys arrived."""

    def __init__(self, bootstrap: str, topics: Sequence[str], *, parts: bool = False) -> None:
        self.bootstrap = bootstrap
        self.topics = list(topics)
        self.parts = parts
        self.result = Collected()
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            *self.topics,
            **client_options(self.bootstrap),
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=20,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await self._consumer.start()

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def until(self, expected: int, timeout: float, idle_timeout: float | None = None) -> Collected:
        """Consume until `expected` distinct keys were seen, or timeout / no progress for idle_timeout."""
        assert self._consumer is not None
        res = self.result
        deadline = time.time() + timeout
        last_progress = time.time()
        while len(res.received) < expected and time.time() < deadline:
            if idle_timeout and time.time() - last_progress > idle_timeout:
                break
            batches = await self._consumer.getmany(timeout_ms=200, max_records=10000)
            now = time.time()
            for tp, records in batches.items():
                res.by_topic[tp.topic] = res.by_topic.get(tp.topic, 0) + len(records)
                for record in records:
                    key = int(record.key)
                    if key in res.received:
                        res.duplicates += 1
                        continue
                    res.received[key] = now
                    if self.parts:
                        res.parts[key] = (processed_at(record.value), record.timestamp / 1000)
                    if not res.first:
                        res.first = now
                    res.last = now
                    last_progress = now
        return res


_PROCESSED = b'"processed_at":"'


def processed_at(value: bytes | None) -> float:
    """The output's `processed_at` (RFC 3339 UTC) as epoch seconds; NaN when it has none."""
    if not value:
        return float("nan")
    start = value.find(_PROCESSED)
    if start < 0:
        return float("nan")
    start += len(_PROCESSED)
    text = value[start : value.index(b'"', start)].decode()
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
