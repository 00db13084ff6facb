"""Reading a fetched record batch that aiokafka's C reader refuses, one record at a time (K9).

A record the client cannot decode — a header name that is not UTF-8, a batch whose CRC fails,
a codec the client lacks, a truncated or corrupt batch — becomes an `UnreadableRecord`
carrying what could be read and why, which the runtime answers with one `malformed_event`
(K1, K9). A batch whose records can be located but not all decoded is re-read record by
record (`read_batch`), so only the faulty record is unreadable.

Own code on aiokafka's public record types; the fork of aiokafka's fetcher that calls it is
`worker.kafka.fetcher_fork`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiokafka import codec
from aiokafka.record.util import decode_varint
from aiokafka.structs import ConsumerRecord, TopicPartition

_BATCH_HEADER = 61  # bytes of a v2 record batch header (KIP-98)
_LOG_APPEND_TIME = 0x08
# A corrupt header could claim any offset range: never make more placeholders than this.
MAX_PLACEHOLDERS = 100_000
_DECODERS = {1: codec.gzip_decode, 2: codec.snappy_decode, 3: codec.lz4_decode, 4: codec.zstd_decode}
_CODEC_NAMES = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


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


def batch_size(data: bytes | None, position: int) -> int:
    """Bytes of the batch starting at `position` (offset, length, then `length` bytes)."""
    if data is None or position + 12 > len(data):
        return 0
    (length,) = struct.unpack_from(">i", data, position + 8)
    return 12 + int(length)


def read_batch(tp: TopicPartition, raw: bytes | None, batch: Any, error: Exception) -> Iterator[Any]:
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
