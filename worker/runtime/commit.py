"""How one decided batch is published and its input offsets committed (K1, K2, K3, K5).

`TransactionalCommitter` (exactly_once): outputs and offsets in one Kafka transaction.
`AcknowledgedCommitter` (at_least_once): outputs acknowledged first, offsets committed after.

Both raise on any failure and leave recovery (a new producer, a rewind to the committed
offsets) to `worker.runtime.member`, the one owner of the lifecycle. What the output topics
accept is read from the broker (`Routing`); an output they would refuse is reshaped (K9).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import structlog
from aiokafka.structs import TopicPartition

from worker.core.contracts import Outcome, Source
from worker.core.fitting import MIN_OUTPUT_BYTES, CannotFit, derived_key, fit
from worker.kafka.clients import producer_max_request_size
from worker.kafka.consumer import InputConsumer, Offsets
from worker.kafka.producer import OutputProducer
from worker.kafka.records import FRAME, headers_bytes, value_budget
from worker.kafka.topics import (
    TOPIC_REFUSALS,
    OutputTopicChanged,
    OutputTopicMissing,
    OutputTopicUnusable,
    TopicFacts,
    existing_topics,
)
from worker.runtime.decide import Decided
from worker.settings import Settings

log = structlog.get_logger(__name__)

# Output topics are read again this often (seconds) even when nothing failed.
REFRESH_SECONDS: Final = 60.0


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

    It also holds what each output topic accepts (`TopicFacts`: partitions, record size,
    compaction), read at start and read again (`prepare`) after any failed commit — the topic
    may have been re-created with fewer partitions, a smaller `max.message.bytes` or
    `cleanup.policy=compact` (K9) — and every `REFRESH_SECONDS`.
    """

    def __init__(self, settings: Settings, facts: dict[str, TopicFacts]) -> None:
        self.settings = settings
        self.topics = {
            Outcome.ENRICHED: settings.enriched_topic,
            Outcome.REJECTED: settings.rejected_topic,
            Outcome.DEAD_LETTER: settings.dlq_topic,
        }
        self.stale = False
        self.problem: str | None = None  # why outputs cannot be written (/readyz), else None
        self._refresh_at = time.monotonic() + REFRESH_SECONDS
        self.update(facts)

    def update(self, facts: dict[str, TopicFacts]) -> None:
        max_request = producer_max_request_size(self.settings)
        self.partition_counts = {topic: fact.partitions for topic, fact in facts.items()}
        # Largest record batch the topic takes (bytes): the broker's limit, and the producer's.
        self.limits = {topic: min(fact.max_message_bytes, max_request) for topic, fact in facts.items()}
        # A record of len(key) + len(value) + headers_bytes at most this fits a batch alone (K9).
        self.room = {topic: limit - FRAME for topic, limit in self.limits.items()}
        self.compacted = frozenset(topic for topic, fact in facts.items() if fact.compacted)
        # Topics whose limit is below the producer's batch size: their batches close early.
        self.batch_caps = {
            topic: limit for topic, limit in self.limits.items() if limit < self.settings.kafka_batch_bytes
        }

    def target(self, decided: Decided) -> tuple[str, int]:
        topic = self.topics[decided.output.outcome]
        return topic, decided.record.partition % self.partition_counts[topic]

    async def prepare(self, producer: OutputProducer) -> None:
        """Before a batch: read the output topics again when stale or due (K9, issue 11 item 7).

        Raises OutputTopicMissing (retriable) while an output topic does not exist, and
        OutputTopicUnusable when one leaves no room for an output.
        """
        if not self.stale and time.monotonic() < self._refresh_at:
            return
        outputs = self.settings.outputs()
        facts = await existing_topics(self.settings, outputs)
        missing = [topic for topic in outputs if topic not in facts]
        if missing:
            self.problem = f"output topic(s) {', '.join(missing)} do not exist"
            raise OutputTopicMissing(self.problem)
        self.problem = unusable_output(self.settings, facts)
        if self.problem is not None:
            raise OutputTopicUnusable(self.problem)
        if self.stale:  # the producer's own view of the partitions must agree with ours
            await producer.refresh_metadata()
        self.update(facts)
        self.stale = False
        self._refresh_at = time.monotonic() + REFRESH_SECONDS


