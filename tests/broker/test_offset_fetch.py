"""The group coordinator's loading window never reads as "nothing committed" (K2, K5, K8).

After a broker restart the group coordinator loads its `__consumer_offsets` partition; until
it has, OffsetFetch is answered with a top-level error (14 COORDINATOR_LOAD_IN_PROGRESS, 16
NOT_COORDINATOR) and no partitions. aiokafka 0.14 read that answer as "no committed offset":
`committed()` said None (the worker's rewind then sought the partition to the beginning) and a
newly assigned partition was reset to the beginning, every input answered twice.

Here the real broker's answers to the first OffsetFetch requests are replaced, at aiokafka's
protocol level (the coordinator's `_send_req`), by the very answer the loading coordinator
gives — the same response version, its top-level error code set, no topics — and the worker's
consumer must still read the committed offset and start there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from tests.support.kafka import client_options, create_topics
from tests.support.worker import produce
from worker.kafka.consumer import InputConsumer
from worker.settings import load_settings

pytestmark = pytest.mark.integration

OFFSET_FETCH = 9  # Kafka's API key
LOADING = (14, 16, 14)  # COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR, again


class LoadingWindow:
    """The next `len(codes)` OffsetFetch answers carry these top-level error codes, no partitions."""

    def __init__(self, codes: tuple[int, ...]) -> None:
        self.codes = list(codes)
        self.injected = 0

    def answer(self, response: Any) -> Any:
        if getattr(response, "API_KEY", None) != OFFSET_FETCH or not self.codes:
            return response
        values = {"throttle_time_ms": 0, "topics": [], "error_code": self.codes.pop(0), "tags": {}}
        loading = type(response)(*(values[name] for name in response.SCHEMA.names))
        self.injected += 1
        return type(response).decode(loading.encode())  # exactly as it comes off the wire


@pytest.fixture
def loading_window(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[tuple[int, ...]], LoadingWindow]]:
    windows: list[LoadingWindow] = []
    real = GroupCoordinator._send_req

    async def send_req(self: Any, request: Any) -> Any:
        response = await real(self, request)
        for window in windows:
            response = window.answer(response)
        return response

    monkeypatch.setattr(GroupCoordinator, "_send_req", send_req)

    def open_window(codes: tuple[int, ...]) -> LoadingWindow:
        windows.append(LoadingWindow(codes))
        return windows[-1]

    yield open_window


async def _topic_with_commit(bootstrap: str, name: str, records: int, committed: int) -> TopicPartition:
    """A one-partition topic of `records` records whose group (`name`) committed `committed`."""
    await create_topics(bootstrap, {name: 1})
    await produce(bootstrap, name, [(b"k", b"%d" % i, None) for i in range(records)])
    tp = TopicPartition(name, 0)
    committer = AIOKafkaConsumer(**client_options(bootstrap), group_id=name, enable_auto_commit=False)
    await committer.start()
    try:
        committer.assign([tp])
        await committer.commit({tp: OffsetAndMetadata(committed, "")})
    finally:
        await committer.stop()
    return tp


async def _noop(_: set[TopicPartition]) -> None:
    return None


def _consumer(bootstrap: str, name: str) -> InputConsumer:
    settings = load_settings(bootstrap_servers=bootstrap, group_id=name, input_topic=name, metrics_port=0)
    return InputConsumer(settings, on_revoked=_noop, on_assigned=_noop)


async def test_committed_waits_out_the_coordinators_loading_window(
    kafka_bootstrap: str, unique_topic: Callable[[str], str], loading_window: Any
) -> None:
    name = unique_topic("i27-loading")
    tp = await _topic_with_commit(kafka_bootstrap, name, 10, 7)
    consumer = _consumer(kafka_bootstrap, name)
    await consumer.start()
    try:
        window = loading_window(LOADING)
        committed = await asyncio.wait_for(consumer.committed(tp), 30)
    finally:
        await consumer.stop()
    assert window.injected >= 1, "the loading window was never injected"
    assert committed == 7, f"read {committed!r} during the coordinator's loading window, committed 7"


async def test_a_partition_assigned_during_the_loading_window_starts_at_its_committed_offset(
    kafka_bootstrap: str, unique_topic: Callable[[str], str], loading_window: Any
) -> None:
    name = unique_topic("i27-assigned")
    tp = await _topic_with_commit(kafka_bootstrap, name, 10, 6)
    window = loading_window(LOADING)
    consumer = _consumer(kafka_bootstrap, name)
    await consumer.start()
    try:
        first: int | None = None
        for _ in range(150):
            got = await consumer.getmany(timeout_ms=200, max_records=10)
            if got.get(tp):
                first = got[tp][0].offset
                break
    finally:
        await consumer.stop()
    assert window.injected >= 1, "the loading window was never injected"
    assert first == 6, f"the first record read was offset {first}; the group had committed 6"


async def test_committed_waits_for_a_pending_transactional_offset_commit(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    """KIP-447 `require_stable`: while a previous owner's transaction holding an offset commit
    is open, the offset before it is not an answer (KAFKA-9346): it would redo that batch."""
    name = unique_topic("i27-stable")
    tp = await _topic_with_commit(kafka_bootstrap, name, 10, 3)
    producer = AIOKafkaProducer(**client_options(kafka_bootstrap), transactional_id=f"{name}-txn")
    await producer.start()
    consumer = _consumer(kafka_bootstrap, name)
    await consumer.start()
    try:
        await producer.begin_transaction()
        await producer.send_offsets_to_transaction({tp: 8}, name)
        reading = asyncio.create_task(consumer.committed(tp))
        await asyncio.sleep(1.5)
        answered_early = reading.result() if reading.done() else None
        await producer.commit_transaction()
        committed = await asyncio.wait_for(reading, 30)
    finally:
        await consumer.stop()
        await producer.stop()
    assert answered_early is None, f"answered {answered_early} while the offset commit was pending"
    assert committed == 8
