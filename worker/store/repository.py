"""What the admin commands and the admin API do to the configuration store (DESIGN §5, §10).

Each mutation locks the community, reads its current spec (`loading.read_specs`), lets the
spec make the edited, validated copy (`CommunitySpec.with_key`, …: the YAML loader's rules by
construction) and writes the difference (`sync.sync_community`). `config apply` / `config
export` work on whole files. Callers own the transaction. The listings are in
`worker.store.listings`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Final

import asyncpg

from worker.core.config import (
    CommunitySpec,
    ConfigError,
    ConfigSpec,
    CustomFieldSpec,
    JwtKeySpec,
    MappingSpec,
    lacks_required_key,
)
from worker.store.db import Conflict, NotFound
from worker.store.lifecycle import refuse_if_in_use
from worker.store.listings import CommunityRow, community_row, community_rows, require_community
from worker.store.loading import (
    InvalidStoredConfig,
    read_spec_data,
    stored_spec,
    stream_spec_data,
    valid_specs,
)
from worker.store.sync import (
    Change,
    Progress,
    Writes,
    mapping_label,
    mapping_positions,
    plan,
    stored_form,
    sync_community,
    write,
    written_form,
)

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
    await _current(conn, community_id)
    row = await community_row(conn, community_id)
    await conn.execute("DELETE FROM communities WHERE id = $1", community_id)  # cascades
    return [Change("-", f"community {community_id} ({_counts(row)})")]


def _counts(row: CommunityRow) -> str:
    return f"{row.keys} key(s), {row.custom_fields} custom field(s), {row.mappings} mapping(s)"


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


async def apply_config(
    conn: asyncpg.Connection,
    config: ConfigSpec,
    *,
    prune: bool = False,
    progress: Progress | None = None,
    unchanged: Sequence[str] = (),
) -> list[Change]:
    """Make the store hold `config`: each community in it exactly as written (keys, fields
    and mappings not in the file are removed); communities absent from the file are left
    alone unless `prune`. Run it inside one transaction: all or nothing.

    T4: one diff, written in batches. Only the file's communities are read; one whose rows
    already equal the file's entry (`written_form`) is neither validated again nor written,
    so the cost follows the file and its changes, not the store. `progress` hears the rows
    written (`sync.write`). `unchanged`: more communities of the file, known to be stored as
    written (`applied_texts.read_file`): left alone, and kept by `prune`."""
    # EXCLUSIVE: other writers wait, readers (workers) do not.
    await conn.execute("LOCK TABLE communities IN EXCLUSIVE MODE")
    stored = await read_spec_data(conn, [spec.id for spec in config.communities])
    differing = [
        spec
        for spec in config.communities
        if spec.id in stored and written_form(spec) != stored_form(stored[spec.id])
    ]
    positions = await mapping_positions(conn, [spec.id for spec in differing])
    olds: dict[str, CommunitySpec | None] = {}
    replaced: list[str] = []
    for spec in differing:
        try:
            olds[spec.id] = stored_spec(stored[spec.id])
        except ConfigError:  # rows the model refuses (written around it): replaced whole
            olds[spec.id] = None
            replaced.append(spec.id)
    writes = Writes()
    changes: list[Change] = []
    for spec in config.communities:
        if spec.id not in stored:
            changes += plan(writes, None, spec, [])
        elif spec.id in olds:
            if spec.id in replaced:
                changes.append(Change("~", f"community {spec.id}: replaced rows the model refused"))
            changes += plan(writes, olds[spec.id], spec, positions.get(spec.id, []))
    removed = replaced
    if prune:
        for row in await community_rows(
            conn, "WHERE NOT (c.id = ANY($1::text[]))", [*unchanged, *(s.id for s in config.communities)]
        ):
            removed.append(row.id)
            changes.append(Change("-", f"community {row.id} ({_counts(row)})"))
    if removed:
        await conn.execute("DELETE FROM communities WHERE id = ANY($1::text[])", removed)  # cascades
    await write(conn, writes, progress)
    return changes


#: Communities validated and written per step of `config export`.
EXPORT_BATCH: Final = 1000


async def export_config(
    conn: asyncpg.Connection, community_id: str | None = None
) -> AsyncIterator[tuple[bool, list[CommunitySpec]]]:
    """Every community (or one), validated by the model, in id order, `EXPORT_BATCH` at a time
    from one snapshot (T4: streamed, constant memory). Each item: whether the export holds an
    HMAC secret anywhere (for the header), and a batch; the first batch is empty for an empty
    store. InvalidStoredConfig, from the batch that holds it, for rows the model refuses."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        if community_id is not None:
            await require_community(conn, community_id)
        has_hmac = bool(
            await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM jwt_keys WHERE hmac_secret IS NOT NULL "
                "AND ($1::text IS NULL OR community_id = $1))",
                community_id,
            )
        )
        empty = True
        async for batch in stream_spec_data(conn, community_id, EXPORT_BATCH):
            specs: list[CommunitySpec] = []
            invalid: dict[str, list[str]] = {}
            for data in batch:
                try:
                    specs.append(stored_spec(data))
                except ConfigError as exc:
                    invalid[data["id"]] = exc.problems
            if invalid:
                raise InvalidStoredConfig(invalid)
            empty = False
            yield has_hmac, specs
        if empty:
            yield has_hmac, []
