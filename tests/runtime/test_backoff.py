"""The one retry policy (K8): delays, jitter, the cap, and `retry_until`."""

from __future__ import annotations

import asyncio
import time

import pytest

from worker.backoff import STARTUP_MAX_SECONDS, RetryPolicy, retry_until
from worker.settings import Settings


def test_delays_double_up_to_the_cap_with_jitter_below_each_step() -> None:
    backoff = RetryPolicy(initial=0.2, maximum=1.0).backoff()
    delays = [backoff.next_delay() for _ in range(6)]
    for delay, step in zip(delays, [0.2, 0.4, 0.8, 1.0, 1.0, 1.0], strict=True):
        assert 0.8 * step <= delay <= step
    backoff.reset()
    assert 0.16 <= backoff.next_delay() <= 0.2
    assert len({RetryPolicy(1.0, 1.0).delay(0) for _ in range(20)}) > 1  # members spread out


def test_the_policy_comes_from_the_settings_and_start_up_caps_it() -> None:
    settings = Settings.model_validate(
        {"bootstrap_servers": "127.0.0.1:1", "retry_backoff_initial_ms": 300, "retry_backoff_max_ms": 30_000}
    )
    policy = RetryPolicy.from_settings(settings)
    assert (policy.initial, policy.maximum) == (0.3, 30.0)
    assert policy.for_startup().maximum == STARTUP_MAX_SECONDS
    assert RetryPolicy(0.1, 2.0).for_startup().maximum == 2.0  # a cap is never raised
    default = RetryPolicy.default()
    assert (default.initial, default.maximum) == (0.2, 10.0)


async def test_retry_until_retries_then_returns_the_result() -> None:
    calls: list[float] = []
    seen: list[tuple[str, float]] = []

    async def step() -> str:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise ConnectionError(f"try {len(calls)}")
        return "up"

    result = await retry_until(
        step,
        RetryPolicy(0.05, 0.1),
        deadline=time.monotonic() + 10,
        on_fault=lambda exc, delay: seen.append((str(exc), delay)),
        gave_up=lambda exc: AssertionError("gave up"),
    )
    assert result == "up" and [text for text, _ in seen] == ["try 1", "try 2"]
    assert calls[1] - calls[0] >= 0.04 and calls[2] - calls[1] >= 0.08  # the policy's delays


async def test_retry_until_gives_up_at_the_deadline_and_a_fault_can_end_it_at_once() -> None:
    async def down() -> None:
        raise ConnectionError("refused")

    started = time.monotonic()
    with pytest.raises(TimeoutError, match="refused"):
        await retry_until(
            down,
            RetryPolicy(0.05, 5.0),
            deadline=started + 0.4,
            on_fault=lambda exc, delay: None,
            gave_up=lambda exc: TimeoutError(str(exc)),
        )
    assert 0.4 <= time.monotonic() - started < 1.0  # tried up to the deadline, never slept past it

    def fatal(exc: Exception, delay: float) -> None:
        raise PermissionError("fatal")

    with pytest.raises(PermissionError):
        await retry_until(down, RetryPolicy(5.0, 5.0), deadline=None, on_fault=fatal, gave_up=TimeoutError)


async def test_retry_until_stops_when_asked() -> None:
    stop = asyncio.Event()

    async def down() -> None:
        raise ConnectionError("refused")

    asyncio.get_running_loop().call_later(0.1, stop.set)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await retry_until(
            down,
            RetryPolicy(5.0, 5.0),
            deadline=None,
            on_fault=lambda e, d: None,
            gave_up=TimeoutError,
            stop=stop,
        )
    assert time.monotonic() - started < 1.0  # K6 beats K8: the 5 s sleep ended at once
