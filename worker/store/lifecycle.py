"""Key retirement (DESIGN §11, L3): tombstones of removed keys, and the refusal to remove a key
that is still in use.

A tombstone is written by `sync` whenever a key leaves a community, whatever the command
(`keys remove`, `config apply`, the admin API): kid, algorithm, fingerprint and when; never
the secret. The worker's cache loads them with the community (`Community.tombstones`), so
an `unknown_kid` detail can say when the key went.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from worker.core.community import Tombstone
from worker.store.db import Conflict, NotFound
from worker.store.usage import window_uses


async def read_tombstones(
    conn: asyncpg.Connection, community_id: str | None = None
) -> dict[str, dict[str, Tombstone]]:
    """Every community's tombstones (or one community's): {community_id: {kid: Tombstone}}."""
    query = "SELECT community_id, kid, alg, fingerprint, removed_at FROM key_tombstones"
    rows = (
        await conn.fetch(query)
        if community_id is None
        else await conn.fetch(query + " WHERE community_id = $1", community_id)
    )
    found: dict[str, dict[str, Tombstone]] = {}
    for row in rows:
        found.setdefault(row["community_id"], {})[row["kid"]] = Tombstone(
            row["kid"], row["alg"], row["fingerprint"], row["removed_at"].timestamp()
        )
    return found


@dataclass(frozen=True, slots=True)
class KeyInUse:
    """Why a key may not be removed yet: its last use and the uses within the window."""

    last_verified_at: datetime
    uses: int
    window_seconds: int


async def check_retirement(conn: asyncpg.Connection, community_id: str, kid: str) -> KeyInUse | None:
    """L3: None when the key verified no token within the community's retirement window.

    The window's count comes from hour buckets, so it may include up to one hour before the
    window's start (it errs on the side of "still in use").
    """
    row = await conn.fetchrow(
        "SELECT c.retirement_window_seconds AS window, u.last_verified_at FROM communities c "
        "LEFT JOIN key_usage_total u ON u.community_id = c.id AND u.kid = $2 WHERE c.id = $1",
        community_id,
        kid,
    )
    if row is None:
        raise NotFound(f"unknown community {community_id!r} (see `identity-worker community list`)")
    last, window = row["last_verified_at"], row["window"]
    if last is None or window == 0:
        return None
    now = await conn.fetchval("SELECT now()")
    if (now - last).total_seconds() >= window:
        return None
    return KeyInUse(last, await window_uses(conn, community_id, kid, window), window)


class KeyStillInUse(Conflict):
    """`keys remove` of a key used within the retirement window, without --force (exit 2)."""

    def __init__(self, community_id: str, kid: str, use: KeyInUse) -> None:
        hours = use.window_seconds / 3600
        window = f"{hours:g} h" if hours >= 1 else f"{use.window_seconds} s"
        when = use.last_verified_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        #: When it was last used and how much within the window (also for a forced removal's note).
        self.use_line = (
            f"key {community_id}/{kid} last verified a token at {when}, {use.uses} token(s) "
            f"in the last {window} (the community's retirement window)"
        )
        super().__init__(
            f"refused: {self.use_line}; move the website to another key first, "
            "or give --force to remove it anyway"
        )
        self.use = use


async def refuse_if_in_use(conn: asyncpg.Connection, community_id: str, kid: str) -> None:
    """L3: KeyStillInUse when the key exists and verified a token within the retirement window."""
    exists = await conn.fetchval(
        "SELECT 1 FROM jwt_keys WHERE community_id = $1 AND kid = $2", community_id, kid
    )
    if exists is None:
        return  # the removal itself says the key is unknown
    use = await check_retirement(conn, community_id, kid)
    if use is not None:
        raise KeyStillInUse(community_id, kid, use)
