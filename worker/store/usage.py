"""Key usage and integration health in PostgreSQL (DESIGN §11, L1, L2, L5): the workers' batched
writes, and the reads of `keys list`, `keys remove`, `report` and the admin API.

Writes: `write_counts` adds one flush of a worker's in-memory counts in ONE statement (three
upserts in data-modifying CTEs, from arrays), so the write rate is one statement per worker
per flush interval whatever the event rate. Every upsert adds to what is there: several
processes and machines add up. Rows are sent sorted by key, so two workers lock rows in the
same order (no deadlock between them).

Tables (migration 0003): `key_usage_total` (per community and kid, since the start),
`key_usage_hourly` (hour buckets: "the last 24 h" is a sum of at most 25 rows),
`integration_health_minute` (per community, outcome, reason and minute, with the last detail).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import asyncpg

#: Hour buckets of key usage are kept this long (the retirement window is at most 30 days).
HOURLY_RETENTION_DAYS: Final = 32
#: Minute buckets of integration health are kept this long (`report --since` at most this).
HEALTH_RETENTION_DAYS: Final = 8
#: A stored detail is cut to this many characters (the column's CHECK).
MAX_DETAIL_CHARS: Final = 1000
#: `keys list`'s USES_24H window.
DAY_SECONDS: Final = 86400


#: One (community, kid, hour) bucket of a flush: community_id, kid, hour, verified,
#: signature_failures, last_verified_at, last_failure_at (times in epoch seconds).
KeyCountsRow = tuple[str, str, float, int, int, float | None, float | None]
#: One (community, minute, outcome, reason) bucket of a flush (reason '' unless rejected):
#: community_id, minute, outcome, reason, events, last_detail, last_at (times in epoch seconds).
HealthCountsRow = tuple[str, float, str, str, int, str | None, float]


# Times travel as epoch seconds (float8) and become timestamptz in the statement, details are cut
# there (`left`: characters, like the column's CHECK): T6, a flush of events spread over 100 000
# communities is two rows per event, and a datetime made and encoded per time value was most of
# the worker's 3.4 µs a row (now 1.3-1.5 µs, mostly asyncpg checking each array element).
_WRITE: Final = f"""
WITH k AS (
    SELECT community_id, kid, to_timestamp(hour) AS hour, verified, signature_failures,
        to_timestamp(last_verified_at) AS last_verified_at, to_timestamp(last_failure_at) AS last_failure_at
    FROM unnest($1::text[], $2::text[], $3::float8[], $4::bigint[], $5::bigint[],
                $6::float8[], $7::float8[])
        AS t(community_id, kid, hour, verified, signature_failures, last_verified_at, last_failure_at)
), hourly AS (
    INSERT INTO key_usage_hourly AS h (community_id, kid, hour, verified, signature_failures)
    SELECT community_id, kid, hour, verified, signature_failures FROM k
    ON CONFLICT (community_id, kid, hour) DO UPDATE
        SET verified = h.verified + EXCLUDED.verified,
            signature_failures = h.signature_failures + EXCLUDED.signature_failures
    RETURNING 1
), total AS (
    INSERT INTO key_usage_total AS u
        (community_id, kid, verified, signature_failures, last_verified_at, last_failure_at)
    SELECT community_id, kid, sum(verified), sum(signature_failures), max(last_verified_at),
        max(last_failure_at)
    FROM k GROUP BY community_id, kid ORDER BY community_id, kid
    ON CONFLICT (community_id, kid) DO UPDATE
        SET verified = u.verified + EXCLUDED.verified,
            signature_failures = u.signature_failures + EXCLUDED.signature_failures,
            last_verified_at = GREATEST(u.last_verified_at, EXCLUDED.last_verified_at),
            last_failure_at = GREATEST(u.last_failure_at, EXCLUDED.last_failure_at)
    RETURNING 1
)
INSERT INTO integration_health_minute AS m
    (community_id, minute, outcome, reason, events, last_detail, last_at)
SELECT community_id, to_timestamp(minute), outcome, reason, events,
    left(last_detail, {MAX_DETAIL_CHARS}), to_timestamp(last_at)
FROM unnest($8::text[], $9::float8[], $10::text[], $11::text[], $12::bigint[],
            $13::text[], $14::float8[])
    AS t(community_id, minute, outcome, reason, events, last_detail, last_at)
ON CONFLICT (community_id, minute, outcome, reason) DO UPDATE
    SET events = m.events + EXCLUDED.events,
        last_detail = CASE WHEN EXCLUDED.last_at >= m.last_at
                           THEN coalesce(EXCLUDED.last_detail, m.last_detail) ELSE m.last_detail END,
        last_at = GREATEST(m.last_at, EXCLUDED.last_at)
