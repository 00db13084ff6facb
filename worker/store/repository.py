"""Queries on the configuration store: what the worker loads and what the admin commands do.

Reads turn rows back into `CommunitySpec` through the same validation as the YAML loader,
then into prepared `Community` objects (DESIGN §5). Each mutation locks the community,
reads its current spec, builds the whole desired spec, validates it like the YAML loader
would (`validate_spec(CommunitySpec, ...)`: the rules are the same by construction) and
writes the difference (`sync.sync_community`). Callers own the transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import asyncpg

from worker.core.config import (
    Community,
    CommunitySpec,
    ConfigError,
    ConfigSpec,
    CustomFieldSpec,
    JwtKeySpec,
    MappingSpec,
    lacks_required_key,
    validate_spec,
)
from worker.store.db import Conflict, NotFound, StoreError
from worker.store.lifecycle import read_tombstones, refuse_if_in_use
from worker.store.sync import Change, mapping_label, sync_community

_SPEC_QUERY: Final = """
SELECT c.id, c.signed_identities, c.min_validity_seconds, c.leeway_seconds,
    c.max_validity_seconds, c.retirement_window_seconds,
    (SELECT coalesce(json_agg(json_build_object(
                'kid', k.kid, 'hmac_secret', k.hmac_secret, 'rsa_public_key', k.rsa_public_key)
            ORDER BY k.created_at, k.kid), '[]')
        FROM jwt_keys k WHERE k.community_id = c.id) AS jwt_keys,
    (SELECT coalesce(json_agg(json_build_object('key', f.key, 'label', f.label, 'regex', f.regex)
            ORDER BY f.created_at, f.key), '[]')
        FROM custom_fields f WHERE f.community_id = c.id) AS custom_fields,
    (SELECT coalesce(json_agg(json_build_object('from', m.source, 'to', m.target) ORDER BY m.position), '[]')
        FROM mappings m WHERE m.community_id = c.id) AS mappings
