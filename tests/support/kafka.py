"""Small aiokafka helpers for tests against the real broker (DESIGN section 8)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from worker.kafka.security import security_options
from worker.security_settings import KafkaSecurity


class Bootstrap(str):
    """Bootstrap servers of a secured listener (tests/secure): the `str` every helper
    takes, plus the worker's environment for that listener (`KAFKA_SECURITY_PROTOCOL`, …).
    Test clients built with `client_options` speak the same protocol as the worker."""

    env: dict[str, str]
    options: dict[str, Any]

    def __new__(cls, servers: str, env: dict[str, str]) -> Bootstrap:
        bootstrap = super().__new__(cls, servers)
        bootstrap.env = dict(env)
        bootstrap.options = security_options(KafkaSecurity(**env))  # env names are the aliases
        return bootstrap


def client_options(bootstrap: str) -> dict[str, Any]:
    """aiokafka keyword arguments reaching `bootstrap` (a plain str: PLAINTEXT)."""
    return {"bootstrap_servers": str(bootstrap), **getattr(bootstrap, "options", {})}


def worker_env(bootstrap: str) -> dict[str, str]:
    """The environment a worker process needs for `bootstrap`."""
    return {"KAFKA_BOOTSTRAP_SERVERS": str(bootstrap), **getattr(bootstrap, "env", {})}


async def create_topics(
    bootstrap: str,
    topics: dict[str, int],
    configs: dict[str, dict[str, str]] | None = None,
    *,
    replication_factor: int = 1,
) -> None:
    """Create topics ({name: partitions}, `replication_factor` (1: one broker), `configs` by
    name) and wait until they exist."""
    admin = AIOKafkaAdminClient(**client_options(bootstrap))
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(
                    name,
                    num_partitions=n,
                    replication_factor=replication_factor,
                    topic_configs=(configs or {}).get(name),
                )
                for name, n in topics.items()
            ]
        )
        deadline = time.monotonic() + 30
        while not set(topics) <= set(await admin.list_topics()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics {sorted(topics)} not visible after 30 s")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def read_all(
    bootstrap: str,
    topic: str,
    *,
    isolation_level: str = "read_committed",
    timeout_s: float = 20.0,
) -> list[ConsumerRecord]:
    """Every record of every partition of `topic`, up to its current end, without a group."""
    consumer = AIOKafkaConsumer(
        **client_options(bootstrap),
        isolation_level=isolation_level,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout_s
        while any([await consumer.position(tp) < end[tp] for tp in partitions]):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: did not reach the end offsets {end} in {timeout_s} s")
            batches = await consumer.getmany(timeout_ms=200)
            for batch in batches.values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


async def visible(bootstrap: str, tp: TopicPartition) -> tuple[int, int]:
    """(records a read_committed reader sees, last stable offset) of `tp`."""
    consumer = AIOKafkaConsumer(**client_options(bootstrap), isolation_level="read_committed")
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        seen = await consumer.getmany(tp, timeout_ms=2000)
        stable = (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()
    return len(seen.get(tp, [])), stable
