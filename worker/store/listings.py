"""The configuration store's listings as operators see them (DESIGN §5, §10; T5): one page of
communities, keys, fields or mappings in a stable order, never a secret. The edits that follow
a listing are in `worker.store.repository`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

import asyncpg

from worker.core.config import ConfigError, JwtKeySpec, validate_spec
from worker.store.db import NotFound
from worker.store.loading import InvalidStoredConfig
from worker.store.pages import Order, Page, PageRequest


@dataclass(frozen=True, slots=True)
class CommunityRow:
    id: str
    signed_identities: str
    min_validity_seconds: int
    leeway_seconds: int
    max_validity_seconds: int | None
    retirement_window_seconds: int
    keys: int
    custom_fields: int
    mappings: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class KeyRow:
    """A key as operators see it: never its secret (DESIGN §7)."""

    kid: str
    alg: str
    fingerprint: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class FieldRow:
    key: str
    label: str
    regex: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class MappingRow:
    position: int  # 1-based rank in the order of application (M2)
    source: str
    target: str
    created_at: datetime


_COMMUNITY_SELECT: Final = """
    SELECT c.id, c.signed_identities, c.min_validity_seconds, c.leeway_seconds, c.created_at,
        c.max_validity_seconds, c.retirement_window_seconds,
        (SELECT count(*) FROM jwt_keys k WHERE k.community_id = c.id) AS keys,
        (SELECT count(*) FROM custom_fields f WHERE f.community_id = c.id) AS custom_fields,
        (SELECT count(*) FROM mappings m WHERE m.community_id = c.id) AS mappings
    FROM communities c
"""
#: Listing orders (T5): byte-wise ids, so that a prefix is an index range (migration 0007).
COMMUNITY_ORDER: Final = Order((('c.id COLLATE "C"', "text"),), 'c.id COLLATE "C"')
_KEY_ORDER: Final = Order((("created_at", "timestamptz"), ('kid COLLATE "C"', "text")), 'kid COLLATE "C"')
_FIELD_ORDER: Final = Order((("created_at", "timestamptz"), ('key COLLATE "C"', "text")), 'key COLLATE "C"')
_MAPPING_ORDER: Final = Order((("position", "int"),), 'source COLLATE "C"')


async def community_rows(conn: asyncpg.Connection, where: str, *args: object) -> list[CommunityRow]:
    """The communities `where` selects (SQL on `communities c`, with its arguments), in id order."""
    rows = await conn.fetch(f"{_COMMUNITY_SELECT} {where} ORDER BY {COMMUNITY_ORDER.order_by()}", *args)
    return [CommunityRow(**dict(r)) for r in rows]


async def list_communities(
    conn: asyncpg.Connection, page: PageRequest, *, only: str | None = None
) -> Page[CommunityRow]:
    """One page of communities in id order (T5); `only`: that community's row alone, if it
    matches (a community token's view)."""
    found = await COMMUNITY_ORDER.fetch(
        conn, _COMMUNITY_SELECT, page, [] if only is None else [("c.id", only)]
    )
    return COMMUNITY_ORDER.page([CommunityRow(**dict(r)) for r in found], page, lambda r: (r.id,))


async def community_row(conn: asyncpg.Connection, community_id: str) -> CommunityRow:
    """One community's settings and counts; NotFound for an unknown one."""
    rows = await community_rows(conn, "WHERE c.id = $1", community_id)
    if not rows:
        raise NotFound(f"unknown community {community_id!r} (see `identity-worker community list`)")
    return rows[0]


async def require_community(conn: asyncpg.Connection, community_id: str, *, lock: bool = False) -> None:
    suffix = " FOR UPDATE" if lock else ""
    if await conn.fetchval("SELECT 1 FROM communities WHERE id = $1" + suffix, community_id) is None:
        raise NotFound(f"unknown community {community_id!r} (see `identity-worker community list`)")


async def _rows(
    conn: asyncpg.Connection, community_id: str, select: str, order: Order, page: PageRequest
) -> list[asyncpg.Record]:
    """One page of `select`'s rows of one community, in `order` (one row more than the page,
    see `Order.page`); NotFound for an unknown community."""
    await require_community(conn, community_id)
    return await order.fetch(conn, select, page, [("community_id", community_id)])


async def list_keys(conn: asyncpg.Connection, community_id: str, page: PageRequest) -> Page[KeyRow]:
    """One page of a community's keys, oldest first, never a secret; `prefix` on the kid."""
    select = "SELECT kid, hmac_secret, rsa_public_key, created_at FROM jwt_keys"
    listed = []
    for row in await _rows(conn, community_id, select, _KEY_ORDER, page):
        # The fingerprint is computed from the key, so it can never disagree with it.
        data = {k: row[k] for k in ("kid", "hmac_secret", "rsa_public_key") if row[k] is not None}
        try:
            key = validate_spec(JwtKeySpec, data).prepare()
        except ConfigError as exc:  # a row the CHECKs let through: say it is the stored one
            raise InvalidStoredConfig(
                {community_id: [f"key {row['kid']}: {p}" for p in exc.problems]}
            ) from None
        listed.append(KeyRow(key.kid, key.alg, key.fingerprint, row["created_at"]))
    return _KEY_ORDER.page(listed, page, lambda r: (r.created_at, r.kid))


async def list_fields(conn: asyncpg.Connection, community_id: str, page: PageRequest) -> Page[FieldRow]:
    """One page of a community's custom fields, oldest first; `prefix` on the key."""
    select = "SELECT key, label, regex, created_at FROM custom_fields"
    rows = await _rows(conn, community_id, select, _FIELD_ORDER, page)
    return _FIELD_ORDER.page([FieldRow(**dict(r)) for r in rows], page, lambda r: (r.created_at, r.key))


async def list_mappings(conn: asyncpg.Connection, community_id: str, page: PageRequest) -> Page[MappingRow]:
    """One page of a community's mappings in the order they apply (M2); `prefix` on `from`.
    Each row's `position` is its 1-based rank among all the community's mappings."""
    select = (
        "SELECT * FROM (SELECT community_id, position, source, target, created_at, "
        "row_number() OVER (ORDER BY position) AS rank FROM mappings WHERE community_id = $1) AS m"
    )
    rows = await _rows(conn, community_id, select, _MAPPING_ORDER, page)
    listed = [MappingRow(r["rank"], r["source"], r["target"], r["created_at"]) for r in rows]
    stored = {id(row): r["position"] for row, r in zip(listed, rows, strict=True)}
    return _MAPPING_ORDER.page(listed, page, lambda row: (stored[id(row)],))
