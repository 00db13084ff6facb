"""Console sessions (DESIGN §10, A8): what a signed-in browser holds instead of the API token.

Signing in with a token opens a session: a random id (256 bits, URL-safe, 43 characters)
handed to the browser as its cookie; only its SHA-256 is stored, with the token's name, when
it was opened and last seen, and two expiries: `IDLE` after the last request and `ABSOLUTE`
after sign-in, whichever comes first. A session id is not an API token (the API reads
bearer tokens only, and a session id has no `iwk_` prefix), so a copied cookie opens the
console until sign-out, revocation or expiry, and nothing else. Sign-out (`close`), revoking
the token (`api_tokens.revoke` deletes its sessions) and expiry end it at once.
Callers own the transaction.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta
from typing import Final

import asyncpg

from worker.store.api_tokens import Caller

#: A session ends this long after its last request ...
IDLE: Final = timedelta(minutes=30)
#: ... and at the latest this long after sign-in, however busy.
ABSOLUTE: Final = timedelta(hours=12)
#: What a session id looks like; anything else is refused before any lookup.
_SESSION_SHAPE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("ascii")).hexdigest()


async def open_session(conn: asyncpg.Connection, caller: Caller) -> str:
    """A new session for `caller` (whose token was just checked); returns its id, the cookie.

    Sessions past their expiry are deleted here, so the table holds live ones only.
    """
    await conn.execute("DELETE FROM console_sessions WHERE idle_expires_at <= now()")
    session_id = secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO console_sessions (id_sha256, token_name, idle_expires_at, expires_at) "
        "VALUES ($1, $2, now() + $3::interval, now() + $4::interval)",
        _digest(session_id),
        caller.name,
        IDLE,
        ABSOLUTE,
    )
    return session_id


async def resume(conn: asyncpg.Connection, session_id: str) -> Caller | None:
    """The caller of a live session, its idle expiry moved on; None when it is unknown, ended,
    expired, or its token is revoked or expired (A8, A10)."""
    if not _SESSION_SHAPE.fullmatch(session_id):
        return None
    row = await conn.fetchrow(
        "UPDATE console_sessions s SET last_seen_at = now(), "
        "idle_expires_at = LEAST(now() + $2::interval, s.expires_at) "
        "FROM api_tokens t WHERE s.id_sha256 = $1 AND t.name = s.token_name "
        "AND s.idle_expires_at > now() AND s.expires_at > now() AND t.revoked_at IS NULL "
        "AND (t.expires_at IS NULL OR t.expires_at > now()) "
        "RETURNING t.name, t.community_id",
        _digest(session_id),
        IDLE,
    )
    return None if row is None else Caller(row["name"], row["community_id"])


async def close(conn: asyncpg.Connection, session_id: str) -> None:
    """Sign-out: the session ends now, whatever the browser keeps."""
    if _SESSION_SHAPE.fullmatch(session_id):
        await conn.execute("DELETE FROM console_sessions WHERE id_sha256 = $1", _digest(session_id))
