"""Capped exponential backoff with jitter for infrastructure retries (K8)."""

from __future__ import annotations

import asyncio
import contextlib
import random


class Backoff:
    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = maximum
        self.failures = 0

    def next_delay(self) -> float:
        delay = min(self.maximum, self.initial * (2 ** min(self.failures, 30)))
        self.failures += 1
        return float(delay * random.uniform(0.8, 1.0))

    def reset(self) -> None:
        self.failures = 0

    async def sleep(self, stop: asyncio.Event | None = None) -> None:
        """Wait the next delay; returns early when `stop` is set (K6 beats K8)."""
        delay = self.next_delay()
        if stop is None:
            await asyncio.sleep(delay)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
