"""Key usage and integration health counted by the worker (DESIGN §11, L1, L5).

`UsageRecorder.count` runs once per committed batch (the member's commit hook): one pass over
the batch's outputs into a per-batch dict, then one merge per distinct (community, outcome,
reason, kid) into the pending buckets. No I/O: event processing never waits for PostgreSQL.

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
from dataclasses import dataclass
from typing import Final

import asyncpg
import structlog

from worker.core.reasons import Outcome, Reason
from worker.core.records import Output
from worker.store.db import connect, describe, translate
from worker.store.usage import HealthCounts, KeyCounts, prune, write_counts

log = structlog.get_logger(__name__)

DEFAULT_FLUSH_SECONDS: Final = 5.0
DEFAULT_MAX_PENDING: Final = 100_000
#: Buckets of each table per statement of a flush (T1: a few ms of the event loop each).
FLUSH_CHUNK: Final = 1000
#: Old buckets are pruned this often (any worker; idempotent).
PRUNE_EVERY_SECONDS: Final = 3600.0
APPLICATION_NAME: Final = "identity-worker-usage"
NO_COMMUNITY: Final = ""

KeyBucket = tuple[str, str, float]  # community, kid, hour (epoch seconds)
HealthBucket = tuple[str, float, str, str]  # community, minute, outcome, reason


@dataclass(slots=True)
class KeyTally:
    verified: int = 0
    signature_failures: int = 0
    last_verified_at: float | None = None
    last_failure_at: float | None = None


@dataclass(slots=True)
class HealthTally:
    events: int
    last_detail: str | None
    last_at: float


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
        self.keys: dict[KeyBucket, KeyTally] = {}
        self.health: dict[HealthBucket, HealthTally] = {}
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
        return len(self.keys) + len(self.health) + self._in_flight

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
        per_batch: dict[tuple[str | None, Outcome, Reason | None, str | None], int] = {}
        details: dict[tuple[str | None, Reason], str] = {}
        for output in outputs:
            reason = output.reason
            key = (output.community_id, output.outcome, reason, output.kid)
            per_batch[key] = per_batch.get(key, 0) + 1
            if reason is not None:  # a rejection: held as a dict (enriched records are JSON only)
                details[key[0], reason] = output.record["detail"]
        minute = now - now % 60
        hour = now - now % 3600
        known: dict[str | None, str] = {}
        for (community_id, outcome, reason, kid), n in per_batch.items():
            community = known.get(community_id)
            if community is None:
                ok = community_id is not None and self._configured(community_id)
                community = known[community_id] = community_id if ok and community_id else NO_COMMUNITY
            reason_text = reason.value if reason is not None else ""
            detail = details.get((community_id, reason)) if reason is not None else None
            kept = self._add_health((community, minute, outcome.value, reason_text), n, detail, now)
            if kid is not None and community and reason is not Reason.TOKEN_EXPIRED:
                failed = reason is Reason.INVALID_SIGNATURE
                kept = self._add_key((community, kid, hour), n, failed, now) and kept
            if not kept:
                self.dropped += n
            if self._on_counts is not None:
                self._on_counts(community, outcome.value, reason_text, n)

    def _add_health(self, bucket: HealthBucket, n: int, detail: str | None, now: float) -> bool:
        """False when the bucket is new and the buffer is full (not counted)."""
        tally = self.health.get(bucket)
        if tally is None:
            if self.pending >= self.max_pending:
                return False
            self.health[bucket] = HealthTally(n, detail, now)
            return True
        tally.events += n
        if detail is not None:
            tally.last_detail = detail
        tally.last_at = now
        return True

    def _add_key(self, bucket: KeyBucket, n: int, failed: bool, now: float) -> bool:
        tally = self.keys.get(bucket)
        if tally is None:
            if self.pending >= self.max_pending:
                return False
            tally = self.keys[bucket] = KeyTally()
        if failed:
            tally.signature_failures += n
            tally.last_failure_at = now
        else:
            tally.verified += n
            tally.last_verified_at = now
        return True

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
        if not self.keys and not self.health:
            return True
        keys, self.keys = list(self.keys.items()), {}
        health, self.health = list(self.health.items()), {}
        self._in_flight = len(keys) + len(health)
        done = 0
        try:
            conn = await self._connection()
            while done < max(len(keys), len(health)):
                chunk_k, chunk_h = keys[done : done + FLUSH_CHUNK], health[done : done + FLUSH_CHUNK]
                rows_k = [
                    KeyCounts(
                        c, k, h, t.verified, t.signature_failures, t.last_verified_at, t.last_failure_at
                    )
                    for (c, k, h), t in chunk_k
                ]
                rows_h = [
                    HealthCounts(c, m, o, r, t.events, t.last_detail, t.last_at)
                    for (c, m, o, r), t in chunk_h
                ]
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
            self._merge_back(dict(keys[done:]), dict(health[done:]))
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

    def _merge_back(self, keys: dict[KeyBucket, KeyTally], health: dict[HealthBucket, HealthTally]) -> None:
        """Counts that could not be written join what was counted meanwhile (the bound was
        kept: in-flight buckets counted against it while the flush ran)."""
        for bucket, old in keys.items():
            new = self.keys.setdefault(bucket, KeyTally())
            new.verified += old.verified
            new.signature_failures += old.signature_failures
            new.last_verified_at = _latest(new.last_verified_at, old.last_verified_at)
            new.last_failure_at = _latest(new.last_failure_at, old.last_failure_at)
        for hbucket, hold in health.items():
            hnew = self.health.get(hbucket)
            if hnew is None:
                self.health[hbucket] = hold
                continue
            hnew.events += hold.events
            if hnew.last_detail is None:
                hnew.last_detail = hold.last_detail

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


def _latest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)
