"""Sizes of records in a Kafka record batch (format v2, uncompressed), as the broker counts them.

An output topic's `max.message.bytes` bounds a whole record batch: its 61-byte header (the
12-byte log overhead included) plus each record's framing, key, value and headers (K9).
"""

from __future__ import annotations

from typing import Final

from aiokafka.record.default_records import DefaultRecordBatchBuilder

Headers = list[tuple[str, bytes | None]]

_estimate = DefaultRecordBatchBuilder.estimate_size_in_bytes
# A batch header and one record's framing, varints at their widest (bytes): a record whose
# len(key) + len(value) + headers_bytes(headers) is at most a limit minus FRAME fits a batch alone.
FRAME: Final = int(_estimate(b"", b"", [])) + 15
_VALUE_LENGTH: Final = 4  # a value's length varint: 1 byte when empty, at most 5


def headers_bytes(headers: Headers) -> int:
    """At least what the headers add to a record (their names in UTF-8, varints at their widest)."""
    return sum(len(name.encode("utf-8")) + len(value or b"") + 10 for name, value in headers)


def value_budget(limit: int, key: bytes | None, headers: Headers) -> int:
    """The largest value (bytes) a record with this key and headers may have in a batch of its
    own under `limit` bytes (aiokafka's upper estimate of the rest)."""
    return limit - int(_estimate(key, b"", headers)) - _VALUE_LENGTH
