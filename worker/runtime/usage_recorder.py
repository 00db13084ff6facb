"""Key usage and integration health counted by the worker (DESIGN §11, L1, L5).

`UsageRecorder.count` runs once per committed batch (the member's commit hook): one pass over
the batch's outputs into a per-batch dict, then one merge per distinct (community, outcome,
reason, kid) into the pending buckets (`worker.runtime.usage_buckets`: held so that counting
makes no object the garbage collector tracks, T6). No I/O: event processing never waits for
PostgreSQL.

A background task (`run`) writes the pending buckets every `flush_seconds` with one statement
per `FLUSH_CHUNK` buckets (`worker.store.usage.write_counts`) on its own connection: the write
rate is a statement per worker per flush interval at ordinary spreads, and at most
`max_pending / flush_seconds` rows a second whatever the spread (T6). When PostgreSQL cannot
take them (outage, timeout), they stay pending and are merged with what comes next: nothing is
lost while the buffer has room. The buffer holds at most `max_pending` buckets; an event whose
bucket would be new when it is full is not counted and adds to `dropped` (a metric, and a
warning at the next flush attempt).

What counts (L1): a token *verified* by a key is one whose signature the key verified (V7),
C4 cache hits included, unless the token had expired: an expired token only proves the key
was used when it was issued. A *signature failure* is an `invalid_signature` verdict. Events
of communities that are not configured (unknown_community, unreadable events) are counted
under community '' so attacker-chosen ids never make new rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Final

import asyncpg
import structlog

from worker.core.records import Output
from worker.runtime.usage_buckets import (
    NO_COMMUNITY,
    Buckets,
    HealthBucket,
    HealthTally,
    KeyBucket,
    KeyTally,
)
from worker.store.db import connect, describe, translate
from worker.store.usage import prune, write_counts

log = structlog.get_logger(__name__)

DEFAULT_FLUSH_SECONDS: Final = 5.0
DEFAULT_MAX_PENDING: Final = 100_000
#: Buckets of each table per statement of a flush (T1: a few ms of the event loop each).
FLUSH_CHUNK: Final = 1000
#: Old buckets are pruned this often (any worker; idempotent).
PRUNE_EVERY_SECONDS: Final = 3600.0
APPLICATION_NAME: Final = "identity-worker-usage"

__all__ = ["NO_COMMUNITY", "HealthTally", "KeyTally", "UsageRecorder"]


class UsageRecorder:
    """In-memory counts of one worker process and their batched flush to PostgreSQL."""

    def __init__(
        self,
        dsn: str | None,
        *,
        configured: Callable[[str], bool],
        flush_seconds: float = DEFAULT_FLUSH_SECONDS,
        max_pending: int = DEFAULT_MAX_PENDING,
        query_timeout: float = 10.0,
        on_counts: Callable[[str, str, str, int], None] | None = None,
    ) -> None:
        self._dsn = dsn
        self._configured = configured
        self.flush_seconds = flush_seconds
        self.max_pending = max_pending
        self.query_timeout = query_timeout
        self._on_counts = on_counts  # (community, outcome, reason, n): the metrics allow-list
        self._buckets = Buckets()  # what was counted since the last flush took it
        self._in_flight = 0  # buckets taken by a flush that is running (they count against the bound)
        # Monotonic counters, served as the usage_* metrics (runtime/service.py).
        self.dropped = 0  # events not counted: the buffer was full
        self.flushes = 0
        self.flush_failures = 0
        self.rows_written = 0
        self.statements = 0
        self.errors = 0  # counting bugs (each loses one batch's counts, added to `dropped`)
        self._dropped_logged = 0
        self._conn: asyncpg.Connection | None = None
        self._next_prune = 0.0

    @property
    def pending(self) -> int:
        """Buckets waiting to be written (those of a flush in progress included)."""
        return self._buckets.size + self._in_flight

    @property
    def keys(self) -> dict[KeyBucket, KeyTally]:
        """Key buckets not yet taken by a flush (a copy, for tests and diagnostics)."""
        return self._buckets.key_view()

    @property
    def health(self) -> dict[HealthBucket, HealthTally]:
        """Health buckets not yet taken by a flush (a copy, for tests and diagnostics)."""
        return self._buckets.health_view()

    # ------------------------------------------------------------------ counting (per batch)

    def count(self, outputs: Sequence[Output], now: float) -> None:
        """Count one committed batch's outputs at `now` (epoch seconds). No I/O, never raises:
        it runs after the batch committed, and a counting bug must not touch event processing."""
        try:
            self._count(outputs, now)
        except Exception as exc:  # a bug: say so (not per batch), lose this batch's counts only
            self.dropped += len(outputs)
            self.errors += 1
            if self.errors == 1 or self.errors % 1000 == 0:
                log.error("usage counting failed", error_type=type(exc).__name__, errors=self.errors)

    def _count(self, outputs: Sequence[Output], now: float) -> None:
        room = self.max_pending - self.pending
        self.dropped += self._buckets.count(outputs, now, room, self._configured, self._on_counts)

    # ------------------------------------------------------------------ flushing (background)

    async def run(self, stop: asyncio.Event) -> None:
        """Flush every `flush_seconds` until `stop`, then once more (bounded by the query timeout)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.flush_seconds)
            try:
                await self.flush()
            except Exception as exc:  # a bug: the task lives on, the next flush tries again
                log.error("usage flush failed", error_type=type(exc).__name__)

    async def flush(self) -> bool:
        """Write what is pending, `FLUSH_CHUNK` buckets per statement; True when all was written
        (or nothing was pending).

        T1, T6: events spread over 100 000 communities leave as many buckets per flush; one
        statement of 50 000 rows held the event loop ~120 ms to build and encode, a chunk holds
        it a few ms. What a failure leaves unwritten is merged back (nothing lost) and the next
        flush retries; chunks already written stay written (each adds once).
        """
        self._report_drops()
        if not self._buckets.size:
            return True
        keys, health = self._buckets.rows()
        self._buckets = Buckets()
        self._in_flight = len(keys) + len(health)
        done = 0
        try:
            conn = await self._connection()
            while done < max(len(keys), len(health)):
                rows_k, rows_h = keys[done : done + FLUSH_CHUNK], health[done : done + FLUSH_CHUNK]
                await write_counts(conn, rows_k, rows_h, timeout=self.query_timeout)
                done += FLUSH_CHUNK
                self.statements += 1
                self.rows_written += len(rows_k) + len(rows_h)
                self._in_flight -= len(rows_k) + len(rows_h)
            await self._maybe_prune(conn)
        except Exception as exc:  # infrastructure (K8): keep the counts, retry at the next flush
            self.flush_failures += 1
            self._drop_connection()
            self._in_flight = 0
            self._buckets.merge_rows(keys[done:], health[done:])
            error = translate(exc, self._dsn).message if self._dsn else describe(exc)
            log.warning(
                "usage counts not written; kept for the next flush",
                error=error,
                pending=self.pending,
                dropped_events=self.dropped,
            )
            return False
        self._in_flight = 0
        self.flushes += 1
        return True

    def _report_drops(self) -> None:
        if self.dropped > self._dropped_logged:
            log.warning(
                "usage buffer full: events not counted",
                dropped_events=self.dropped - self._dropped_logged,
                dropped_total=self.dropped,
                max_pending=self.max_pending,
            )
            self._dropped_logged = self.dropped

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            assert self._dsn is not None
            self._conn = await connect(
                self._dsn,
                timeout=self.query_timeout,
                server_settings={"application_name": APPLICATION_NAME},
            )
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    async def _maybe_prune(self, conn: asyncpg.Connection) -> None:
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + PRUNE_EVERY_SECONDS
        await prune(conn, timeout=self.query_timeout)

    async def close(self) -> None:
        log.info(
            "usage counts: totals",
            flushes=self.flushes,
            flush_failures=self.flush_failures,
            rows_written=self.rows_written,
            pending=self.pending,
            dropped_events=self.dropped,
        )
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)
            conn.terminate()
