"""Partitions held at a record that must wait, each on its own backoff (K8, K9).

A record whose community cannot be read now (`ConfigUnavailable`: the store is down and the
community is not cached, or its stored rows fail the model) gets no verdict. Its partition
is paused at that record and retried on a capped backoff of its own, while every other
partition flows at full speed: no sleep of the whole worker. What waits and why is kept
here, for the logs (`worker.runtime.member`), the `identity_worker_partitions_waiting` gauge
and /readyz (`Health.waiting`).

Pure bookkeeping: no I/O, the clock is passed in (seconds, monotonic).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiokafka.structs import TopicPartition

from worker.backoff import Backoff, RetryPolicy


@dataclass
class Wait:
    offset: int  # the record that waits
    error: str  # the fault's type, e.g. ConfigUnavailable
    detail: str  # one line, no record content
    since: float
    resume_at: float
    backoff: Backoff
    attempts: int = 1


@dataclass
class Waits:
    retry: RetryPolicy  # each partition's delays between tries (K8)
    held: dict[TopicPartition, Wait] = field(default_factory=dict)

    def hold(self, tp: TopicPartition, offset: int, error: BaseException, now: float) -> Wait:
        """`tp` must wait at `offset`; returns its wait (a new one, or the same one retried)."""
        wait = self.held.get(tp)
        if wait is None or wait.offset != offset:
            wait = Wait(offset, type(error).__name__, str(error)[:200], now, now, self.retry.backoff(), 0)
            self.held[tp] = wait
        wait.attempts += 1
        wait.error, wait.detail = type(error).__name__, str(error)[:200]
        wait.resume_at = now + wait.backoff.next_delay()
        return wait

    def due(self, now: float) -> list[TopicPartition]:
        """Held partitions whose next try has come (each returned once per try)."""
        ready = [tp for tp, wait in self.held.items() if wait.resume_at <= now]
        for tp in ready:
            self.held[tp].resume_at = float("inf")  # until `hold` or `release`
        return ready

    def release(self, tp: TopicPartition) -> Wait | None:
        """A record of `tp` was decided: it no longer waits."""
        return self.held.pop(tp, None)

    def drop(self, tps: set[TopicPartition]) -> None:
        """Revoked partitions: their next owner decides."""
        for tp in tps:
            self.held.pop(tp, None)

    def describe(self, now: float) -> list[str]:
        """One line per waiting partition, for /readyz and the progress line."""
        return [
            f"{tp.topic}[{tp.partition}] waits at offset {wait.offset} for {now - wait.since:.0f} s: "
            f"{wait.error} ({wait.detail})"
            for tp, wait in sorted(self.held.items(), key=lambda item: (item[0].topic, item[0].partition))
        ]

    def __contains__(self, tp: object) -> bool:
        return tp in self.held

    def __len__(self) -> int:
        return len(self.held)
