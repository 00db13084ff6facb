"""K1 in the commit step: a batch commits only if every output was acknowledged.

`_delivered` replaced `asyncio.gather` over one future per output. These tests drive
it with real asyncio futures and a stand-in whose `flush` resolves them the way aiokafka's
batch does (no broker involved: the Kafka path is covered by tests/broker).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError

from worker.runtime.checkpoint import _delivered


class Flushing:
    """flush() resolves the given futures with the given outcomes, like a batch's `done`/`failure`."""

    def __init__(self, outcomes: list[BaseException | None], resolve_late: int = 0) -> None:
        self.outcomes = outcomes
        self.resolve_late = resolve_late  # how many futures are resolved only after flush returns
        self.futures: list[asyncio.Future[Any]] = []

    def make(self) -> list[asyncio.Future[Any]]:
        loop = asyncio.get_running_loop()
        self.futures = [loop.create_future() for _ in self.outcomes]
        return self.futures

    async def flush(self) -> None:
        loop = asyncio.get_running_loop()
        cut = len(self.futures) - self.resolve_late
        for future, outcome in list(zip(self.futures, self.outcomes, strict=True))[:cut]:
            self._resolve(future, outcome)
        for future, outcome in list(zip(self.futures, self.outcomes, strict=True))[cut:]:
            loop.call_later(0.01, self._resolve, future, outcome)

    @staticmethod
    def _resolve(future: asyncio.Future[Any], outcome: BaseException | None) -> None:
        if outcome is None:
            future.set_result("metadata")
        else:
            future.set_exception(outcome)


async def test_all_acknowledged_returns() -> None:
    producer = Flushing([None] * 5)
    await _delivered(producer, producer.make())


async def test_one_failed_send_fails_the_batch_and_every_error_is_retrieved() -> None:
    first, second = KafkaTimeoutError("one"), KafkaTimeoutError("two")
    producer = Flushing([None, first, None, second])
    futures = producer.make()
    with pytest.raises(KafkaTimeoutError) as info:
        await _delivered(producer, futures)
    assert info.value is first
    # retrieved: asyncio would otherwise log "exception was never retrieved" for the second
    assert all(not f._log_traceback for f in futures)  # type: ignore[attr-defined]


async def test_a_future_still_pending_after_flush_is_waited_for() -> None:
    failure = KafkaTimeoutError("late")
    producer = Flushing([None, None, failure], resolve_late=1)
    with pytest.raises(KafkaTimeoutError):
        await _delivered(producer, producer.make())
