"""Input deleted before the group read it is skipped — never silently (K8; issue 27 item 4).

The group committed offset 2 of a partition; records 0–5 are then deleted (retention, or
`kafka-delete-records`). The client's fetch from 2 is out of range and it resets to the log
start, 6: inputs 2–5 are gone. aiokafka logs that at INFO, below what the worker shows; the
worker now warns with the partition and the range and counts
`identity_worker_input_skipped_records{topic,partition}`; the inputs still there are answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from tests.support.kafka import client_options
from tests.support.worker import (
    Outputs,
    in_process_worker,
    new_topics,
    produce_signed,
)

pytestmark = pytest.mark.integration


async def test_input_deleted_before_it_was_read_is_warned_with_its_range_and_counted(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    topics = await new_topics(kafka_bootstrap, unique_topic("i27-skipped"), 1)
    tp = TopicPartition(topics.raw, 0)
    inputs = await produce_signed(kafka_bootstrap, topics.raw, "sk", 10)
    committer = AIOKafkaConsumer(
        **client_options(kafka_bootstrap), group_id=topics.raw, enable_auto_commit=False
    )
    await committer.start()
    try:
        committer.assign([tp])
        await committer.commit({tp: OffsetAndMetadata(2, "")})
    finally:
        await committer.stop()
    admin = AIOKafkaAdminClient(**client_options(kafka_bootstrap))
    await admin.start()
    try:
        await admin.delete_records({tp: RecordsToDelete(6)})
    finally:
        await admin.close()
    with structlog.testing.capture_logs() as logs:
        async with (
            in_process_worker(kafka_bootstrap, topics) as member,
            Outputs(kafka_bootstrap, topics) as outputs,
        ):
            await outputs.wait_for(4, 30)
            await asyncio.sleep(0.5)
            skipped = member.metrics.input_skipped.labels(topics.raw, "0")._value.get()
    assert set(outputs.by_source) == set(inputs[6:]), sorted(outputs.by_source)
    assert skipped == 4
    lines = [line for line in logs if str(line.get("event", "")).startswith("input skipped")]
    assert len(lines) == 1, lines
    assert (
        lines[0]["log_level"],
        lines[0]["partition"],
        lines[0]["first_offset"],
        lines[0]["last_offset"],
    ) == (
        "warning",
        0,
        2,
        5,
    )


async def test_a_seek_to_the_beginning_of_our_own_is_not_reported_as_a_reset(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    """The rewind seeks a partition with nothing committed to its beginning: no warning, no count."""
    from worker.kafka.consumer import InputConsumer
    from worker.settings import load_settings

    topics = await new_topics(kafka_bootstrap, unique_topic("i27-own-seek"), 1)
    tp = TopicPartition(topics.raw, 0)
    await produce_signed(kafka_bootstrap, topics.raw, "os", 5)
    settings = load_settings(
        bootstrap_servers=kafka_bootstrap, group_id=topics.raw, input_topic=topics.raw, metrics_port=0
    )

    async def nothing(_: set[TopicPartition]) -> None:
        return None

    consumer = InputConsumer(settings, on_revoked=nothing, on_assigned=nothing)
    resets: list[tuple[TopicPartition, int, int]] = []
    consumer.on_reset(lambda *reset: resets.append(reset))
    await consumer.start()
    try:
        read: list[int] = []
        for _ in range(100):
            read += [r.offset for r in (await consumer.getmany(200, 10)).get(tp, [])]
            if len(read) >= 5 and read[-1] == 4:
                if len(read) == 10:
                    break
                await consumer.seek_to_beginning(tp)
    finally:
        await consumer.stop()
    assert read == [0, 1, 2, 3, 4] * 2, read
    assert resets == [], resets
