"""`worker.kafka.fetched` on record batches built here (K9): what the C reader refuses is re-read
record by record, and only what cannot be decoded becomes an `UnreadableRecord`.

The broker refuses to store a batch whose CRC fails, so corrupt batches are tested here, on
bytes; the end-to-end cases (kcat, the real broker) are in test_input_records.py.
"""

from __future__ import annotations

import struct

import aiokafka
import pytest
from aiokafka import codec
from aiokafka.consumer import fetcher
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.util import calc_crc32c
from aiokafka.structs import TopicPartition

from worker.kafka.fetched import UnreadableRecord
from worker.kafka.fetcher_fork import (
    MIRRORS,
    READ_COMMITTED,
    UPSTREAM_SHA256,
    KeptRecords,
    TolerantPartitionRecords,
    install,
    upstream_fingerprint,
)

TP = TopicPartition("raw", 0)


def _batch(base_offset: int, values: list[bytes], header: str = "h", compression: int = 0) -> bytearray:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=compression,
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    for i, value in enumerate(values):
        builder.append(i, timestamp=1000 + i, key=b"k", value=value, headers=[(header, b"v")])
    data = builder.build()
    struct.pack_into(">q", data, 0, base_offset)
    return data


def _fix_crc(data: bytearray) -> bytearray:
    struct.pack_into(">I", data, 17, calc_crc32c(bytes(data[21:])))
    return data


def _read(data: bytes, fetch_offset: int = 0) -> list[object]:
    records = TolerantPartitionRecords(
        TP, KeptRecords(data), [], fetch_offset, None, None, True, READ_COMMITTED
    )
    return list(records)


def test_a_readable_fetch_reads_as_aiokafka_does() -> None:
    data = bytes(_batch(0, [b"a", b"b"]) + _batch(2, [b"c"]))
    records = _read(data)
    assert [(r.offset, r.value, list(r.headers)) for r in records] == [  # type: ignore[attr-defined]
        (0, b"a", [("h", b"v")]),
        (1, b"b", [("h", b"v")]),
        (2, b"c", [("h", b"v")]),
    ]
    assert not any(isinstance(r, UnreadableRecord) for r in records)


def _compressed(batch: bytearray) -> bytearray:
    """The same batch with its records zstd-compressed (attributes codec 4), as kcat -z zstd sends."""
    body = codec.zstd_encode(bytes(batch[61:]))
    out = bytearray(batch[:61]) + body
    struct.pack_into(">i", out, 8, len(out) - 12)
    (attributes,) = struct.unpack_from(">h", out, 21)
    struct.pack_into(">h", out, 21, attributes | 4)
    return _fix_crc(out)


@pytest.mark.parametrize("compressed", [False, True])
def test_a_header_name_that_is_not_utf8_makes_only_its_record_unreadable(compressed: bool) -> None:
    batch = _batch(10, [b"before", b"bad", b"after"], header="x-AB")
    index = bytes(batch).index(b"x-AB", bytes(batch).index(b"bad"))  # the second record's header name
    batch[index + 2 : index + 4] = b"\xff\xfe"
    batch = _compressed(batch) if compressed else _fix_crc(batch)
    records = _read(bytes(batch) + bytes(_batch(13, [b"next"])))
    assert [r.offset for r in records] == [10, 11, 12, 13]  # type: ignore[attr-defined]
    bad = records[1]
    assert isinstance(bad, UnreadableRecord)
    assert bad.value == b"bad" and bad.key == b"k" and list(bad.headers) == [("x-\\xff\\xfe", b"v")]
    assert "header name 1 is not UTF-8" in bad.problem
    assert [r.value for r in records if not isinstance(r, UnreadableRecord)] == [b"before", b"after", b"next"]


def test_a_batch_that_cannot_be_decompressed_gives_one_unreadable_record_per_offset() -> None:
    batch = _compressed(_batch(0, [b"a", b"b"]))
    batch[61:65] = b"\x00" * 4  # no zstd frame magic; the CRC made right again
    records = _read(bytes(_fix_crc(batch)))
    assert [(r.offset, type(r).__name__) for r in records] == [
        (0, "UnreadableRecord"),
        (1, "UnreadableRecord"),
    ]  # type: ignore[attr-defined]
    assert all("(zstd) cannot be decompressed" in r.problem for r in records)  # type: ignore[attr-defined]


def test_a_batch_failing_its_crc_gives_one_unreadable_record_per_offset_and_the_next_batch_reads() -> None:
    corrupt = _batch(0, [b"a", b"b", b"c"])
    corrupt[-1] ^= 0xFF
    records = _read(bytes(corrupt) + bytes(_batch(3, [b"d"])))
    assert [(r.offset, type(r).__name__) for r in records] == [  # type: ignore[attr-defined]
        (0, "UnreadableRecord"),
        (1, "UnreadableRecord"),
        (2, "UnreadableRecord"),
        (3, "ConsumerRecord"),
    ]
    assert all("CRC" in r.problem for r in records[:3])  # type: ignore[attr-defined]


def test_a_record_whose_fields_overrun_it_is_unreadable_and_its_neighbours_read() -> None:
    batch = _batch(0, [b"one", b"two", b"three"])
    raw = bytes(batch)
    value_at = raw.index(b"two")
    batch[value_at - 1] = 0x7E  # the value's length (zig-zag varint) now runs past the record
    records = _read(bytes(_fix_crc(batch)))
    assert [r.offset for r in records] == [0, 1, 2]  # type: ignore[attr-defined]
    assert isinstance(records[1], UnreadableRecord) and "corrupt" in records[1].problem
    assert [records[0].value, records[2].value] == [b"one", b"three"]  # type: ignore[attr-defined]


def test_records_before_the_fetch_position_are_not_returned() -> None:
    records = _read(bytes(_batch(0, [b"a", b"b", b"c"])), fetch_offset=2)
    assert [r.offset for r in records] == [2]  # type: ignore[attr-defined]


def test_install_puts_the_reader_in_aiokafkas_fetcher() -> None:
    install()
    assert fetcher.PartitionRecords is TolerantPartitionRecords
    assert fetcher.MemoryRecords is KeptRecords


def test_the_fork_mirrors_the_installed_aiokafka() -> None:
    """worker/kafka/fetcher_fork.py copies aiokafka's record walk: a new aiokafka (or a patched
    one) fails here, loudly, until the fork is re-read against it."""
    assert aiokafka.__version__ == MIRRORS, (
        f"aiokafka {aiokafka.__version__} is installed; worker/kafka/fetcher_fork.py mirrors {MIRRORS}: "
        "re-read PartitionRecords._unpack_records and Fetcher._proc_fetch_request, then update MIRRORS"
    )
    assert upstream_fingerprint() == UPSTREAM_SHA256, (
        "aiokafka's PartitionRecords or Fetcher._proc_fetch_request changed under "
        "worker/kafka/fetcher_fork.py: re-read them against the fork, then update UPSTREAM_SHA256"
    )
