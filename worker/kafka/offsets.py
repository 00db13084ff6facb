"""Committed offsets read only from a clean, stable answer of the group coordinator (K2, K5, K8).

aiokafka 0.14 reads committed offsets with OffsetFetch version 3 and looks only at the
per-partition error codes. While the group coordinator is still loading its partition of
`__consumer_offsets` (after a broker restart) or has moved, the broker answers with a
*top-level* error — 14 COORDINATOR_LOAD_IN_PROGRESS, 15 COORDINATOR_NOT_AVAILABLE, 16
NOT_COORDINATOR — and no partitions; aiokafka reads that as "nothing committed", so
`committed()` returns None and a freshly assigned partition is reset to the beginning: every
input of the partition answered again (a K2 duplicate).

`install()` (once per process, from `make_consumer`) replaces the coordinator's one reading
(`GroupCoordinator._do_fetch_commit_offsets`, used by `committed()` and by the positions of
newly assigned partitions alike) with `fetch_offsets`, which:

- sends OffsetFetch version 7 with `require_stable` (KIP-447) when the broker has it (Kafka
  2.5+): a partition with a transactional offset commit still pending (a previous owner's
  transaction being completed; KAFKA-9346) answers 88 UNSTABLE_OFFSET_COMMIT instead of the
  offset before it, and we wait;
- checks the top-level error code; the retriable ones (14, 15, 16, 88) raise aiokafka's
  retriable errors, so both callers retry (`fetch_committed_offsets` loops, the position
  refresh tries again) and nothing is ever reset on an answer that was not clean;
- otherwise does what aiokafka does (an unknown topic is skipped, -1 means no offset).

Also here: `watch_resets`, the one place that sees the client reset a position it had (the
fetch offset out of range: input deleted by retention before the group read it), so the
worker can warn with the partition and the skipped range (DESIGN K8: never lose silently).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeAlias

import structlog
from aiokafka import errors as kafka
from aiokafka.consumer import group_coordinator, subscription_state
from aiokafka.protocol.api import Request
from aiokafka.protocol.commit import OffsetFetchRequest_v3
from aiokafka.protocol.types import Boolean, CompactString, Int16, Int32, Int64
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from worker.kafka.txn_requests import (
    TOPIC_PARTITIONS,
    FlexibleRequest,
    by_topic,
    flexible,
    flexible_response,
    per_partition,
    topic_partitions,
)

log = structlog.get_logger(__name__)
NO_OFFSET = -1


class UnstableOffsetCommit(kafka.BrokerResponseError):  # type: ignore[misc]
    """88: a transactional offset commit of this partition is still pending (KIP-447); retry."""

    errno = 88
    message = "UNSTABLE_OFFSET_COMMIT"
    retriable = True


OffsetFetchResponse_v7 = flexible_response(
    "OffsetFetchResponse_v7",
    9,
    7,
    ("throttle_time_ms", Int32),
    (
        "topics",
        per_partition(
            ("offset", Int64),
            ("leader_epoch", Int32),
            ("metadata", CompactString("utf-8")),
            ("error_code", Int16),
        ),
    ),
    ("error_code", Int16),
)


class OffsetFetchRequest_v7(FlexibleRequest):
    RESPONSE_TYPE = OffsetFetchResponse_v7
    SCHEMA = flexible(
        ("group_id", CompactString("utf-8")), ("topics", TOPIC_PARTITIONS), ("require_stable", Boolean)
    )


_Struct: TypeAlias = OffsetFetchRequest_v3 | OffsetFetchRequest_v7


class StableOffsetFetch(Request[_Struct]):  # type: ignore[misc]
    """OffsetFetch, version 7 with `require_stable` where the broker has it, else version 3."""

    API_KEY = 9

    def __init__(self, group_id: str, partitions: Iterable[TopicPartition]) -> None:
        self.group_id = group_id
        self.by_topic = by_topic(partitions)

    def build(self, request_struct_class: type[_Struct]) -> _Struct:
        if request_struct_class is OffsetFetchRequest_v7:
            return OffsetFetchRequest_v7(self.group_id, topic_partitions(self.by_topic), True, {})
        return OffsetFetchRequest_v3(self.group_id, list(self.by_topic.items()))


# Top-level answers that mean "ask again" (the coordinator is loading, moving or waiting for a
# transaction): never "nothing committed".
_RETRY_LATER = (kafka.GroupLoadInProgressError, UnstableOffsetCommit)
_COORDINATOR_MOVED = (kafka.GroupCoordinatorNotAvailableError, kafka.NotCoordinatorForGroupError)


def _error(code: int) -> type[kafka.BrokerResponseError]:
    return UnstableOffsetCommit if code == UnstableOffsetCommit.errno else kafka.for_code(code)


async def fetch_offsets(coordinator: Any, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, Any]:
    """The group's committed offsets of `partitions` ({tp: OffsetAndMetadata}; a partition
    without one is absent), from a clean and stable answer only.

    `coordinator`: aiokafka's `GroupCoordinator` (this replaces its `_do_fetch_commit_offsets`).
    Raises a retriable aiokafka error for any answer that is not clean (the callers retry),
    `GroupAuthorizationFailedError` when the group may not be read.
    """
    response = await coordinator._send_req(StableOffsetFetch(coordinator.group_id, partitions))
    _check(coordinator, response.error_code, None)
    offsets: dict[TopicPartition, Any] = {}
    for topic, answered, *_ in response.topics:
        for partition, offset, *_, metadata, error_code, _tags in _rows(answered):
            tp = TopicPartition(topic, partition)
            if error_code == kafka.UnknownTopicOrPartitionError.errno:
                log.warning("OffsetFetch: unknown topic", topic=topic)
                continue
            _check(coordinator, error_code, tp)
            if offset != NO_OFFSET:
                offsets[tp] = OffsetAndMetadata(offset, metadata)
    return offsets


def _rows(partitions: list[tuple[Any, ...]]) -> Iterable[tuple[Any, ...]]:
    """Each partition's row, with tags: version 3 rows have neither leader epoch nor tags."""
    for row in partitions:
        yield row if len(row) == 6 else (*row, None)


