"""The log filter that keeps aiokafka's per-retry warnings from flooding stderr (K8)."""

from __future__ import annotations

import logging

from worker.ops.logging import RepeatLimit


def _record(msg: str, name: str = "aiokafka.producer.sender", *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args, None)


def test_a_burst_is_cut_to_the_limit_per_window_and_the_next_window_says_how_many_were_held() -> None:
    now = [0.0]
    limit = RepeatLimit(per_window=3, window=10.0, clock=lambda: now[0])
    shown = [limit.filter(_record("Got error produce response: %s", "aiokafka", "x")) for _ in range(50)]
    assert shown.count(True) == 3 and shown[:3] == [True, True, True]
    now[0] = 10.5
    first = _record("Got error produce response: %s", "aiokafka", "x")
    assert limit.filter(first)
    assert "[47 similar lines held back in the previous 10 s]" in first.getMessage()
    assert first.getMessage().startswith("Got error produce response: x")


def test_different_templates_and_loggers_are_counted_apart() -> None:
    limit = RepeatLimit(per_window=1, window=10.0, clock=lambda: 0.0)
    assert limit.filter(_record("a"))
    assert not limit.filter(_record("a"))
    assert limit.filter(_record("b"))
    assert limit.filter(_record("a", "aiokafka.consumer"))


def test_a_quiet_logger_loses_nothing() -> None:
    now = [0.0]
    limit = RepeatLimit(per_window=2, window=1.0, clock=lambda: now[0])
    for i in range(20):
        now[0] = i * 0.6  # under two per window
        record = _record("tick")
        assert limit.filter(record)
        assert record.getMessage() == "tick"
