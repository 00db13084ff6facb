"""The two transaction requests aiokafka 0.14 has no call for (KIP-664): DescribeProducers (61,
version 0) and WriteTxnMarkers (27, version 1), as `kafka-transactions.sh` and the Java Admin's
`describeProducers` / `abortTransaction` send them; used by `worker.kafka.transactions`.
Schemas from Kafka's own message definitions (clients/src/main/resources/common/message).
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    Boolean,
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Int64,
    Schema,
    TaggedFields,
)
from aiokafka.structs import TopicPartition


def tagged(*fields: tuple[str, Any]) -> CompactArray:
    """A compact array of structs of a flexible version: each ends with its tagged fields."""
    return CompactArray(*fields, ("tags", TaggedFields))


def flexible(*fields: tuple[str, Any]) -> Schema:
    """The body of a flexible version: it ends with its tagged fields."""
    return Schema(*fields, ("tags", TaggedFields))


#: `[name [partition]]`, as every request naming partitions sends them.
TOPIC_PARTITIONS = tagged(("name", CompactString("utf-8")), ("partitions", CompactArray(Int32)))
TopicPartitions = list[tuple[str, list[int], dict[int, bytes]]]  # a TOPIC_PARTITIONS value


def per_partition(*fields: tuple[str, Any]) -> CompactArray:
    """`[name [partition, *fields]]`: an answer's rows, one per partition, by topic."""
    return tagged(("name", CompactString("utf-8")), ("partitions", tagged(("partition", Int32), *fields)))


def flexible_response(name: str, api_key: int, version: int, *fields: tuple[str, Any]) -> Any:
    """The response struct `name` of API `api_key` at a flexible `version`: `fields`, then its
    tagged fields (the shape aiokafka decodes an answer with)."""
    return type(name, (Response,), {"API_KEY": api_key, "API_VERSION": version, "SCHEMA": flexible(*fields)})


class FlexibleRequest(RequestStruct):  # type: ignore[misc]
    """A request of a flexible version (tagged fields, request header v2), keyed and versioned as
    the `RESPONSE_TYPE` that answers it: a subclass names its response and its `SCHEMA` only."""

    FLEXIBLE_VERSION = True
    # aiokafka requires all four of every request struct; each subclass sets its own.
    API_KEY, API_VERSION, RESPONSE_TYPE, SCHEMA = -1, -1, Response, flexible()

    def __init_subclass__(cls) -> None:
        cls.API_KEY, cls.API_VERSION = cls.RESPONSE_TYPE.API_KEY, cls.RESPONSE_TYPE.API_VERSION
        super().__init_subclass__()


def topic_partitions(by_topic: dict[str, list[int]]) -> TopicPartitions:
    """The `TOPIC_PARTITIONS` value naming `by_topic`'s partitions (no tagged fields)."""
    return [(topic, partitions, {}) for topic, partitions in by_topic.items()]


@dataclass(frozen=True)
class OpenTransaction:
    tp: TopicPartition
    producer_id: int
    producer_epoch: int
    coordinator_epoch: int
    start_offset: int

    def remedy(self, bootstrap: str, decision: str | None = None) -> str:
        """What the operator does: `decision` is the coordinator's when known (the marker was
        refused): a COMMIT only the worker (given ClusterAction) or a broker can write."""
        if decision == "commit":
            return (
                "grant the worker's principal ClusterAction on the cluster: it then writes the COMMIT "
                "marker itself (never abort this one: the coordinator committed it)"
            )
        return (
            f"kafka-transactions.sh --bootstrap-server {bootstrap} abort --topic {self.tp.topic} "
            f"--partition {self.tp.partition} --start-offset {self.start_offset} "
            + (
                "(the coordinator aborted it)"
                if decision == "abort"
                else "(once `kafka-transactions.sh describe` shows the transaction was aborted)"
            )
        )


@dataclass
class TxnHistory:
    """What the member's transactions did (OutputProducer keeps it; no I/O), to tell which
    transaction an open one of our producer id is (worker.kafka.transactions):

    - `starts`: per output partition, the first offset the current transaction wrote there;
    - `confirmed_starts`: the same for the last transaction whose commit the coordinator
      confirmed (None before the first): its decision was COMMIT, whatever became of its markers;
    - `targets`: the output partitions the current transaction sent records to (acknowledged
      or not); `offsets_sent`: it sent its offsets; `commit_sent`: its `EndTxn(commit)` may
      have reached the coordinator;
    - `producer`: (producer id, epoch) of the producer running the current transaction;
      `outcome`: its coordinator's decision once known, "commit" or "abort" (confirmed, or
      asked before the next InitProducerId: `worker.kafka.txn_outcome`); `asked`: asked, and
      the coordinator could not say.
    """

    starts: dict[TopicPartition, int] = field(default_factory=dict)
    confirmed_starts: dict[TopicPartition, int] | None = None
    targets: set[TopicPartition] = field(default_factory=set)
    offsets_sent: bool = False
    commit_sent: bool = False
    producer: tuple[int, int] | None = None
    outcome: str | None = None
    asked: bool = False

    def begun(self, producer: tuple[int, int] | None = None) -> None:
        self.starts, self.targets, self.offsets_sent, self.commit_sent = {}, set(), False, False
        self.producer, self.outcome, self.asked = producer, None, False

    @property
    def undecided(self) -> bool:
        """The current transaction's `EndTxn(commit)` was sent, its answer lost: ask its coordinator."""
        return self.commit_sent and self.outcome is None and not self.asked and self.producer is not None

    def appended(self, future: Any) -> None:
        """A record batch's future is done: its base offset, where the transaction starts."""
        if future.cancelled() or future.exception() is not None:
            return
        meta = future.result()
        tp = TopicPartition(meta.topic, meta.partition)
        if meta.offset < self.starts.get(tp, meta.offset + 1):
            self.starts[tp] = meta.offset

    def confirmed(self) -> None:
        self.confirmed_starts = dict(self.starts)
        self.outcome = "commit"