def _check(coordinator: Any, code: int, tp: TopicPartition | None) -> None:
    if code == 0:
        return
    error = _error(code)
    if issubclass(error, _COORDINATOR_MOVED):
        coordinator.coordinator_dead()
        raise error()
    if issubclass(error, _RETRY_LATER):
        raise error()
    if error is kafka.GroupAuthorizationFailedError:
        raise error(coordinator.group_id)
    raise kafka.KafkaError(f"OffsetFetch of {tp or 'the group'} failed: {error.__name__}")


async def _do_fetch_commit_offsets(self: Any, partitions: Any) -> dict[TopicPartition, Any]:
    return await fetch_offsets(self, partitions)


# ------------------------------------------------------------------- positions reset by the client

#: Called as (assignment, tp, position it had, position it was reset to) when aiokafka resets a
#: position it had (OffsetOutOfRange: the records were deleted, or the log was truncated).
ResetWatcher = Callable[[Any, TopicPartition, int, int], None]
_watchers: list[ResetWatcher] = []
_original_await_reset = subscription_state.TopicPartitionState.await_reset
_original_reset_to = subscription_state.TopicPartitionState.reset_to


def _await_reset(self: Any, strategy: int) -> None:
    own = getattr(self, "_identity_worker_own_reset", False)
    self._identity_worker_own_reset = False
    # The position the reset abandons, if any — not when we asked for it (`own_reset`).
    self._identity_worker_lost = None if own else self._position
    _original_await_reset(self, strategy)


def own_reset(state: Any) -> None:
    """The next reset of this partition state is the worker's own (a seek to the beginning
    where nothing is committed): not one the client chose, nothing to report."""
    state._identity_worker_own_reset = True


def _reset_to(self: Any, position: int) -> None:
    lost = getattr(self, "_identity_worker_lost", None)
    self._identity_worker_lost = None
    _original_reset_to(self, position)
    if lost is None or lost == position or not _watchers:
        return
    tps = getattr(self._assignment, "_tp_state", {})
    tp = next((tp for tp, state in tps.items() if state is self), None)
    if tp is not None:
        for watcher in list(_watchers):
            watcher(self._assignment, tp, lost, position)


def watch_resets(watcher: ResetWatcher) -> Callable[[], None]:
    """Call `watcher` whenever a client resets a position it had (process-wide); returns the
    call that stops it."""
    _watchers.append(watcher)
    return lambda: _watchers.remove(watcher) if watcher in _watchers else None


def install() -> None:
    """Read committed offsets through `fetch_offsets`; see resets (idempotent, process-wide)."""
    group_coordinator.GroupCoordinator._do_fetch_commit_offsets = _do_fetch_commit_offsets
    subscription_state.TopicPartitionState.await_reset = _await_reset
    subscription_state.TopicPartitionState.reset_to = _reset_to


__all__ = ["StableOffsetFetch", "fetch_offsets", "install", "own_reset", "watch_resets"]
