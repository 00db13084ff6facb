"""Collecting one checkpoint's records (K4): `getmany` until `batch_size` records or
`batch_linger_ms` after the first one, or until SIGTERM (K6: stop fetching) or a revocation (K5).

A record the client cannot decode is an `UnreadableRecord` (K9, `worker.kafka.fetcher_fork`),
never an exception. A fetch fault ends the checkpoint with what was collected (the consumer's
positions never pass a record not returned) and marks it `fetch_fault`: the member backs off.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from worker.kafka.consumer import InputConsumer
from worker.runtime.checkpoint import Checkpoint
from worker.runtime.faults import Reporter
from worker.settings import Settings

# While a transaction is in flight, a started checkpoint checks this often whether it may close.
IDLE_POLL = 0.005


@dataclass
class Generation:
    """The assignments this member has seen (K5): each revocation moves it on, and a checkpoint
    collected under an older one is dropped (its records are fetched again)."""

    current: int = 0


class Collector:
    """The member's consumer read under the settings' K4 limits; a fetch fault goes to `fault` (K10)."""

    def __init__(self, consumer: InputConsumer, settings: Settings, generation: Generation, fault: Reporter):
        self.consumer = consumer
        self.generation = generation
        self.fault = fault
        self.size = settings.batch_size  # records
        self.linger = settings.batch_linger_ms / 1000  # seconds

    async def collect(self, stop: asyncio.Event, inflight: asyncio.Task[None] | None) -> Checkpoint:
        """Up to `size` records, closing `linger` seconds after the first one.

        A checkpoint also closes as soon as there is nothing in flight to wait for: under light
        load a record does not sit out the linger (delay), under backlog the checkpoint fills
        while the previous transaction commits (throughput). A fatal fetch fault raises
        `FatalFault` (from the reporter).
        """
        checkpoint = Checkpoint(self.generation.current)
        closes_at: float | None = None
        while checkpoint.count < self.size and not stop.is_set() and not self.revoked(checkpoint):
            if closes_at is None:
                wait = 0.2
            elif inflight is None or inflight.done():
                break
            else:
                wait = min(IDLE_POLL, max(0.0, closes_at - time.monotonic()))
            try:
                got = await self.consumer.getmany(
                    timeout_ms=int(wait * 1000), max_records=self.size - checkpoint.count
                )
            except Exception as exc:
                self.fault("kafka", exc, "fetch failed")
                checkpoint.fetch_fault = True
                return checkpoint
            checkpoint.add(got)
            if checkpoint.count and closes_at is None:
                closes_at = time.monotonic() + self.linger
            if closes_at is not None and time.monotonic() >= closes_at:
                break
            if not checkpoint.count:
                break  # idle: let the caller look at `stop`, the waits and the control records
        return checkpoint

    def revoked(self, checkpoint: Checkpoint) -> bool:
        """K5: a revocation came after `checkpoint` was collected (its records are fetched again)."""
        return checkpoint.generation != self.generation.current
