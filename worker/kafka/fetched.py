"""Reading fetched record batches so that no record can stop the stream (K9, K10, K11).

aiokafka 0.14 decodes a fetched partition in `aiokafka.consumer.fetcher.PartitionRecords`:
one iterator over the whole fetch, where a record it cannot decode raises out of `getmany`
— a header name that is not UTF-8 (`UnicodeDecodeError` from the C record reader), a batch
whose CRC fails (`CorruptRecordException`), a codec the client lacks (`UnsupportedCodecError`)
— and the records already read, of that partition and of every other, are lost with it.

`TolerantPartitionRecords` takes its place (installed by `install()`, once per process): the
same batch walk (aborted transactions and control batches skipped, K11), but each batch is
read on its own and a failure is a property of the records it concerns: each becomes an
`UnreadableRecord` carrying what could be read and why, which the runtime answers with one
`malformed_event` (K1, K9). A batch whose records can be located but not all decoded is
re-read record by record (`_read_batch`), so only the faulty record is unreadable.

The fetcher is reached through two module globals (`MemoryRecords`, `PartitionRecords`),
pinned by the exact aiokafka version in pyproject.toml; tests/kafka/test_input_records.py
fails if a new aiokafka stops calling them.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiokafka.consumer.fetcher as _fetcher
from aiokafka import codec
from aiokafka.errors import UnsupportedCodecError
from aiokafka.record.control_record import ABORT_MARKER, ControlRecord
from aiokafka.record.util import decode_varint
from aiokafka.structs import ConsumerRecord, TopicPartition

READ_COMMITTED = 1  # aiokafka's isolation level constant
_BATCH_HEADER = 61  # bytes of a v2 record batch header (KIP-98)
_LOG_APPEND_TIME = 0x08
# A corrupt header could claim any offset range: never make more placeholders than this.
MAX_PLACEHOLDERS = 100_000
_DECODERS = {1: codec.gzip_decode, 2: codec.snappy_decode, 3: codec.lz4_decode, 4: codec.zstd_decode}
_CODEC_NAMES = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}
_CODECS_PRESENT = {
    "gzip": codec.has_gzip,
    "snappy": codec.has_snappy,
    "lz4": codec.has_lz4,
    "zstd": codec.has_zstd,
}


@dataclass
class UnreadableRecord(ConsumerRecord):  # type: ignore[misc]
    """A record the client could not decode: what could be read, and why not the rest (K9).

    `key`, `value` and `headers` hold what was read (None when nothing could be); a header name
    that is not UTF-8 is given with its bad bytes as `\\xNN` escapes (Kafka header names are
    strings on the way out). `problem` is one line for humans, without the record's content.
    """

    problem: str = ""


def unreadable_records(tp: TopicPartition, first: int, end: int, problem: str) -> list[UnreadableRecord]:
    """Placeholders for offsets [first, end) of `tp` that could not be read at all."""
    end = min(end, first + MAX_PLACEHOLDERS)
    return [
        UnreadableRecord(tp.topic, tp.partition, offset, -1, 0, None, None, None, -1, -1, (), problem)
        for offset in range(first, end)
    ]


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
        # ConsumerRecord aiokafka's `_consumer_record` builds (issue 11: per-record cost).
        plain = self._key_deserializer is None and self._value_deserializer is None
        while records.has_next():
            batch = records.next_batch()
            size = _batch_size(data, position)
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
                decoded = list(_read_batch(tp, raw, batch, exc))
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


def _batch_size(data: bytes | None, position: int) -> int:
    """Bytes of the batch starting at `position` (offset, length, then `length` bytes)."""
    if data is None or position + 12 > len(data):
        return 0
    (length,) = struct.unpack_from(">i", data, position + 8)
    return 12 + int(length)


def _read_batch(tp: TopicPartition, raw: bytes | None, batch: Any, error: Exception) -> Iterator[Any]:
    """Re-read a v2 batch the C reader refused, one record at a time (K9).

    Yields aiokafka-shaped records (`_Record`) for what decodes and `UnreadableRecord`s for
    the rest. A batch that cannot be decompressed (a codec the client lacks, corrupt data)
    yields one placeholder per offset it covers.
    """
    first, end = batch.base_offset, batch.next_offset
    if raw is None or len(raw) < _BATCH_HEADER or raw[16] < 2:
        problem = f"its record batch cannot be read ({type(error).__name__})"
        yield from unreadable_records(tp, first, end, problem)
        return
    (attributes,) = struct.unpack_from(">h", raw, 21)
    compression = attributes & 0x07
    first_timestamp, max_timestamp = struct.unpack_from(">qq", raw, 27)
    (count,) = struct.unpack_from(">i", raw, 57)
    body: bytes = raw[_BATCH_HEADER:]
    if compression:
        try:
            body = bytes(_DECODERS[compression](body))
        except Exception as exc:
            name = _CODEC_NAMES.get(compression, f"codec {compression}")
            yield from unreadable_records(
                tp, first, end, f"its record batch ({name}) cannot be decompressed ({type(exc).__name__})"
            )
            return
    log_append = bool(attributes & _LOG_APPEND_TIME)
    timestamp_type = 1 if log_append else 0
    position, offset = 0, first
    for _ in range(count):
        try:
            length, start = decode_varint(body, position)
            if length < 0 or start + length > len(body):
                raise ValueError("record length out of range")
        except (ValueError, IndexError):
            break  # the records after this one cannot be located
        record = _read_record(tp, body, start, start + length, first, first_timestamp, timestamp_type)
        if log_append:
            record.timestamp = max_timestamp
        offset = record.offset + 1
        position = start + length
        yield record
    if offset < end:
        yield from unreadable_records(tp, offset, end, "its record batch is truncated or corrupt")


@dataclass
class _Record:
    """A decoded record, shaped like aiokafka's for `PartitionRecords._consumer_record`."""

    offset: int
    timestamp: int
    timestamp_type: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    checksum: None = None


