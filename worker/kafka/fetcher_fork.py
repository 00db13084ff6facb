"""aiokafka's per-partition record iterator, forked so that no record can stop the stream (K9, K11).

Mirrors aiokafka 0.14.0 (`MIRRORS`): `aiokafka/consumer/fetcher.py`, `PartitionRecords.
_unpack_records` — the batch walk: the CRC check, aborted transactions and control batches
skipped (K11), the fetch position moved past each batch — as `Fetcher._proc_fetch_request`
builds it from `MemoryRecords(part_data[-1])`. Upstream, one iterator reads the whole fetch
and a record it cannot decode raises out of `getmany`; the records already read, of that
partition and of every other, are lost with it. Here each batch is read on its own, and a
failure is a property of the records it concerns (`worker.kafka.fetched`: `UnreadableRecord`).

This module is the one place where the worker reaches into aiokafka's fetcher: `install()`
replaces the fetcher module's two globals (`MemoryRecords`, `PartitionRecords`). It is called
explicitly, once per process, by the member before it makes its consumer
(`worker.runtime.member`), never as a side effect of making a client.

When aiokafka changes, `tests/broker/test_fetched.py` fails loudly: the installed version is
not `MIRRORS`, or the upstream source (`upstream_fingerprint`) is not `UPSTREAM_SHA256`.
Re-read upstream's `_unpack_records` and `_proc_fetch_request` against this module, then
update both; tests/broker/test_input_records.py fails if the fetcher stops calling the globals.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Iterator
from typing import Any, Final

import aiokafka.consumer.fetcher as _fetcher
from aiokafka import codec
from aiokafka.errors import UnsupportedCodecError
from aiokafka.record.control_record import ABORT_MARKER, ControlRecord
from aiokafka.structs import ConsumerRecord, TopicPartition

from worker.kafka.fetched import UnreadableRecord, batch_size, read_batch, unreadable_records

#: The aiokafka release whose fetcher this module mirrors (pinned in pyproject.toml).
MIRRORS: Final = "0.14.0"
#: sha256 of the upstream code mirrored here (`upstream_fingerprint`), as in `MIRRORS`.
UPSTREAM_SHA256: Final = "751d34f3400968cfdfe0210eab8de98a810c751ca33cf754641fde94c2f897b1"
READ_COMMITTED = 1  # aiokafka's isolation level constant
# aiokafka's own, kept before `install` replaces them in the fetcher module.
_UPSTREAM_PARTITION_RECORDS = _fetcher.PartitionRecords
_CODECS_PRESENT = {
    "gzip": codec.has_gzip,
    "snappy": codec.has_snappy,
    "lz4": codec.has_lz4,
    "zstd": codec.has_zstd,
}


def upstream_fingerprint() -> str:
    """sha256 of the installed aiokafka's `PartitionRecords` and `Fetcher._proc_fetch_request`
    source: what this module mirrors and where the fetcher builds what it replaces."""
    mirrored = inspect.getsource(_UPSTREAM_PARTITION_RECORDS) + inspect.getsource(
        _fetcher.Fetcher._proc_fetch_request
    )
    return hashlib.sha256(mirrored.encode("utf-8")).hexdigest()


class KeptRecords:
    """aiokafka's MemoryRecords plus the fetched bytes, for `TolerantPartitionRecords`."""

    __slots__ = ("_records", "data")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._records = _MEMORY_RECORDS(data)

    def has_next(self) -> bool:
        return bool(self._records.has_next())

    def size_in_bytes(self) -> int:
        return int(self._records.size_in_bytes())

    def next_batch(self) -> Any:
        return self._records.next_batch()


