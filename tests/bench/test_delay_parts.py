"""The paced levels' delay parts and the paced producer's bookkeeping (bench/kbench/runs.py,
bench/kbench/kafka_io.py): pure, no Kafka.

A delay splits into sent -> decided (the output's `processed_at`) -> appended (its CreateTime)
-> seen; the slowest 1 %'s mean of each part says what the tail is made of
(docs/performance.md, "What the delay tail was")."""

from __future__ import annotations

import asyncio
import math
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

# Appended, not prepended: bench/ holds scripts (pipeline.py, scale.py) no import may find first.
sys.path.append(str(Path(__file__).resolve().parents[2] / "bench"))

from kbench import kafka_io
from kbench.runs import delay_parts


def test_the_slowest_records_parts_say_where_their_delay_went() -> None:
    # 99 records: 2 ms to the decision, 1 ms to the append, 3 ms to the collector; the 100th
    # waited 80 ms for its decision (a transaction ahead of it was slow).
    sent = {key: 100.0 + key for key in range(100)}
    parts = {key: (sent[key] + 0.002, sent[key] + 0.003) for key in range(99)}
    got = {key: sent[key] + 0.006 for key in range(99)}
    parts[99] = (sent[99] + 0.080, sent[99] + 0.081)
    got[99] = sent[99] + 0.084
    found = delay_parts(sent, got, parts)
    assert found["to_decide"]["p50"] == pytest.approx(2.0, abs=0.01)
    assert found["to_decide"]["tail_mean"] == pytest.approx(80.0, abs=0.01)
    assert found["to_append"]["tail_mean"] == pytest.approx(1.0, abs=0.01)
    assert found["to_seen"]["tail_mean"] == pytest.approx(3.0, abs=0.01)


def test_processed_at_is_read_from_the_output_as_epoch_seconds() -> None:
    stamp = datetime(2026, 12, 5, 8, 30, 1, 250000, tzinfo=UTC).timestamp()
    value = b'{"outcome":"enriched","processed_at":"2026-12-05T08:30:01.250000Z","source":{}}'
    assert kafka_io.processed_at(value) == pytest.approx(stamp)
    assert math.isnan(kafka_io.processed_at(b'{"outcome":"rejected"}'))


async def test_acknowledged_sends_are_dropped_and_a_failed_one_raises() -> None:
    loop = asyncio.get_running_loop()
    done, pending, failed = loop.create_future(), loop.create_future(), loop.create_future()
    done.set_result("metadata")
    assert kafka_io._unacknowledged([done, pending]) == [pending]
    failed.set_exception(RuntimeError("refused"))
    with pytest.raises(RuntimeError, match="refused"):
        kafka_io._unacknowledged([done, failed, pending])
    pending.cancel()