def unusable_output(settings: Settings, facts: dict[str, TopicFacts]) -> str | None:
    """One line when an output topic takes records too small for any output (K10), else None."""
    max_request = producer_max_request_size(settings)
    for topic in settings.outputs():
        fact = facts.get(topic)
        if fact is not None and min(fact.max_message_bytes, max_request) - FRAME < MIN_OUTPUT_BYTES:
            return (
                f"output topic {topic} takes records of at most {fact.max_message_bytes} bytes "
                f"(max.message.bytes); outputs need at least {MIN_OUTPUT_BYTES + FRAME}"
            )
    return None


def next_offsets(batch: Sequence[Decided]) -> Offsets:
    """The offsets to commit: one past the last decided record of each partition."""
    last: dict[tuple[str, int], int] = {}
    for item in batch:
        record = item.record
        last[(record.topic, record.partition)] = record.offset
    return {TopicPartition(topic, partition): offset + 1 for (topic, partition), offset in last.items()}


async def _send_all(
    producer: OutputProducer, routing: Routing, batch: list[Decided]
) -> list[asyncio.Future[Any]]:
    """Enqueue every output in batch order: same key, same headers as the input (K1, K3).

    Outputs are appended to one record batch per output partition (aiokafka's `create_batch` /
    `send_batch`), not sent one by one: `send` costs a coroutine, a future and the accumulator's
    bookkeeping per message. A full batch is submitted before the next one is started, so each
    partition's outputs keep their order. Returns one future per submitted batch.

    An output that cannot be written as it is (larger than its topic takes, keyless on a
    compacted topic) is reshaped first (`_reshaped`, K9) and replaces its item in `batch`.
    Raises OutputTopicChanged when a target partition no longer exists.
    """
    builders: dict[tuple[str, int], Any] = {}
    futures: list[asyncio.Future[Any]] = []
    room, compacted, caps = routing.room, routing.compacted, routing.batch_caps
    # Per batch, not per record (issue 11): (outcome, input partition) → (topic, partition),
    # and the smallest room of any output topic, below which no output needs measuring.
    targets: dict[tuple[Outcome, int], tuple[str, int]] = {}
    least_room = min(room.values(), default=0)
    for index, item in enumerate(batch):
        record = item.record
        output = item.output
        target = targets.get((output.outcome, record.partition))
        if target is None:
            target = targets[(output.outcome, record.partition)] = routing.target(item)
        topic, partition = target
        key = record.key
        value = output.to_json()
        raw_headers = record.headers
        headers = list(raw_headers) if raw_headers else []
        size = len(value) if key is None else len(value) + len(key)
        if headers:
            size += headers_bytes(headers)
        if (size > least_room and size > room[topic]) or (key is None and compacted and topic in compacted):
            item, key, headers = _reshaped(item, routing)
            batch[index] = item
            topic, partition = target = routing.target(item)
            value = item.output.to_json()
            size = len(value) + (len(key) if key is not None else 0) + headers_bytes(headers)
        builder = builders.get(target)
        if builder is None:
            if partition not in await producer.partitions_for(topic):
                raise OutputTopicChanged(f"{topic} has no partition {partition} any more")
            builder = builders[target] = producer.create_batch()
        elif caps and topic in caps and builder.size() + size + FRAME > caps[topic]:
            futures.append(await producer.send_batch(builder, topic, partition=partition))
            builder = builders[target] = producer.create_batch()
        if builder.append(timestamp=None, key=key, value=value, headers=headers) is None:
            futures.append(await producer.send_batch(builder, topic, partition=partition))
            builder = builders[target] = producer.create_batch()
            builder.append(timestamp=None, key=key, value=value, headers=headers)  # a first one fits
    for (topic, partition), builder in builders.items():
        futures.append(await producer.send_batch(builder, topic, partition=partition))
    return futures