"""
_NO_ROWS: Final = ((),) * 7  # seven empty columns: both row kinds have seven fields


async def write_counts(
    conn: asyncpg.Connection,
    keys: Sequence[KeyCountsRow],
    health: Sequence[HealthCountsRow],
    *,
    timeout: float | None = None,
) -> None:
    """Add one flush to the tables, in one statement (atomic: all of it or nothing).

    Each sequence must hold each bucket at most once (the caller's dict keys guarantee
    it): sorted as tuples, the rows are then in bucket order, and no comparison ever reaches a
    count or a None.
    """
    key_columns = list(zip(*sorted(keys), strict=True)) or _NO_ROWS
    health_columns = list(zip(*sorted(health), strict=True)) or _NO_ROWS
    await conn.execute(_WRITE, *key_columns, *health_columns, timeout=timeout)


async def prune(conn: asyncpg.Connection, *, timeout: float | None = None) -> None:
    """Drop buckets older than their retention (any worker may run it; it is idempotent)."""
    await conn.execute(
        "DELETE FROM key_usage_hourly WHERE hour < now() - make_interval(days => $1)",
        HOURLY_RETENTION_DAYS,
        timeout=timeout,
    )
    await conn.execute(
        "DELETE FROM integration_health_minute WHERE minute < now() - make_interval(days => $1)",
        HEALTH_RETENTION_DAYS,
        timeout=timeout,
    )


# ---------------------------------------------------------------- reads


@dataclass(frozen=True, slots=True)
class KeyUsage:
    """A key's usage as `keys list`, the admin API and the console show it (L2)."""

    kid: str
    verified: int  # since counting began
    signature_failures: int
    last_verified_at: datetime | None
    last_failure_at: datetime | None
    uses_24h: int  # tokens verified in the last 24 h (hour buckets: up to 25 h)
    failures_24h: int


_USAGE: Final = """
SELECT t.kid, t.verified, t.signature_failures, t.last_verified_at, t.last_failure_at,
    coalesce(h.verified, 0) AS uses_24h, coalesce(h.signature_failures, 0) AS failures_24h
FROM key_usage_total t
LEFT JOIN (
    SELECT kid, sum(verified) AS verified, sum(signature_failures) AS signature_failures
    FROM key_usage_hourly
    WHERE community_id = $1 AND hour >= date_trunc('hour', now() - make_interval(secs => $2))
    GROUP BY kid
) h ON h.kid = t.kid
WHERE t.community_id = $1
"""


async def key_usage(conn: asyncpg.Connection, community_id: str) -> dict[str, KeyUsage]:
    """L2: usage of every kid the community's workers have counted, present keys or not.

    `uses_24h` sums the hour buckets that overlap the last 24 h, so it may include up to one
    hour more. The repository function the admin API calls (§10).
    """
    rows = await conn.fetch(_USAGE, community_id, float(DAY_SECONDS))
    return {
        r["kid"]: KeyUsage(
            r["kid"],
            r["verified"],
            r["signature_failures"],
            r["last_verified_at"],
            r["last_failure_at"],
            int(r["uses_24h"]),
            int(r["failures_24h"]),
        )
        for r in rows
    }


async def window_uses(conn: asyncpg.Connection, community_id: str, kid: str, seconds: int) -> int:
    """Tokens `kid` verified in the hour buckets overlapping the last `seconds` (L3)."""
    total = await conn.fetchval(
        "SELECT coalesce(sum(verified), 0) FROM key_usage_hourly WHERE community_id = $1 AND kid = $2 "
        "AND hour >= date_trunc('hour', now() - make_interval(secs => $3))",
        community_id,
        kid,
        float(seconds),
    )
    return int(total)


@dataclass(frozen=True, slots=True)
class HealthRow:
    """L5: one community's events of one outcome and reason over the report's window."""

    community_id: str  # '' : events of no configured community
    outcome: str
    reason: str  # '' unless rejected
    events: int
    last_detail: str | None
    last_at: datetime


_REPORT: Final = """
SELECT community_id, outcome, reason, sum(events) AS events, max(last_at) AS last_at,
    (array_agg(last_detail ORDER BY last_at DESC) FILTER (WHERE last_detail IS NOT NULL))[1] AS last_detail
FROM integration_health_minute
WHERE minute >= date_trunc('minute', now() - make_interval(secs => $1))
    AND ($2::text IS NULL OR community_id = $2)
    AND ($3::text[] IS NULL OR community_id = ANY($3::text[]))
GROUP BY community_id, outcome, reason
ORDER BY community_id, outcome, reason
"""


async def health_report(
    conn: asyncpg.Connection,
    *,
    since_seconds: float,
    community_id: str | None = None,
    community_ids: Sequence[str] | None = None,
) -> list[HealthRow]:
    """L5: outcomes and reasons per community over the last `since_seconds` (minute buckets:
    the minute the window starts in counts whole), with the last detail of each reason.
    `community_id` / `community_ids`: only those communities (T5: a page's, not the store's)."""
    ids = list(community_ids) if community_ids is not None else None
    rows = await conn.fetch(_REPORT, float(since_seconds), community_id, ids)
    return [
        HealthRow(
            r["community_id"], r["outcome"], r["reason"], int(r["events"]), r["last_detail"], r["last_at"]
        )
        for r in rows
    ]
