"""How one decided batch is published and its input offsets committed (K1, K2, K3, K5).

`TransactionalCommitter` (exactly_once): outputs and offsets in one Kafka transaction.
`AcknowledgedCommitter` (at_least_once): outputs acknowledged first, offsets committed after.

Both raise on any failure and leave recovery (a new producer, a rewind to the committed
offsets) to `worker.runtime.member`, the one owner of the lifecycle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.structs import TopicPartition

from worker.core.contracts import Outcome
from worker.core.pipeline import Output
from worker.settings import Settings


@dataclass(frozen=True, slots=True)
class Decided:
    """One input record and its one output (K1)."""

    record: Any  # aiokafka ConsumerRecord
    output: Output


class MemberExpelled(Exception):
    """The group no longer counts this member (session timed out): its batch must not commit.

    aiokafka's TxnOffsetCommit is version 0, without the group generation (KIP-447), so the
    broker would accept a commit from an expelled member; we check and abort instead.
    """


class Routing:
    """K1/K3: the output topic by outcome; the output partition follows the input partition.

    Output partition = input partition modulo the output topic's partition count, so every
    input partition's outputs stay in one output partition, in input order — for null keys
    too — and a key (which lives in one input partition) keeps its order (K3).
    """

    def __init__(self, settings: Settings, partition_counts: dict[str, int]) -> None:
        self.topics = {
            Outcome.ENRICHED: settings.enriched_topic,
            Outcome.REJECTED: settings.rejected_topic,
            Outcome.DEAD_LETTER: settings.dlq_topic,
        }
        self.partition_counts = partition_counts

    def target(self, decided: Decided) -> tuple[str, int]:
        topic = self.topics[decided.output.outcome]
        return topic, decided.record.partition % self.partition_counts[topic]


def next_offsets(batch: Sequence[Decided]) -> dict[TopicPartition, int]:
    """The offsets to commit: one past the last decided record of each partition."""
    last: dict[tuple[str, int], int] = {}
    for item in batch:
        record = item.record
        last[(record.topic, record.partition)] = record.offset
    return {TopicPartition(topic, partition): offset + 1 for (topic, partition), offset in last.items()}


async def _send_all(producer: Any, routing: Routing, batch: Sequence[Decided]) -> list[asyncio.Future[Any]]:
    """Enqueue every output in batch order: same key, same headers as the input (K1, K3).

    Outputs are appended to one record batch per output partition (aiokafka's `create_batch` /
    `send_batch`), not sent one by one: `send` costs a coroutine, a future and the accumulator's
    bookkeeping per message. A full batch is submitted before the next one is started, so each
    partition's outputs keep their order. Returns one future per submitted batch.
    """
    builders: dict[tuple[str, int], Any] = {}
    futures: list[asyncio.Future[Any]] = []
    for item in batch:
        target = routing.target(item)
        record = item.record
        value = item.output.to_json()
        headers = list(record.headers) if record.headers else []
        builder = builders.get(target)
        if builder is None:
            builder = builders[target] = producer.create_batch()
        if builder.append(timestamp=None, key=record.key, value=value, headers=headers) is None:
            futures.append(await producer.send_batch(builder, target[0], partition=target[1]))
            builder = builders[target] = producer.create_batch()
            builder.append(timestamp=None, key=record.key, value=value, headers=headers)  # a first one fits
    for (topic, partition), builder in builders.items():
        futures.append(await producer.send_batch(builder, topic, partition=partition))
    return futures


async def _delivered(producer: Any, futures: list[asyncio.Future[Any]]) -> None:
    """Raise unless every output was acknowledged (K1): a failed send must never commit.

    `producer.flush()` waits for everything enqueued; the futures are then read without
    `gather` (a callback and a loop turn each). Every exception is retrieved, the first raised.
    """
    await producer.flush()
    errors = []
    for future in futures:
        if not future.done():  # not expected once flushed; correct either way
            await asyncio.wait([future])
        error = future.exception()
        if error is not None:
            errors.append(error)
    if errors:
        raise errors[0]


class TransactionalCommitter:
    """K2 exactly_once: begin → outputs → offsets → commit, in one transaction per batch."""

    def __init__(self, group_id: str, routing: Routing, is_member: Callable[[], bool]) -> None:
        self.group_id = group_id
        self.routing = routing
        self.is_member = is_member

    async def commit(
        self, producer: Any, consumer: Any, batch: Sequence[Decided], offsets: dict[TopicPartition, int]
    ) -> None:
        """`offsets`: the next offset per input partition, past control records too (K11)."""
        await producer.begin_transaction()
        futures = await _send_all(producer, self.routing, batch)
        await producer.send_offsets_to_transaction(offsets, self.group_id)
        await _delivered(producer, futures)
        if not self.is_member():
            raise MemberExpelled("the consumer group expelled this member; aborting its batch")
        await producer.commit_transaction()

    async def abort(self, producer: Any) -> None:
        await producer.abort_transaction()


class AcknowledgedCommitter:
    """K2 at_least_once: every output acknowledged (acks=all, idempotent), then the offsets."""

    def __init__(self, routing: Routing) -> None:
        self.routing = routing

    async def commit(
        self, producer: Any, consumer: Any, batch: Sequence[Decided], offsets: dict[TopicPartition, int]
    ) -> None:
        futures = await _send_all(producer, self.routing, batch)
        await _delivered(producer, futures)
        await consumer.commit(offsets)

    async def abort(self, producer: Any) -> None:
        """Nothing to undo: acknowledged outputs stay, their offsets are redone (duplicates)."""