def _reshaped(item: Decided, routing: Routing) -> tuple[Decided, bytes | None, list[Any]]:
    """K9: the output as a record its topic takes — shortened, keyed, headers dropped — saying so.

    In order: the record is shortened beside the input's key and headers (`worker.core.fitting`);
    when even its skeleton does not fit, the headers are dropped, then a long key is replaced by
    the derived one. An enriched output is never shortened: it loses its headers first, and
    becomes a dead letter only when it cannot fit without them. Returns (item, key, headers).
    """
    record = item.record
    source = Source(record.topic, record.partition, record.offset)
    headers = list(record.headers) if record.headers else []
    output = item.output
    for _ in range(2):  # an enriched output may become a dead letter, for another topic
        topic = routing.topics[output.outcome]
        key, key_derived = record.key, False
        if key is None and topic in routing.compacted:
            key, key_derived = derived_key(source), True
        attempts = [(key, key_derived, headers)]
        if headers:
            attempts.append((key, key_derived, []))
        derived = derived_key(source)
        if key is not None and not key_derived and len(key) > len(derived):
            attempts.append((derived, True, []))
        for number, (key, key_derived, kept) in enumerate(attempts, 1):
            budget = value_budget(routing.limits[topic], key, kept)
            enriched = output.outcome is Outcome.ENRICHED
            if enriched and number < len(attempts) and len(output.to_json()) > budget:
                continue  # keep the identity whole: drop what frames it first
            try:
                fitted = fit(
                    output,
                    record.value,
                    budget,
                    now=time.time(),
                    key_derived=key_derived,
                    headers_dropped=len(headers) - len(kept),
                )
            except CannotFit:
                continue
            if fitted.outcome is not output.outcome:
                output = fitted
                break
            truncated = bool(fitted.record.get("raw_truncated"))
            if truncated or len(kept) < len(headers) or fitted.outcome is not item.output.outcome:
                log.warning(  # a derived key alone is the steady state of its topic: not logged
                    "output shortened to fit its topic",
                    topic=topic,
                    source_partition=source.partition,
                    source_offset=source.offset,
                    decided=item.output.outcome.value,
                    outcome=fitted.outcome.value,
                    raw_truncated=truncated,
                    headers_dropped=len(headers) - len(kept),
                    key_derived=key_derived,
                )
            return Decided(record, fitted), key, kept
    topic = routing.topics[item.output.outcome]
    raise OutputTopicUnusable(  # K10, issue 27 item 5: the topic and the sizes, in the one fatal line
        f"an output of {source.topic}:{source.partition}:{source.offset} fits no record of {topic} "
        f"(records of at most {routing.limits[topic]} bytes; max.message.bytes)"
    )


async def _delivered(producer: OutputProducer, futures: list[asyncio.Future[Any]]) -> None:
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


async def _publish(
    producer: OutputProducer, routing: Routing, batch: list[Decided], then: Any = None
) -> None:
    """Send the batch's outputs (after `then()`, awaited, while they fly) and wait for them.

    Any failure marks the routing stale, so the next attempt reads the output topics again. A
    refusal of the records themselves (`TOPIC_REFUSALS`: they were fitted to what the topic took,
    so the topic changed) is raised as OutputTopicChanged, retriable: once the topics are read
    again the records are shaped for them (K9, K10).
    """
    try:
        await routing.prepare(producer)
        futures = await _send_all(producer, routing, batch)
        if then is not None:
            await then()
        await _delivered(producer, futures)
    except TOPIC_REFUSALS as exc:
        routing.stale = True
        raise OutputTopicChanged(f"the broker refused an output: {type(exc).__name__}") from exc
    except BaseException:
        routing.stale = True
        raise


class TransactionalCommitter:
    """K2 exactly_once: begin → outputs → offsets → commit, in one transaction per batch."""

    def __init__(self, group_id: str, routing: Routing, is_member: Callable[[], bool]) -> None:
        self.group_id = group_id
        self.routing = routing
        self.is_member = is_member

    async def commit(
        self, producer: OutputProducer, consumer: InputConsumer, batch: list[Decided], offsets: Offsets
    ) -> None:
        """`offsets`: the next offset per input partition, past control records too (K11)."""
        await producer.begin_transaction()

        async def send_offsets() -> None:
            await producer.send_offsets_to_transaction(offsets, self.group_id)

        await _publish(producer, self.routing, batch, send_offsets)
        if not self.is_member():
            raise MemberExpelled("the consumer group expelled this member; aborting its batch")
        await producer.commit_transaction()


class AcknowledgedCommitter:
    """K2 at_least_once: every output acknowledged (acks=all, idempotent), then the offsets.

    After a fault there is nothing to undo: acknowledged outputs stay and their offsets are
    redone (duplicates).
    """

    def __init__(self, routing: Routing) -> None:
        self.routing = routing

    async def commit(
        self, producer: OutputProducer, consumer: InputConsumer, batch: list[Decided], offsets: Offsets
    ) -> None:
        """`offsets`: the next offset per input partition, past control records too (K11)."""
        await _publish(producer, self.routing, batch)
        await consumer.commit(offsets)
