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
from pathlib import Path

import pytest
import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from tests.support.kafka import client_options
from tests.support.worker import (
    Outputs,
    communities_file,
    in_process_worker,
    new_topics,
    produce,
    signed_events,
)

pytestmark = pytest.mark.integration


async def test_input_deleted_before_it_was_read_is_warned_with_its_range_and_counted(
    kafka_bootstrap: str, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    topics = await new_topics(kafka_bootstrap, unique_topic("i27-skipped"), 1)
    tp = TopicPartition(topics.raw, 0)
    inputs = await produce(kafka_bootstrap, topics.raw, [(b"k", v, None) for v in signed_events("sk", 10)])
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
            in_process_worker(kafka_bootstrap, topics, communities_file(tmp_path)) as member,
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
