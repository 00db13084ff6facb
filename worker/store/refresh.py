"""What the worker's cache reads of the store, and how, at 100 000 communities (DESIGN §12, T1).

- What changed: migration 0006 stamps every community with the transaction that last changed
  it (`changed_xid`) and records removed ones (`community_removals`). A read remembers the
  oldest transaction still running when it read (its snapshot's xmin, the `watermark`); the
  next read asks only for what changed from there (`changes_since`), so the periodic safety
  net costs what changed, not what is stored.
- How: rows come through a cursor, a page at a time, in one read-only REPEATABLE READ
  transaction (one consistent snapshot), and the caller prepares them in slices
  (`Slicer`): the event loop is never held longer than a slice (T1: 50 ms at most; a slice
  is 10 ms).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

import asyncpg

from worker.core.community import Community, Tombstone
from worker.store.loading import SPEC_COLUMNS

#: Rows fetched per round trip of the cursor.
PAGE_ROWS: Final = 500
#: A slice of preparation on the event loop, in seconds (T1 allows 50 ms).
SLICE_SECONDS: Final = 0.010
#: Removed communities are kept this long (migration 0006); a watermark older than a day is
#: not trusted (the next read is a full one).
WATERMARK_TRUSTED_SECONDS: Final = 86_400.0

_QUERY: Final = f"""
SELECT {SPEC_COLUMNS},
    (SELECT coalesce(json_agg(json_build_object('kid', t.kid, 'alg', t.alg, 'fingerprint', t.fingerprint,
                'removed_at', extract(epoch FROM t.removed_at))), '[]')
        FROM key_tombstones t WHERE t.community_id = c.id) AS tombstones
FROM communities c
"""
_BY_IDS: Final = _QUERY + " WHERE c.id = ANY($1::text[])"
_WATERMARK: Final = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
_CHANGED: Final = """
SELECT id FROM communities WHERE changed_xid >= $1
UNION SELECT community_id FROM community_removals WHERE removed_xid >= $1
"""


@dataclass(frozen=True, slots=True)
class Changes:
    """What one read covers. `ids`: the communities changed or removed since the watermark
    asked for (None: every community, a full read). `watermark`: what the next read asks from."""

    watermark: int
    ids: list[str] | None


async def changes_since(conn: asyncpg.Connection, since: int | None, timeout: float) -> Changes:
    """Run inside the read's REPEATABLE READ transaction: its snapshot is the one whose xmin
    becomes the watermark, and the rows read next are that snapshot's."""
    watermark = await conn.fetchval(_WATERMARK, timeout=timeout)
    if since is None:
        return Changes(watermark, None)
    rows = await conn.fetch(_CHANGED, since, timeout=timeout)
    return Changes(watermark, [row[0] for row in rows])


async def stored_rows(
    conn: asyncpg.Connection, ids: list[str] | None, timeout: float
) -> AsyncIterator[asyncpg.Record]:
    """Every community's row (`ids` None) or those of `ids`, a page at a time (in a transaction)."""
    if ids is None:
        cursor = conn.cursor(_QUERY, prefetch=PAGE_ROWS, timeout=timeout)
    else:
        cursor = conn.cursor(_BY_IDS, ids, prefetch=PAGE_ROWS, timeout=timeout)
    async for row in cursor:
        yield row


async def fetch_rows(conn: asyncpg.Connection, ids: list[str], timeout: float) -> list[asyncpg.Record]:
    """The rows of a few communities, in one statement (notifications)."""
    return list(await conn.fetch(_BY_IDS, ids, timeout=timeout))


def tombstones_of(row: asyncpg.Record) -> dict[str, Tombstone]:
    """The row's key tombstones (L3), by kid."""
    return {
        t["kid"]: Tombstone(t["kid"], t["alg"], t["fingerprint"], float(t["removed_at"]))
        for t in json.loads(row["tombstones"])
    }


class Slicer:
    """Gives the event loop back once a slice has run `seconds` (T1): call `tick` per unit of work.

    `rest`: how long to stay away after each slice. A read beside running event processing
    rests as long as it ran, so it takes at most half of the loop (events first, T2); the
    read at start-up, before the worker is ready, does not rest.
    """

    def __init__(self, seconds: float = SLICE_SECONDS, rest: float = 0.0) -> None:
        self.seconds = seconds
        self.rest = rest
        self._since = time.perf_counter()
        self.slices = 1

    async def tick(self) -> None:
        if time.perf_counter() - self._since >= self.seconds:
            await self.pause()
            self.slices += 1
            self._since = time.perf_counter()

    async def pause(self) -> None:
        """One turn of the event loop, or `rest` seconds (a test makes it slow on purpose)."""
        await asyncio.sleep(self.rest)


#: Communities let go per slice when a full read replaces the cache (see `release`).
RELEASE_BATCH = 2000


async def release(replaced: dict[str, Community], slicer: Slicer) -> None:
    """T1: the configuration a full read replaced, let go a batch at a time. Freeing 100 000
    communities at once (millions of objects, by reference counting) held the loop ~50 ms."""
    while replaced:
        for _ in range(min(RELEASE_BATCH, len(replaced))):
            replaced.popitem()
        await slicer.tick()
