"""What the admin commands and the admin API do to the configuration store (DESIGN §5, §10).

Listings (`list_keys`, …) show rows as operators see them, never a secret. Each mutation locks
the community, reads its current spec (`loading.read_specs`), lets the spec make the edited,
validated copy (`CommunitySpec.with_key`, …: the YAML loader's rules by construction) and
writes the difference (`sync.sync_community`). `config apply` / `config export` work on whole
files. Callers own the transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from worker.core.config import (
    CommunitySpec,
    ConfigError,
    ConfigSpec,
    CustomFieldSpec,
    JwtKeySpec,
    MappingSpec,
    lacks_required_key,
    validate_spec,
)
from worker.store.db import Conflict, NotFound
from worker.store.lifecycle import refuse_if_in_use
from worker.store.loading import InvalidStoredConfig, read_specs, valid_specs
from worker.store.sync import Change, mapping_label, sync_community

# ---------------------------------------------------------------- listing


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


async def list_communities(conn: asyncpg.Connection) -> list[CommunityRow]:
    rows = await conn.fetch(
        """
        SELECT c.id, c.signed_identities, c.min_validity_seconds, c.leeway_seconds, c.created_at,
            c.max_validity_seconds, c.retirement_window_seconds,
            (SELECT count(*) FROM jwt_keys k WHERE k.community_id = c.id) AS keys,
            (SELECT count(*) FROM custom_fields f WHERE f.community_id = c.id) AS custom_fields,
            (SELECT count(*) FROM mappings m WHERE m.community_id = c.id) AS mappings
        FROM communities c ORDER BY c.id
        """
    )
    return [CommunityRow(**dict(r)) for r in rows]


async def require_community(conn: asyncpg.Connection, community_id: str, *, lock: bool = False) -> None:
    suffix = " FOR UPDATE" if lock else ""
    if await conn.fetchval("SELECT 1 FROM communities WHERE id = $1" + suffix, community_id) is None:
        raise NotFound(f"unknown community {community_id!r} (see `identity-worker community list`)")


async def _rows(conn: asyncpg.Connection, community_id: str, select: str, order: str) -> list[asyncpg.Record]:
    """`SELECT {select}` of one community's rows, in `order`; NotFound for an unknown community."""
    await require_community(conn, community_id)
    return list(await conn.fetch(f"{select} WHERE community_id = $1 ORDER BY {order}", community_id))


async def list_keys(conn: asyncpg.Connection, community_id: str) -> list[KeyRow]:
    select = "SELECT kid, hmac_secret, rsa_public_key, created_at FROM jwt_keys"
    listed = []
    for row in await _rows(conn, community_id, select, "created_at, kid"):
        # The fingerprint is computed from the key, so it can never disagree with it.
        data = {k: row[k] for k in ("kid", "hmac_secret", "rsa_public_key") if row[k] is not None}
        try:
            key = validate_spec(JwtKeySpec, data).prepare()
        except ConfigError as exc:  # a row the CHECKs let through: say it is the stored one
            raise InvalidStoredConfig(
                {community_id: [f"key {row['kid']}: {p}" for p in exc.problems]}
            ) from None
        listed.append(KeyRow(key.kid, key.alg, key.fingerprint, row["created_at"]))
    return listed


async def list_fields(conn: asyncpg.Connection, community_id: str) -> list[FieldRow]:
    rows = await _rows(
        conn, community_id, "SELECT key, label, regex, created_at FROM custom_fields", "created_at, key"
    )
    return [FieldRow(**dict(r)) for r in rows]


async def list_mappings(conn: asyncpg.Connection, community_id: str) -> list[MappingRow]:
    rows = await _rows(conn, community_id, "SELECT source, target, created_at FROM mappings", "position")
    return [MappingRow(i, r["source"], r["target"], r["created_at"]) for i, r in enumerate(rows, 1)]


# ---------------------------------------------------------------- mutations
#
# Each edit: lock and read the community (`_current`), refuse with its own line what the spec
# cannot word ("already", "no such", "still used", S1), let the spec make the validated copy
# (`CommunitySpec.with_key`, `without_key`, …), then write the difference (`_write`).


async def _current(conn: asyncpg.Connection, community_id: str) -> CommunitySpec:
    """The community's spec, its row locked until the caller's transaction ends."""
    await require_community(conn, community_id, lock=True)
    return (await valid_specs(conn, community_id))[community_id]


class KeyRequired(Conflict):
    """S1: the change would leave a community that requires signed identities with no key.
    The message says what to do instead (add the key first, or switch to reject)."""


async def _write(
    conn: asyncpg.Connection, old: CommunitySpec, new: CommunitySpec, key_required: str = ""
) -> list[Change]:
    """Write `new` over `old` (both validated); KeyRequired with `key_required` (or the
    generic line) when `new` breaks S1."""
    if lacks_required_key(new):
        raise KeyRequired(
            key_required
            or f"community {new.id!r} requires signed identities but would have no JWT key (S1): "
            "add a key first, or switch it to reject"
        )
    return await sync_community(conn, old, new)


async def add_community(conn: asyncpg.Connection, spec: CommunitySpec) -> list[Change]:
    """Add a community; in require mode it comes with its first key (S1)."""
    if lacks_required_key(spec):
        raise KeyRequired(
            f"community {spec.id!r} would require signed identities with no JWT key (S1): "
            "add it with its first key, or in reject mode"
        )
    if await conn.fetchval("SELECT 1 FROM communities WHERE id = $1", spec.id) is not None:
        raise Conflict(f"community {spec.id!r} already exists")
    return await sync_community(conn, None, spec)