def by_topic(tps: Iterable[TopicPartition]) -> dict[str, list[int]]:
    """`tps`' partition numbers, by topic, in the order given."""
    grouped: dict[str, list[int]] = collections.defaultdict(list)
    for tp in tps:
        grouped[tp.topic].append(tp.partition)
    return dict(grouped)


def java_hash(text: str) -> int:
    """Java's `String.hashCode` (UTF-16 code units, 32-bit overflow), as Kafka places a group."""
    value = 0
    encoded = text.encode("utf-16-be")
    for i in range(0, len(encoded), 2):
        value = (31 * value + int.from_bytes(encoded[i : i + 2], "big")) & 0xFFFFFFFF
    return value


def offsets_partition(group_id: str, partitions: int) -> int:
    """The `__consumer_offsets` partition of `group_id` (Kafka: `Utils.abs(hashCode) % partitions`,
    where `Utils.abs` maps Integer.MIN_VALUE to 0)."""
    signed = java_hash(group_id)
    signed = signed - (1 << 32) if signed >= 1 << 31 else signed
    return (0 if signed == -(1 << 31) else abs(signed)) % partitions


DescribeProducersResponse_v0 = flexible_response(
    "DescribeProducersResponse_v0",
    61,
    0,
    ("throttle_time_ms", Int32),
    (
        "topics",
        per_partition(
            ("error_code", Int16),
            ("error_message", CompactString("utf-8")),
            (
                "producers",
                tagged(
                    ("producer_id", Int64),
                    ("producer_epoch", Int32),
                    ("last_sequence", Int32),
                    ("last_timestamp", Int64),
                    ("coordinator_epoch", Int32),
                    ("txn_start_offset", Int64),
                ),
            ),
        ),
    ),
)


class DescribeProducersRequest_v0(FlexibleRequest):
    RESPONSE_TYPE = DescribeProducersResponse_v0
    SCHEMA = flexible(("topics", TOPIC_PARTITIONS))


class DescribeProducers(Request[DescribeProducersRequest_v0]):  # type: ignore[misc]
    API_KEY = 61

    def __init__(self, tps: Iterable[TopicPartition]) -> None:
        self.by_topic = by_topic(tps)

    def build(self, request_struct_class: type[DescribeProducersRequest_v0]) -> DescribeProducersRequest_v0:
        return request_struct_class(topic_partitions(self.by_topic), {})


WriteTxnMarkersResponse_v1 = flexible_response(
    "WriteTxnMarkersResponse_v1",
    27,
    1,
    (
        "markers",
        tagged(("producer_id", Int64), ("topics", per_partition(("error_code", Int16)))),
    ),
)


class WriteTxnMarkersRequest_v1(FlexibleRequest):
    RESPONSE_TYPE = WriteTxnMarkersResponse_v1
    SCHEMA = flexible(
        (
            "markers",
            tagged(
                ("producer_id", Int64),
                ("producer_epoch", Int16),
                ("committed", Boolean),
                ("topics", TOPIC_PARTITIONS),
                ("coordinator_epoch", Int32),
            ),
        ),
    )


class Markers(Request[WriteTxnMarkersRequest_v1]):  # type: ignore[misc]
    """COMMIT or ABORT markers for open transactions (version 1: no transaction version field)."""

    API_KEY = 27

    def __init__(self, transactions: Iterable[tuple[OpenTransaction, bool]]) -> None:
        self.transactions = list(transactions)

    def build(self, request_struct_class: type[WriteTxnMarkersRequest_v1]) -> WriteTxnMarkersRequest_v1:
        markers: list[tuple[int, int, bool, TopicPartitions, int, dict[int, bytes]]]
        markers = [
            (
                t.producer_id,
                t.producer_epoch,
                commit,
                [(t.tp.topic, [t.tp.partition], {})],
                t.coordinator_epoch,
                {},
            )
            for t, commit in self.transactions
        ]
        return request_struct_class(markers, {})
