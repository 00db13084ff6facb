"""What a member knows per owned input partition (K8, K9, K11), kept in one place.

- `committed`: the next offset per partition as this member last committed it (before its
  first commit there, as the group coordinator had it). It is the base of the lag and the
  target of a rewind: right after a commit the coordinator may still answer the previous
  offset for a few ms (the transaction markers follow `commit_transaction`), so a rewind
  trusts what it committed itself (issue 11 item 10).
- `hold` / `release` / `resume_due`: a partition held at a record that must wait
  (`ConfigUnavailable`) is paused there and tried again on its own backoff (`Waits`), while
  every other partition flows (K9); the log, `identity_worker_partitions_waiting` and
  /readyz (`Health.waiting`) say which partition waits and why.
- `offsets`: what a batch commits — per partition its consumer position, which is past the
  control records and aborted batches after the last record returned, so a drained group
  shows lag 0 (K11).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

from aiokafka.errors import IllegalStateError
from aiokafka.structs import TopicPartition

from worker.core.community import ConfigUnavailable
from worker.kafka.clients import fetch_position
from worker.ops.logging import get_logger
from worker.ops.metrics import Metrics
from worker.runtime.commit import Decided, next_offsets
from worker.runtime.waits import Waits

Offsets = dict[TopicPartition, int]


class Partitions:
    def __init__(self, waits: Waits, metrics: Metrics) -> None:
        self.waits = waits
        self.metrics = metrics
        self.committed: Offsets = {}
        self._log = get_logger("identity-worker.runtime")

    def hold(self, consumer: Any, tp: TopicPartition, offset: int, error: ConfigUnavailable) -> None:
        """K9: pause `tp` at the record that must wait; it is tried again on its own backoff."""
        with contextlib.suppress(IllegalStateError):
            consumer.seek(tp, offset)
            consumer.pause(tp)
        wait = self.waits.hold(tp, offset, error, time.monotonic())
        self.metrics.infrastructure_retries.labels("store", type(error).__name__).inc()
        self.metrics.partitions_waiting.set(len(self.waits))
        if wait.attempts == 1:
            self._log.warning(
                "partition waits: configuration unavailable",
                topic=tp.topic,
                partition=tp.partition,
                offset=offset,
                error_type=wait.error,
                error=wait.detail,
            )

    def release(self, tp: TopicPartition) -> None:
        """A record of a waiting partition was decided: it flows again."""
        wait = self.waits.release(tp)
        self.metrics.partitions_waiting.set(len(self.waits))
        if wait is not None:
            self._log.info(
                "partition resumed",
                topic=tp.topic,
                partition=tp.partition,
                offset=wait.offset,
                waited_seconds=round(time.monotonic() - wait.since, 1),
                attempts=wait.attempts,
            )

    def resume_due(self, consumer: Any) -> None:
        """Resume the held partitions whose next try has come."""
        for tp in self.waits.due(time.monotonic()):
            with contextlib.suppress(IllegalStateError):
                consumer.resume(tp)

    def offsets(self, consumer: Any, decided: Sequence[Decided]) -> Offsets:
        """The offsets this batch commits (K2, K11): per owned partition, its position now.

        A waiting partition commits only up to its waiting record (`next_offsets`); a
        partition whose position has not moved since the last commit commits nothing.
        """
        offsets = next_offsets(decided)
        for tp in consumer.assignment():
            if tp in self.waits:
                continue
            position = fetch_position(consumer, tp)
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

    def forget(self, revoked: set[TopicPartition]) -> None:
        """Revoked partitions: their next owner decides; their lag series goes."""
        self.waits.drop(revoked)
        self.metrics.partitions_waiting.set(len(self.waits))
        for tp in revoked:
            self.committed.pop(tp, None)
            with contextlib.suppress(KeyError):
                self.metrics.consumer_lag.remove(tp.topic, str(tp.partition))
