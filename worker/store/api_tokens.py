"""Bearer tokens of the configuration service (DESIGN §10, A2): made, listed, revoked, checked.

A token is `iwk_` followed by 43 URL-safe characters (256 random bits). Only its SHA-256 is
stored, so the database never holds what lets anyone in; the token itself is returned once,
by `create`, and never again. Each token is scoped to one community or to the platform, and
may carry an expiry, after which it is refused like a revoked one (A10); revoking a token
ends the console sessions it opened at once (A8, worker/store/sessions.py).
Creating and revoking a token are changes like any other: they are audited in the same
transaction (A4). Callers own the transaction.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import asyncpg

from worker.store import audit
from worker.store.db import Conflict, InputError, NotFound
from worker.store.listings import require_community
from worker.store.pages import Order, Page, PageRequest
from worker.store.sync import Change

TOKEN_PREFIX: Final = "iwk_"
TOKEN_NAME_PATTERN: Final = r"^[A-Za-z0-9_.-]{1,64}$"
_TOKEN_NAME = re.compile(TOKEN_NAME_PATTERN)
#: What a token looks like; anything else is refused before any lookup (and never logged).
_TOKEN_SHAPE = re.compile(r"^iwk_[A-Za-z0-9_-]{43}$")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a request comes from: a token's name and scope (None: the platform)."""

    name: str
    community_id: str | None

    @property
    def platform(self) -> bool:
        return self.community_id is None

    @property
    def actor(self) -> str:
        """How the audit trail names this caller (A4): the token's name, never the token."""
        return f"token {self.name}"

    @property
    def scope(self) -> str:
        return "platform" if self.community_id is None else f"community {self.community_id}"


@dataclass(frozen=True, slots=True)
class TokenRow:
    """A token as operators see it: never the token, never its hash."""

    name: str
    scope: str
    created_at: datetime
    created_by: str
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_name(name: str) -> str:
    if not _TOKEN_NAME.fullmatch(name):
        raise InputError(f"token name must match {TOKEN_NAME_PATTERN}")
    return name


async def create(
    conn: asyncpg.Connection,
    name: str,
    community_id: str | None,
    *,
    actor: str,
    lifetime: timedelta | None = None,
) -> tuple[str, Caller]:
    """A new token for `community_id` (None: the platform), valid for `lifetime` from now
    (None: until revoked); returns it (show it once) and its caller."""
    check_name(name)
    if lifetime is not None and lifetime <= timedelta(0):
        raise InputError("a token's lifetime must be positive")
    if community_id is not None:
        await require_community(conn, community_id)
    if await conn.fetchval("SELECT revoked_at IS NOT NULL FROM api_tokens WHERE name = $1", name) is not None:
        raise Conflict(
            f"a token named {name!r} already exists (revoked ones keep their name); choose another"
        )
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO api_tokens (name, token_sha256, platform, community_id, created_by, expires_at) "
        "VALUES ($1, $2, $3, $4, $5, now() + $6::interval)",
        name,
        digest(token),
        community_id is None,
        community_id,
        actor,
        lifetime,
    )
    caller = Caller(name, community_id)
    expiry = "" if lifetime is None else f", expires after {_hours_or_days(lifetime)}"
    line = Change("+", f"token {name} ({caller.scope}{expiry})")
    await audit.record(conn, actor, "admin token create", [line], community_id)
    return token, caller


def _hours_or_days(lifetime: timedelta) -> str:
    hours = int(lifetime.total_seconds()) // 3600
    return f"{hours // 24}d" if hours % 24 == 0 else f"{hours}h"


async def revoke(conn: asyncpg.Connection, name: str, *, actor: str) -> Caller:
    """Revoke a token at once: its next request gets 401 (A2)."""
    row = await conn.fetchrow(
        "UPDATE api_tokens SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL "
        "RETURNING community_id",
        check_name(name),
    )
    if row is None:
        known = await conn.fetchval("SELECT 1 FROM api_tokens WHERE name = $1", name)
        if known:
            raise Conflict(f"token {name!r} is already revoked")
        raise NotFound(f"no token named {name!r} (see `identity-worker admin token list`)")
    # A8: the console sessions it opened end with it (resume() checks revoked_at too; this
    # leaves no row that could outlive the check).
    await conn.execute("DELETE FROM console_sessions WHERE token_name = $1", name)
    caller = Caller(name, row["community_id"])
    await audit.record(
        conn,
        actor,
        "admin token revoke",
        [Change("-", f"token {name} ({caller.scope})")],
        caller.community_id,
    )
    return caller


#: Oldest first (T5); `prefix` filters the name.
_ORDER: Final = Order((("created_at", "timestamptz"), ('name COLLATE "C"', "text")), 'name COLLATE "C"')


async def list_tokens(conn: asyncpg.Connection, page: PageRequest) -> Page[TokenRow]:
    """One page of the tokens, oldest first; never a token or its hash."""
    select = (
        "SELECT name, community_id, created_at, created_by, last_used_at, expires_at, revoked_at "
        "FROM api_tokens"
    )
    rows = await _ORDER.fetch(conn, select, page)
    listed = [
        TokenRow(
            r["name"],
            Caller(r["name"], r["community_id"]).scope,
            r["created_at"],
            r["created_by"],
            r["last_used_at"],
            r["expires_at"],
            r["revoked_at"],
        )
        for r in rows
    ]
    return _ORDER.page(listed, page, lambda t: (t.created_at, t.name))


async def authenticate(conn: asyncpg.Connection, token: str) -> Caller | None:
    """The caller a token stands for, None when it is unknown, malformed, revoked or expired.

    Records when it was last used (shown by `admin token list`, A10).
    """
    if not _TOKEN_SHAPE.fullmatch(token):
        return None
    row = await conn.fetchrow(
        "UPDATE api_tokens SET last_used_at = now() WHERE token_sha256 = $1 AND revoked_at IS NULL "
        "AND (expires_at IS NULL OR expires_at > now()) "
        "RETURNING name, community_id",
        digest(token),
    )
    return None if row is None else Caller(row["name"], row["community_id"])
