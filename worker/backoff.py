"""The one retry policy of every infrastructure retry (K8): capped exponential backoff with jitter.

`RetryPolicy.from_settings` reads `retry_backoff_initial_ms` → `retry_backoff_max_ms` once; the
member (fetch, commit, recovery, start-up), the waiting partitions (`worker.runtime.waits`) and
the store cache (start-up, reconnect: `worker.store.cache`) all take their delays from it. It
imports nothing of the worker, so every layer may use it (docs/architecture.md, the import
contracts in pyproject.toml).

- `RetryPolicy.backoff()`: the state of one sequence of retries (`next_delay`, `reset`, `sleep`).
- `retry_until`: retry a step until it succeeds, a fault says stop, or a deadline passes
  (start-up of the member and of the store cache).

Never a verdict: only infrastructure faults are retried (K8, K10); what is retryable is the
caller's `on_fault` to say (`worker.runtime.faults.classify`, the store's own errors).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar

T = TypeVar("T")

#: The settings' defaults (`retry_backoff_initial_ms`, `retry_backoff_max_ms`), defined here so
#: that every layer may take its policy from this module without importing the settings.
DEFAULT_INITIAL_MS = 200
DEFAULT_MAX_MS = 10_000

#: Start-up retries are capped here: a start notices Kafka or the store within seconds of it
#: answering, whatever the running worker's cap.
STARTUP_MAX_SECONDS = 5.0


class RetrySettings(Protocol):
    """What `RetryPolicy.from_settings` reads (`worker.settings.Settings` has both, in ms)."""

    @property
    def retry_backoff_initial_ms(self) -> int: ...
    @property
    def retry_backoff_max_ms(self) -> int: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Delays in seconds: `initial`, doubled per failure, capped at `maximum`.

    Each delay is drawn in [(1 - jitter) × d, d], so members retrying the same fault spread out.
    """

    initial: float
    maximum: float
    jitter: float = 0.2

    @classmethod
    def from_settings(cls, settings: RetrySettings) -> RetryPolicy:
        return cls(settings.retry_backoff_initial_ms / 1000, settings.retry_backoff_max_ms / 1000)

    @classmethod
    def default(cls) -> RetryPolicy:
        """The settings' defaults, for a component built without settings (tests, tools)."""
        return cls(DEFAULT_INITIAL_MS / 1000, DEFAULT_MAX_MS / 1000)

    def capped(self, maximum: float) -> RetryPolicy:
        """The same policy with a lower cap (never a higher one)."""
        return replace(self, maximum=min(self.maximum, maximum))

    def for_startup(self) -> RetryPolicy:
        return self.capped(STARTUP_MAX_SECONDS)

    def delay(self, failures: int) -> float:
        """Seconds to wait after `failures` earlier failures of the same sequence (0: the first)."""
        delay = min(self.maximum, self.initial * (2 ** min(failures, 30)))
        return float(delay * random.uniform(1.0 - self.jitter, 1.0))

    def backoff(self) -> Backoff:
        return Backoff(self)


class Backoff:
    """One sequence of retries under a `RetryPolicy`: each `next_delay` is longer, up to the cap."""

    __slots__ = ("failures", "policy")

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.failures = 0

    def next_delay(self) -> float:
        delay = self.policy.delay(self.failures)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0

    async def sleep(self, stop: asyncio.Event | None = None) -> None:
        """Wait the next delay; returns early when `stop` is set (K6 beats K8)."""
        await pause(self.next_delay(), stop)


async def pause(seconds: float, stop: asyncio.Event | None = None) -> None:
    """Sleep `seconds`, or less when `stop` is set meanwhile."""
    if stop is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def retry_until(
    step: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    deadline: float | None,
    on_fault: Callable[[Exception, float], None],
    gave_up: Callable[[Exception], BaseException],
    stop: asyncio.Event | None = None,
) -> T:
    """`step()` until it returns; between tries, the policy's next delay.

    `on_fault(exc, delay)` sees every failure with the delay before the next try: it counts and
    logs it, or raises to end the retries at once (a fatal fault, K10). Once `deadline`
    (`time.monotonic()` seconds; None: never) has passed, or `stop` is set, the last failure
    ends it: `gave_up(exc)` is raised. The last try happens at the deadline at the latest.
    """
    backoff = policy.backoff()
    while True:
        try:
            return await step()
        except Exception as exc:
            delay = backoff.next_delay()
            on_fault(exc, delay)
            left = None if deadline is None else deadline - time.monotonic()
            if (left is not None and left <= 0) or (stop is not None and stop.is_set()):
                raise gave_up(exc) from None
            await pause(delay if left is None else min(delay, left), stop)
