"""One batch, from its first fetch to its commit (K1, K2, K4, K5, K11): after Quix Streams' `Checkpoint`.

A `Checkpoint` is made by `Collector.collect` (worker.runtime.collect) under the assignment's
generation and filled with the records fetched (K4), then with what `Decider.decide` made of
them (`decided`, one output per record, K1) and the offsets `Partitions.offsets` says it
commits (K11). `commit` then owns the rest of its life, in one place:

1. **Publishing** (K1, K3): the routing's view of the output topics refreshed when stale
   (`worker.runtime.routing`), every output appended to one record batch per output partition
   (an output its topic would refuse is reshaped first, K9);
2. **Delivery**: every record batch acknowledged, or the commit raises (K1);
3. **The commit protocol** (K2): exactly_once — begin, the outputs, the offsets, a check that
   the group still counts this member (`InputConsumer.in_group`, K5), commit, in one
   transaction; at_least_once — the outputs acknowledged, then the offsets committed.

Any failure is raised as it is: what to redo (a new producer, a rewind to the committed
offsets, K8) is the member's (`worker.runtime.recovery`). A checkpoint is dropped, and its
records fetched again, when the generation moved (a revocation, K5) or a recovery is pending
before it commits.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiokafka.structs import TopicPartition

from worker.core.reasons import Outcome
from worker.kafka.consumer import InputConsumer, MemberExpelled, Offsets, Record
from worker.kafka.framing import FRAME, headers_bytes
from worker.kafka.producer import OutputProducer
from worker.kafka.topics import TOPIC_REFUSALS, OutputTopicChanged
from worker.ops.metrics import Metrics
from worker.runtime.decide import Decided
from worker.runtime.routing import Routing, reshaped


@dataclass(slots=True)
class Checkpoint:
    generation: int  # the assignment it was collected under (K5)
    records: dict[TopicPartition, list[Record]] = field(default_factory=dict)
    count: int = 0  # records fetched
    fetch_fault: bool = False  # a fetch failed: nothing fetched at all means back off (K8)
    started: float = 0.0  # `time.perf_counter()` when deciding began (batch_seconds)
    decided: list[Decided] = field(default_factory=list)  # one output per record (K1)
    offsets: Offsets = field(default_factory=dict)  # the next offset per input partition (K2, K11)

    def add(self, fetched: dict[TopicPartition, list[Record]]) -> None:
        records = self.records
        for tp, got in fetched.items():
            records.setdefault(tp, []).extend(got)
            self.count += len(got)

    @property
    def commits(self) -> bool:
        """Something to commit: outputs, or offsets only (past control records, K11)."""
        return bool(self.decided or self.offsets)

    async def commit(
        self, producer: OutputProducer, consumer: InputConsumer, routing: Routing, *, group_id: str | None
    ) -> None:
        """Publish the outputs and commit the offsets (K2). `group_id`: exactly_once, the offsets
        are committed for this group inside the producer's transaction; None: at_least_once.

        Raises whatever failed (nothing is retried here); `MemberExpelled` when the group no
        longer counts this member right before an exactly_once commit (its transaction is then
        left open, and the member's recovery aborts it, K5, K8).
        """
        if group_id is None:
            await _publish(producer, routing, self.decided)
            await consumer.commit(self.offsets)
            return
        await producer.begin_transaction()
        # The offsets go once the outputs are acknowledged, not while they fly: a broker with
        # transaction verification (KIP-890, Kafka >= 3.6) verifies both the first produce of a
        # transaction on each partition and its TxnOffsetCommit through one queue that keeps a
        # single pending verification per transactional id; the second to arrive makes the
        # first answered NETWORK_EXCEPTION, which a produce of an older client such as aiokafka
        # gets as NOT_ENOUGH_REPLICAS and retries 20 ms later (docs/performance.md, "What the
        # delay tail was"). Same transaction, same outputs and offsets (K2).
        await _publish(producer, routing, self.decided)
        await producer.send_offsets_to_transaction(self.offsets, group_id)
        if not consumer.in_group():
            raise MemberExpelled("the consumer group expelled this member; aborting its batch")
        await producer.commit_transaction()

    def observe(self, metrics: Metrics) -> None:
        """Once committed: the verdicts, the batch's size and time, each record's delay."""
        decided = self.decided
        verdicts = Counter((item.output.outcome, item.output.reason) for item in decided)
        metrics.count_events(
            {(outcome.value, reason.value if reason else ""): n for (outcome, reason), n in verdicts.items()}
        )
        metrics.batch_size.observe(len(decided))
        metrics.batch_seconds.observe(time.perf_counter() - self.started)
        metrics.observe_delays([item.record.timestamp for item in decided])  # the delay panel (§7)


async def _publish(producer: OutputProducer, routing: Routing, decided: list[Decided]) -> None:
    """Send the batch's outputs and wait for every acknowledgement.

    Any failure marks the routing stale, so the next attempt reads the output topics again. A
    refusal of the records themselves (`TOPIC_REFUSALS`: they were fitted to what the topic took,
    so the topic changed) is raised as OutputTopicChanged, retriable: once the topics are read
    again the records are shaped for them (K9, K10).
    """
    try:
        await routing.prepare(producer)
        futures = await _send_all(producer, routing, decided)
        await _delivered(producer, futures)
    except TOPIC_REFUSALS as exc:
        routing.stale = True
        raise OutputTopicChanged(f"the broker refused an output: {type(exc).__name__}") from exc
    except BaseException:
        routing.stale = True
        raise


async def _send_all(
    producer: OutputProducer, routing: Routing, decided: list[Decided]
) -> list[asyncio.Future[Any]]:
    """Enqueue every output in batch order: same key, same headers as the input (K1, K3).

    Outputs are appended to one record batch per output partition (aiokafka's `create_batch` /
    `send_batch`), not sent one by one: `send` costs a coroutine, a future and the accumulator's
    bookkeeping per message. A full batch is submitted before the next one is started, so each
    partition's outputs keep their order. Returns one future per submitted batch.

    An output that cannot be written as it is (larger than its topic takes, keyless on a
    compacted topic) is reshaped first (`worker.runtime.routing.reshaped`, K9) and replaces its
    item in `decided`.
    Raises OutputTopicChanged when a target partition no longer exists.
    """
    builders: dict[tuple[str, int], Any] = {}
    futures: list[asyncio.Future[Any]] = []
    room, compacted, caps = routing.room, routing.compacted, routing.batch_caps
    # Per decided, not per record (the routing is the same for the whole decided):
    # (outcome, input partition) → (topic, partition),
    # and the smallest room of any output topic, below which no output needs measuring.
    targets: dict[tuple[Outcome, int], tuple[str, int]] = {}
    least_room = min(room.values(), default=0)
    for index, item in enumerate(decided):
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
            item, key, headers = reshaped(item, routing)
            decided[index] = item
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