class TolerantPartitionRecords(_fetcher.PartitionRecords):  # type: ignore[misc]
    """aiokafka's per-partition record iterator, where no record can raise (see module doc)."""

    def _unpack_records(self) -> Iterator[ConsumerRecord]:
        tp: TopicPartition = self._tp
        records = self._records
        data: bytes | None = getattr(records, "data", None)
        position = 0  # where the current batch starts in `data`
        topic, partition = tp.topic, tp.partition
        # No deserializers (the worker's consumer has none): records are built inline, the same
        # ConsumerRecord aiokafka's `_consumer_record` builds, without its per-record call.
        plain = self._key_deserializer is None and self._value_deserializer is None
        while records.has_next():
            batch = records.next_batch()
            size = batch_size(data, position)
            raw = data[position : position + size] if data is not None and size else None
            position += size
            if self._check_crcs and not batch.validate_crc():
                yield from self._placeholders(batch, "its record batch fails the CRC check")
                continue
            if self._isolation_level == READ_COMMITTED and batch.producer_id is not None:
                self._consume_aborted_up_to(batch.base_offset)
                if batch.is_control_batch and self._contains_abort_marker(batch):
                    self._aborted_producers.discard(batch.producer_id)
                if batch.is_transactional and batch.producer_id in self._aborted_producers:
                    self.next_fetch_offset = batch.next_offset  # aborted upstream: never answered
                    continue
            if batch.is_control_batch:  # commit and abort markers are not records (K11)
                self.next_fetch_offset = batch.next_offset
                continue
            try:
                decoded = list(batch)  # the C reader: fast, but all or nothing per batch
            except Exception as exc:
                decoded = list(read_batch(tp, raw, batch, exc))
                to_consumer_record = self._from_reread
            else:
                if plain:  # the worker's case: built here, not per record through a method
                    for record in decoded:
                        offset = record.offset
                        if offset < self.next_fetch_offset:
                            continue  # before the fetch position (compressed legacy sets)
                        key, value = record.key, record.value
                        consumer_record = ConsumerRecord(
                            topic,
                            partition,
                            offset,
                            record.timestamp,
                            record.timestamp_type,
                            key,
                            value,
                            record.checksum,
                            -1 if key is None else len(key),
                            -1 if value is None else len(value),
                            tuple(record.headers),
                        )
                        self.next_fetch_offset = offset + 1  # read by getmany when it stops here
                        yield consumer_record
                    self.next_fetch_offset = batch.next_offset
                    continue
                to_consumer_record = self._consumer_record
            for record in decoded:
                if record.offset < self.next_fetch_offset:
                    continue  # before the fetch position (compressed legacy sets)
                consumer_record = to_consumer_record(tp, record)
                self.next_fetch_offset = record.offset + 1
                yield consumer_record
            self.next_fetch_offset = batch.next_offset

    def _from_reread(self, tp: TopicPartition, record: Any) -> Any:
        return record if isinstance(record, UnreadableRecord) else self._consumer_record(tp, record)

    def _contains_abort_marker(self, batch: Any) -> bool:
        try:
            return bool(ControlRecord.parse(next(batch).key) == ABORT_MARKER)
        except Exception:
            return False

    def _placeholders(self, batch: Any, problem: str) -> Iterator[UnreadableRecord]:
        first = max(batch.base_offset, self.next_fetch_offset)
        for record in unreadable_records(self._tp, first, batch.next_offset, problem):
            self.next_fetch_offset = record.offset + 1
            yield record
        self.next_fetch_offset = batch.next_offset


_MEMORY_RECORDS = _fetcher.MemoryRecords


def install() -> None:
    """Make aiokafka's fetcher read through this module (idempotent; process-wide; K9).

    Raises UnsupportedCodecError when a codec Kafka defines has no library here: a broken
    installation, not a property of the records it would make unreadable (K10).
    """
    missing = [name for name, present in _CODECS_PRESENT.items() if not present()]
    if missing:
        raise UnsupportedCodecError(f"no library for the {', '.join(missing)} codec(s) (cramjam)")
    _fetcher.MemoryRecords = KeptRecords
    _fetcher.PartitionRecords = TolerantPartitionRecords