FROM communities c
"""


class InvalidStoredConfig(StoreError):
    """Rows that pass the CHECK constraints but not the model (e.g. a regex RE2 refuses)."""

    def __init__(self, problems: dict[str, list[str]]) -> None:
        lines = [f"community {cid}: {p}" for cid, items in sorted(problems.items()) for p in items]
        super().__init__("invalid configuration in the store: " + "; ".join(lines))
        self.problems = problems


def _spec_data(row: asyncpg.Record) -> dict[str, Any]:
    keys = [{k: v for k, v in key.items() if v is not None} for key in json.loads(row["jwt_keys"])]
    fields = [{k: v for k, v in f.items() if v is not None} for f in json.loads(row["custom_fields"])]
    return {
        "id": row["id"],
        "signed_identities": row["signed_identities"],
        "min_validity_seconds": row["min_validity_seconds"],
        "leeway_seconds": row["leeway_seconds"],
        "max_validity_seconds": row["max_validity_seconds"],
        "retirement_window_seconds": row["retirement_window_seconds"],
        "jwt_keys": keys,
        "custom_fields": fields,
        "mappings": json.loads(row["mappings"]),
    }


async def read_specs(
    conn: asyncpg.Connection, community_id: str | None = None
) -> tuple[dict[str, CommunitySpec], dict[str, list[str]]]:
    """Every community (or one), as specs, in one statement (one consistent snapshot).

    Returns the valid specs and, apart, the problems of rows the model refuses, so that one
    bad community never hides the others.
    """
    if community_id is None:
        rows = await conn.fetch(_SPEC_QUERY + " ORDER BY c.id")
    else:
        rows = await conn.fetch(_SPEC_QUERY + " WHERE c.id = $1", community_id)
    specs: dict[str, CommunitySpec] = {}
    invalid: dict[str, list[str]] = {}
    for row in rows:
        try:
            specs[row["id"]] = validate_spec(CommunitySpec, _spec_data(row), s1=False)  # rows before 0002
        except ConfigError as exc:
            invalid[row["id"]] = exc.problems
    return specs, invalid


async def load_all_communities(conn: asyncpg.Connection) -> dict[str, Community]:
    """All communities, prepared for the pipeline (C1). InvalidStoredConfig if a row is bad."""
    specs, invalid = await read_specs(conn)
    if invalid:
        raise InvalidStoredConfig(invalid)
    tombstones = await read_tombstones(conn)
    return {cid: Community.from_spec(spec, tombstones.get(cid)) for cid, spec in specs.items()}


async def load_community(conn: asyncpg.Connection, community_id: str) -> Community | None:
    """One community, prepared; None when it does not exist."""
    specs, invalid = await read_specs(conn, community_id)
    if invalid:
        raise InvalidStoredConfig(invalid)
    spec = specs.get(community_id)
    if spec is None:
        return None
    return Community.from_spec(spec, (await read_tombstones(conn, community_id)).get(community_id))


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


async def list_keys(conn: asyncpg.Connection, community_id: str) -> list[KeyRow]:
    await require_community(conn, community_id)
    rows = await conn.fetch(
        "SELECT kid, hmac_secret, rsa_public_key, created_at FROM jwt_keys WHERE community_id = $1 "
        "ORDER BY created_at, kid",
        community_id,
    )
    listed = []
    for row in rows:
        # The fingerprint is computed from the key, so it can never disagree with it.
        spec = validate_spec(
            JwtKeySpec, {k: row[k] for k in ("kid", "hmac_secret", "rsa_public_key") if row[k] is not None}
        )
        key = spec.prepare()
        listed.append(KeyRow(key.kid, key.alg, key.fingerprint, row["created_at"]))
    return listed


async def list_fields(conn: asyncpg.Connection, community_id: str) -> list[FieldRow]:
    await require_community(conn, community_id)
    rows = await conn.fetch(
        "SELECT key, label, regex, created_at FROM custom_fields WHERE community_id = $1 "
        "ORDER BY created_at, key",
        community_id,
    )
    return [FieldRow(**dict(r)) for r in rows]


async def list_mappings(conn: asyncpg.Connection, community_id: str) -> list[MappingRow]:
    await require_community(conn, community_id)
    rows = await conn.fetch(
        "SELECT source, target, created_at FROM mappings WHERE community_id = $1 ORDER BY position",
        community_id,
    )
    return [MappingRow(i, r["source"], r["target"], r["created_at"]) for i, r in enumerate(rows, 1)]


# ---------------------------------------------------------------- mutations


async def _current(conn: asyncpg.Connection, community_id: str) -> CommunitySpec:
    """The community's spec, its row locked until the caller's transaction ends."""
    await require_community(conn, community_id, lock=True)
    specs, invalid = await read_specs(conn, community_id)
    if invalid:
        raise InvalidStoredConfig(invalid)
    return specs[community_id]


class KeyRequired(Conflict):
    """S1: the change would leave a community that requires signed identities with no key.
    The message says what to do instead (add the key first, or switch to reject)."""


async def _change(
    conn: asyncpg.Connection,
    community_id: str,
    edit: Callable[[dict[str, Any]], None],
    key_required: str = "",
) -> list[Change]:
    """Read, edit the spec's data, validate the whole community like the YAML loader, write.

    `key_required` is the refusal when the result would break S1 (the generic line if empty)."""
    old = await _current(conn, community_id)
    data = old.model_dump(by_alias=True, exclude_none=True)
    data["jwt_keys"] = list(old.jwt_keys)  # keep SecretStr values out of dumps: specs as they are
    edit(data)
    new = validate_spec(CommunitySpec, data, s1=False)
    if lacks_required_key(new):
        raise KeyRequired(key_required or _no_key(community_id))
    return await sync_community(conn, old, new)


def _no_key(community_id: str) -> str:
    return (
        f"community {community_id!r} requires signed identities but would have no JWT key (S1): "
        "add a key first, or switch it to reject"
    )


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
    return await _change(conn, community_id, lambda data: data.update(settings), key_required)


async def remove_community(conn: asyncpg.Connection, community_id: str) -> list[Change]:
    old = await _current(conn, community_id)
    await conn.execute("DELETE FROM communities WHERE id = $1", community_id)  # cascades
    return [Change("-", f"community {community_id} ({_contents(old)})")]


def _contents(spec: CommunitySpec) -> str:
    return (
        f"{len(spec.jwt_keys)} key(s), {len(spec.custom_fields)} custom field(s), "
        f"{len(spec.mappings)} mapping(s)"
    )


async def _add_item(
    conn: asyncpg.Connection,
    community_id: str,
    section: str,
    item: Any,
    same: Callable[[Any], bool],
    conflict: str,
) -> list[Change]:
    """Append `item` to a section of the community, unless an entry is the `same`."""

    def edit(data: dict[str, Any]) -> None:
        if any(same(entry) for entry in data[section]):
            raise Conflict(conflict)
        data[section].append(item)

    return await _change(conn, community_id, edit)


async def _remove_items(
    conn: asyncpg.Connection,
    community_id: str,
    section: str,
    matches: Callable[[Any], bool],
    not_found: str,
    still_used: Callable[[dict[str, Any]], str | None] = lambda data: None,
    key_required: str = "",
) -> list[Change]:
    """Remove the entries of a section that match; NotFound when none does."""

    def edit(data: dict[str, Any]) -> None:
        kept = [entry for entry in data[section] if not matches(entry)]
        if len(kept) == len(data[section]):
            raise NotFound(not_found)
        conflict = still_used(data)
        if conflict:
            raise Conflict(conflict)
        data[section] = kept

    return await _change(conn, community_id, edit, key_required)


async def add_key(conn: asyncpg.Connection, community_id: str, key: JwtKeySpec) -> list[Change]:
    conflict = (
        f"community {community_id!r} already has a key with kid {key.kid!r}; "
        "to rotate, add the new key under a new kid, then remove the old one"
    )
    return await _add_item(conn, community_id, "jwt_keys", key, lambda k: k.kid == key.kid, conflict)


async def remove_key(
    conn: asyncpg.Connection, community_id: str, kid: str, *, force: bool = False
) -> list[Change]:
    """Remove a key, leaving a tombstone; refused (KeyStillInUse) while it is in use, unless
    `force` (L3)."""
    not_found = f"community {community_id!r} has no key with kid {kid!r} (see `keys list`)"
    key_required = (
        f"key {kid!r} is the last key of community {community_id!r}, which requires signed identities "
        f"(S1): add its new key first (`keys add`), or switch it to reject "
        f"(`community set-mode {community_id} reject`)"
    )
    if not force:
        await refuse_if_in_use(conn, community_id, kid)
    return await _remove_items(
        conn, community_id, "jwt_keys", lambda k: k.kid == kid, not_found, key_required=key_required
    )


async def add_field(conn: asyncpg.Connection, community_id: str, field: CustomFieldSpec) -> list[Change]:
    conflict = f"community {community_id!r} already has a custom field {field.key!r}"
    item = field.model_dump(exclude_none=True)
    return await _add_item(
        conn, community_id, "custom_fields", item, lambda f: f["key"] == field.key, conflict
    )


async def remove_field(conn: asyncpg.Connection, community_id: str, key: str) -> list[Change]:
    def still_used(data: dict[str, Any]) -> str | None:
        users = [m for m in data["mappings"] if m["to"] == f"custom_fields.{key}"]
        if not users:
            return None
        return (
            f"custom field {key!r} is the target of mapping {users[0]['from']} -> {users[0]['to']}; "
            "remove that mapping first (`mappings remove`)"
        )

    not_found = f"community {community_id!r} has no custom field {key!r} (see `fields list`)"
    return await _remove_items(
        conn, community_id, "custom_fields", lambda f: f["key"] == key, not_found, still_used
    )


async def add_mapping(conn: asyncpg.Connection, community_id: str, mapping: MappingSpec) -> list[Change]:
    """Append `mapping` after the community's last one (M2)."""
    entry = mapping.model_dump(by_alias=True)
    conflict = (
        f"community {community_id!r} already has mapping {mapping_label(mapping)} "
        "(a second copy would change nothing)"
    )
    return await _add_item(conn, community_id, "mappings", entry, lambda m: m == entry, conflict)


async def remove_mapping(conn: asyncpg.Connection, community_id: str, mapping: MappingSpec) -> list[Change]:
    """Remove every copy of `mapping`; the others keep their order."""
    entry = mapping.model_dump(by_alias=True)
    not_found = f"community {community_id!r} has no mapping {mapping_label(mapping)} (see `mappings list`)"
    return await _remove_items(conn, community_id, "mappings", lambda m: m == entry, not_found)


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
    specs, invalid = await read_specs(conn, community_id)
    if invalid:
        raise InvalidStoredConfig(invalid)
    return ConfigSpec(communities=list(specs.values()))
