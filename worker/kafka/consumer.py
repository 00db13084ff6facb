"""The input side of a group member: aiokafka's consumer behind the calls the runtime makes (K2, K5, K11).

`InputConsumer` is made by `make_consumer` (no auto-commit, `read_committed`, the tolerant
record reader: K2, K9, K11) and adds what aiokafka 0.14 keeps internal, read here and nowhere
else:

- `position(tp)`: the position without a round trip, past the control records and aborted
  batches after the last record returned (K11), never past a record not yet returned;
- `in_group()`: whether the coordinator still counts this member (its generation), which
  aiokafka's version-0 `TxnOffsetCommit` does not send to the broker (no KIP-447 fencing).

The rebalance callbacks are plain coroutines; an exception they raise is logged here (aiokafka
would swallow it), never raised into the client.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeAlias

import structlog
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import IllegalStateError
from aiokafka.structs import TopicPartition

from worker.kafka import offsets
from worker.kafka.clients import make_consumer
from worker.settings import Settings

log = structlog.get_logger(__name__)

#: A record as `getmany` returns it; `worker.kafka.fetched.UnreadableRecord` is one too (K9).
Record: TypeAlias = Any  # aiokafka's ConsumerRecord: topic, partition, offset, timestamp, key, value, headers
Offsets = dict[TopicPartition, int]
OnRebalance = Callable[[set[TopicPartition]], Awaitable[None]]


class InputConsumer:
    """One consumer-group member's consumer of the input topic (K7). Errors are aiokafka's own."""

    def __init__(self, settings: Settings, *, on_revoked: OnRebalance, on_assigned: OnRebalance) -> None:
        self._consumer = make_consumer(settings, listener=_Listener(on_revoked, on_assigned))
        self._unwatch: Callable[[], None] | None = None

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        """Leave the group (no revocation callback) and close."""
        if self._unwatch is not None:
            self._unwatch()
        await self._consumer.stop()

    def on_reset(self, callback: Callable[[TopicPartition, int, int], None]) -> None:
        """Call `callback(tp, position it had, position now)` when the client resets a position of
        ours (out of range: input deleted before it was read, K8). aiokafka internals."""

        def mine(assignment: Any, tp: TopicPartition, lost: int, position: int) -> None:
            subscription = self._consumer._subscription.subscription
            if subscription is not None and subscription.assignment is assignment:
                callback(tp, lost, position)

        self._unwatch = offsets.watch_resets(mine)

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Record]]:
        result: dict[TopicPartition, list[Record]] = await self._consumer.getmany(
            timeout_ms=timeout_ms, max_records=max_records
        )
        return result

    def assignment(self) -> set[TopicPartition]:
        return set(self._consumer.assignment())

    def position(self, tp: TopicPartition) -> int | None:
        """The position on `tp` now, without a round trip; None while it is unknown (K11)."""
        subscription = self._consumer._subscription.subscription  # aiokafka 0.14 internals
        assignment = subscription.assignment if subscription is not None else None
        if assignment is None or tp not in assignment.tps:
            return None
        state = assignment.state_value(tp)
        return int(state.position) if state.has_valid_position else None

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Fetch `tp` from `offset` next; nothing when `tp` is no longer assigned."""
        with contextlib.suppress(IllegalStateError):
            self._consumer.seek(tp, offset)

    async def seek_to_beginning(self, tp: TopicPartition) -> None:
        """Fetch `tp` from its first record (nothing committed): our own reset, never reported."""
        with contextlib.suppress(IllegalStateError):
            subscription = self._consumer._subscription.subscription  # aiokafka 0.14 internals
            if subscription is not None and subscription.assignment is not None:
                state = subscription.assignment.state_value(tp)
                if state is not None:
                    offsets.own_reset(state)
            await self._consumer.seek_to_beginning(tp)

    def hold(self, tp: TopicPartition, offset: int) -> None:
        """Fetch nothing more of `tp` until `resume`; its next record is the one at `offset`."""
        with contextlib.suppress(IllegalStateError):
            self._consumer.seek(tp, offset)
            self._consumer.pause(tp)

    def resume(self, tp: TopicPartition) -> None:
        with contextlib.suppress(IllegalStateError):
            self._consumer.resume(tp)

    async def committed(self, tp: TopicPartition) -> int | None:
        """The group coordinator's committed offset of `tp` (one round trip), None without one."""
        offset: int | None = await self._consumer.committed(tp)
        return offset

    async def end_offsets(self, tps: Iterable[TopicPartition]) -> Offsets:
        ends: Offsets = await self._consumer.end_offsets(list(tps))
        return ends

    async def commit(self, offsets: Offsets) -> None:
        """at_least_once: commit `offsets` to the group (K2)."""
        await self._consumer.commit(offsets)

    def in_group(self) -> bool:
        """False once the coordinator has reset our generation (expelled). aiokafka internals."""
        coordinator = getattr(self._consumer, "_coordinator", None)
        generation = getattr(coordinator, "generation", 0)
        return not isinstance(generation, int) or generation >= 0


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, on_revoked: OnRebalance, on_assigned: OnRebalance) -> None:
        self._on_revoked, self._on_assigned = on_revoked, on_assigned

    async def on_partitions_revoked(self, revoked: Any) -> None:
        try:
            await self._on_revoked(set(revoked))
        except Exception as exc:  # aiokafka would swallow it; say it ourselves
            log.error("revocation handling failed", error_type=type(exc).__name__)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        try:
            await self._on_assigned(set(assigned))
        except Exception as exc:
            log.error("assignment handling failed", error_type=type(exc).__name__)


class MemberExpelled(Exception):
    """The group no longer counts this member (session timed out): its batch must not commit.

    aiokafka's TxnOffsetCommit is version 0, without the group generation (KIP-447), so the
    broker would accept a commit from an expelled member; the checkpoint
    asks `InputConsumer.in_group` right before committing and aborts instead (K5).
    """