async def update_community(
    conn: asyncpg.Connection, community_id: str, settings: Mapping[str, object]
) -> list[Change]:
    """Change settings (`signed_identities`, `min_validity_seconds`, `leeway_seconds`,
    `max_validity_seconds`, `retirement_window_seconds`)."""
    key_required = (
        f"community {community_id!r} has no JWT key, so it cannot require signed identities (S1): "
        f"add its key first (`keys add {community_id} KID ...`), then switch it to require"
        if settings.get("signed_identities") == "require"
        else ""  # a community stored before S1 without its key: the generic line says what to do
    )
    old = await _current(conn, community_id)
    return await _write(conn, old, old.with_settings(settings), key_required)


async def remove_community(conn: asyncpg.Connection, community_id: str) -> list[Change]:
    old = await _current(conn, community_id)
    await conn.execute("DELETE FROM communities WHERE id = $1", community_id)  # cascades
    return [Change("-", f"community {community_id} ({_contents(old)})")]


def _contents(spec: CommunitySpec) -> str:
    return (
        f"{len(spec.jwt_keys)} key(s), {len(spec.custom_fields)} custom field(s), "
        f"{len(spec.mappings)} mapping(s)"
    )


async def add_key(conn: asyncpg.Connection, community_id: str, key: JwtKeySpec) -> list[Change]:
    old = await _current(conn, community_id)
    if old.has_key(key.kid):
        raise Conflict(
            f"community {community_id!r} already has a key with kid {key.kid!r}; "
            "to rotate, add the new key under a new kid, then remove the old one"
        )
    return await _write(conn, old, old.with_key(key))


async def remove_key(
    conn: asyncpg.Connection, community_id: str, kid: str, *, force: bool = False
) -> list[Change]:
    """Remove a key, leaving a tombstone; refused (KeyStillInUse) while it is in use, unless
    `force` (L3)."""
    old = await _current(conn, community_id)
    if not old.has_key(kid):
        raise NotFound(f"community {community_id!r} has no key with kid {kid!r} (see `keys list`)")
    if not force:
        await refuse_if_in_use(conn, community_id, kid)
    last_key = (
        f"key {kid!r} is the last key of community {community_id!r}, which requires signed identities "
        f"(S1): add its new key first (`keys add`), or switch it to reject "
        f"(`community set-mode {community_id} reject`)"
    )
    return await _write(conn, old, old.without_key(kid), last_key)


async def add_field(conn: asyncpg.Connection, community_id: str, field: CustomFieldSpec) -> list[Change]:
    old = await _current(conn, community_id)
    if old.has_field(field.key):
        raise Conflict(f"community {community_id!r} already has a custom field {field.key!r}")
    return await _write(conn, old, old.with_field(field))


async def remove_field(conn: asyncpg.Connection, community_id: str, key: str) -> list[Change]:
    old = await _current(conn, community_id)
    if not old.has_field(key):
        raise NotFound(f"community {community_id!r} has no custom field {key!r} (see `fields list`)")
    users = old.mappings_to_field(key)
    if users:
        raise Conflict(
            f"custom field {key!r} is the target of mapping {mapping_label(users[0])}; "
            "remove that mapping first (`mappings remove`)"
        )
    return await _write(conn, old, old.without_field(key))


async def add_mapping(conn: asyncpg.Connection, community_id: str, mapping: MappingSpec) -> list[Change]:
    """Append `mapping` after the community's last one (M2)."""
    old = await _current(conn, community_id)
    if old.has_mapping(mapping):
        present = f"community {community_id!r} already has mapping {mapping_label(mapping)}"
        raise Conflict(f"{present} (a second copy would change nothing)")
    return await _write(conn, old, old.with_mapping(mapping))


async def remove_mapping(conn: asyncpg.Connection, community_id: str, mapping: MappingSpec) -> list[Change]:
    """Remove every copy of `mapping`; the others keep their order."""
    old = await _current(conn, community_id)
    if not old.has_mapping(mapping):
        missing = f"community {community_id!r} has no mapping {mapping_label(mapping)}"
        raise NotFound(f"{missing} (see `mappings list`)")
    return await _write(conn, old, old.without_mapping(mapping))


# ---------------------------------------------------------------- config apply / export


async def apply_config(conn: asyncpg.Connection, config: ConfigSpec, *, prune: bool = False) -> list[Change]:
    """Make the store hold `config`: each community in it exactly as written (keys, fields
    and mappings not in the file are removed); communities absent from the file are left
    alone unless `prune`. Run it inside one transaction: all or nothing."""
    # EXCLUSIVE: other writers wait, readers (workers) do not.
    await conn.execute("LOCK TABLE communities IN EXCLUSIVE MODE")
    current, invalid = await read_specs(conn)
    wanted = {c.id for c in config.communities}
    broken = {cid: p for cid, p in invalid.items() if cid not in wanted and not prune}
    if broken:
        raise InvalidStoredConfig(broken)
    changes: list[Change] = []
    for spec in config.communities:
        if spec.id in invalid:
            await conn.execute("DELETE FROM communities WHERE id = $1", spec.id)
            changes.append(Change("~", f"community {spec.id}: replaced rows the model refused"))
        changes += await sync_community(conn, current.get(spec.id), spec)
    if prune:
        for cid in sorted((set(current) | set(invalid)) - wanted):
            await conn.execute("DELETE FROM communities WHERE id = $1", cid)
            what = _contents(current[cid]) if cid in current else "invalid rows"
            changes.append(Change("-", f"community {cid} ({what})"))
    return changes


async def export_config(conn: asyncpg.Connection, community_id: str | None = None) -> ConfigSpec:
    if community_id is not None:
        await require_community(conn, community_id)
    return ConfigSpec(communities=list((await valid_specs(conn, community_id)).values()))
