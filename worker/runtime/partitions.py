"""What a member knows per owned input partition (K8, K9, K11), kept in one place.

- `committed`: the next offset per partition as this member last committed it (before its
  first commit there, as the group coordinator had it). It is the base of the lag and the
  target of a rewind: right after a commit the coordinator may still answer the previous
  offset for a few ms (the transaction markers follow `commit_transaction`), so a rewind
  trusts what it committed itself (K8) — unless the broker aborted that commit's outputs after
  all (`worker.kafka.confirmed`): then the group's offsets, and the batch is redone (K2).
- `after_decide` / `resume_due`: a partition held at a record that must wait
  (`ConfigUnavailable`, as `Decider.decide` returns it) is paused there and tried again on its
  own backoff (`Waits`), while every other partition flows (K9); the log,
  `identity_worker_partitions_waiting` and /readyz (`Health.waiting`) say which partition
  waits and why.
- `rewind`: every owned partition sought back to its committed offset (K8); `lag`: what is
  not committed yet per partition (`identity_worker_consumer_lag`).
- `offsets`: what a batch commits — per partition its consumer position, which is past the
  control records and aborted batches after the last record returned, so a drained group
  shows lag 0 (K11).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

import structlog
from aiokafka.structs import TopicPartition

from worker.core.community import ConfigUnavailable
from worker.kafka.consumer import InputConsumer, Offsets
from worker.ops.metrics import Metrics
from worker.runtime.decide import Decided, Waiting
from worker.runtime.waits import Waits

log = structlog.get_logger(__name__)


def partition_log(tp: TopicPartition) -> structlog.typing.FilteringBoundLogger:
    """The log with the partition named: every line of this module is about one."""
    return log.bind(topic=tp.topic, partition=tp.partition)  # type: ignore[no-any-return]


def next_offsets(batch: Sequence[Decided]) -> Offsets:
    """The offsets to commit: one past the last decided record of each partition."""
    last: dict[tuple[str, int], int] = {}
    for item in batch:
        record = item.record
        last[(record.topic, record.partition)] = record.offset
    return {TopicPartition(topic, partition): offset + 1 for (topic, partition), offset in last.items()}


class Partitions:
    def __init__(self, waits: Waits, metrics: Metrics) -> None:
        self.waits = waits
        self.metrics = metrics
        self.committed: Offsets = {}

    def after_decide(
        self,
        consumer: InputConsumer,
        batch: Iterable[TopicPartition],
        waiting: Mapping[TopicPartition, Waiting],
    ) -> None:
        """A batch was decided: each partition in `waiting` is held at its record, the others of
        `batch` that waited flow again."""
        for tp, wait in waiting.items():
            self.hold(consumer, tp, wait.offset, wait.error)
        if self.waits:
            for tp in batch:
                if tp not in waiting and tp in self.waits:
                    self.release(tp)

    def hold(
        self, consumer: InputConsumer, tp: TopicPartition, offset: int, error: ConfigUnavailable
    ) -> None:
        """K9: pause `tp` at the record that must wait; it is tried again on its own backoff."""
        consumer.hold(tp, offset)
        wait = self.waits.hold(tp, offset, error, time.monotonic())
        self.metrics.infrastructure_retries.labels("store", type(error).__name__).inc()
        self.metrics.partitions_waiting.set(len(self.waits))
        if wait.attempts == 1:
            partition_log(tp).warning(
                "partition waits: configuration unavailable",
                offset=offset,
                error_type=wait.error,
                error=wait.detail,
            )

    def release(self, tp: TopicPartition) -> None:
        """A record of a waiting partition was decided: it flows again."""
        wait = self.waits.release(tp)
        self.metrics.partitions_waiting.set(len(self.waits))
        if wait is not None:
            partition_log(tp).info(
                "partition resumed",
                offset=wait.offset,
                waited_seconds=round(time.monotonic() - wait.since, 1),
                attempts=wait.attempts,
            )

    def resume_due(self, consumer: InputConsumer) -> None:
        """Resume the held partitions whose next try has come."""
        for tp in self.waits.due(time.monotonic()):
            consumer.resume(tp)

    def offsets(self, consumer: InputConsumer, decided: Sequence[Decided]) -> Offsets:
        """The offsets this batch commits (K2, K11): per owned partition, its position now.

        A waiting partition commits only up to its waiting record (`next_offsets`); a
        partition whose position has not moved since the last commit commits nothing.
        """
        offsets = next_offsets(decided)
        for tp in consumer.assignment():
            if tp in self.waits:
                continue
            position = consumer.position(tp)
            if position is None:
                continue
            known = self.committed.get(tp)
            if tp in offsets or (known is not None and position > known):
                offsets[tp] = max(position, offsets.get(tp, position))
        return offsets

    def rewind_target(self, tp: TopicPartition, committed: int | None) -> int | None:
        """Where a rewind seeks `tp`: the committed offset, never past a waiting record."""
        wait = self.waits.held.get(tp)
        if wait is not None and committed is not None:
            return min(committed, wait.offset)
        return committed

    async def rewind(
        self,
        consumer: InputConsumer,
        *,
        ask_coordinator: bool,
        timeout: float,
        confirmed_aborted: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        """K8: seek every owned partition back to its committed offset, never past a waiting record.

        The offset is the one this member committed itself: the coordinator
        may still answer the previous one for a few ms after a commit. With `ask_coordinator`
        (after a failed commit, whose outcome is unknown, once the new producer has settled it)
        the coordinator's answer is the truth. `timeout`: seconds per coordinator request.
        `confirmed_aborted()`: asked once, when the answer is before our own offset — were the
        last confirmed transaction's outputs aborted after all (`worker.kafka.confirmed`)? Then
        the answer is the truth too.
        """
        redo: bool | None = None
        for tp in consumer.assignment():
            own = self.committed.get(tp)
            offset = None if ask_coordinator else own
            if offset is None:
                # A clean, stable answer only (worker.kafka.offsets); and never earlier than what
                # this member itself committed and saw confirmed (K2: that would answer again),
                # unless that commit's outputs were aborted (K2: keeping ours would skip them).
                answer = await asyncio.wait_for(consumer.committed(tp), timeout)
                behind = answer is not None and own is not None and answer < own
                if behind and confirmed_aborted is not None:
                    if redo is None:
                        redo = await confirmed_aborted()
                    if redo:
                        partition_log(tp).warning(
                            "the last confirmed commit was aborted by the broker; redoing it",
                            answered=answer,
                            committed=own,
                        )
                        own = None
                offset = answer if own is None or (answer is not None and answer >= own) else own
                if behind and own is not None:
                    partition_log(tp).warning(
                        "coordinator answered an offset before our own commit; kept ours",
                        answered=answer,
                        committed=own,
                    )
                if offset is not None:
                    self.committed[tp] = offset
            offset = self.rewind_target(tp, offset)
            if offset is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, offset)

    async def lag(self, consumer: InputConsumer, ends: Offsets, *, timeout: float) -> int:
        """Records not committed yet on the partitions of `ends` (their end offsets), per partition
        in `identity_worker_consumer_lag`; a partition never committed by us asks the coordinator."""
        total = 0
        for tp, end in ends.items():
            position = self.committed.get(tp)
            if position is None:
                try:
                    position = await asyncio.wait_for(consumer.committed(tp), timeout)
                except Exception:
                    continue
                if position is None:  # nothing committed (a clean answer): not a rewind target
                    position = 0
                else:
                    self.committed.setdefault(tp, position)
            lag = max(0, end - position)
            self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)
            total += lag
        return total

    def input_skipped(self, tp: TopicPartition, lost: int, position: int) -> None:
        """K8: the client reset a position it had (out of range): skipped input is never silent."""
        if position > lost:
            self.metrics.input_skipped.labels(tp.topic, str(tp.partition)).inc(position - lost)
            partition_log(tp).warning(
                "input skipped: records deleted before they were read",
                first_offset=lost,
                last_offset=position - 1,
                records=position - lost,
            )
        else:
            partition_log(tp).warning(
                "input position reset backwards: records read again",
                from_offset=lost,
                to_offset=position,
            )

    def forget(self, revoked: set[TopicPartition]) -> None:
        """Revoked partitions: their next owner decides; their lag series goes."""
        self.waits.drop(revoked)
        self.metrics.partitions_waiting.set(len(self.waits))
        for tp in revoked:
            self.committed.pop(tp, None)
            with contextlib.suppress(KeyError):
                self.metrics.consumer_lag.remove(tp.topic, str(tp.partition))