def _read_record(
    tp: TopicPartition, body: bytes, pos: int, end: int, base: int, first_timestamp: int, timestamp_type: int
) -> Any:
    """One v2 record of `body[pos:end]`; what fails to decode makes it an `UnreadableRecord`."""
    offset = base
    key: bytes | None = None
    value: bytes | None = None
    headers: list[tuple[str, bytes | None]] = []
    problems: list[str] = []
    timestamp = -1
    try:
        pos += 1  # attributes: unused
        delta, pos = decode_varint(body, pos)
        timestamp = first_timestamp + delta
        offset_delta, pos = decode_varint(body, pos)
        offset = base + offset_delta
        key, pos = _read_bytes(body, pos)
        value, pos = _read_bytes(body, pos)
        count, pos = decode_varint(body, pos)
        for number in range(1, count + 1):
            name, pos = _read_bytes(body, pos)
            header_value, pos = _read_bytes(body, pos)
            if name is None:
                raise ValueError("a header has no name")
            try:
                text = name.decode("utf-8")
            except UnicodeDecodeError:
                text = name.decode("utf-8", "backslashreplace")
                problems.append(f"header name {number} is not UTF-8 (written with \\x escapes)")
            headers.append((text, header_value))
        if pos != end:
            raise ValueError("record length does not match its fields")
    except (ValueError, IndexError) as exc:
        problems.append(f"the record is corrupt ({type(exc).__name__})")
    if problems:
        return UnreadableRecord(
            tp.topic,
            tp.partition,
            offset,
            timestamp,
            timestamp_type,
            key,
            value,
            None,
            -1 if key is None else len(key),
            -1 if value is None else len(value),
            tuple(headers),
            "; ".join(problems),
        )
    return _Record(offset, timestamp, timestamp_type, key, value, headers)


def _read_bytes(body: bytes, pos: int) -> tuple[bytes | None, int]:
    length, pos = decode_varint(body, pos)
    if length < 0:
        return None, pos
    if pos + length > len(body):
        raise ValueError("field runs past the record")
    return body[pos : pos + length], pos + length


_MEMORY_RECORDS = _fetcher.MemoryRecords


def install() -> None:
    """Make aiokafka's fetcher read through this module (idempotent; process-wide).

    Raises UnsupportedCodecError when a codec Kafka defines has no library here: a broken
    installation, not a property of the records it would make unreadable (K10).
    """
    missing = [name for name, present in _CODECS_PRESENT.items() if not present()]
    if missing:
        raise UnsupportedCodecError(f"no library for the {', '.join(missing)} codec(s) (cramjam)")
    _fetcher.MemoryRecords = KeptRecords
    _fetcher.PartitionRecords = TolerantPartitionRecords
