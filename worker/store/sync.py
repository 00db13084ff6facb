"""Write one community's desired state over its current rows, and say what changed.

Every admin mutation and `config apply` go through `sync_community`: the caller builds the
whole desired `CommunitySpec` (validated by the same model as the YAML loader, DESIGN §5),
and this module writes only the difference, in an order the foreign keys accept, inside
the caller's transaction. The returned `Change` lines are what the commands print; a key
is shown by kid, algorithm and fingerprint, never by its secret (DESIGN §7).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import asyncpg

from worker.core.config import CommunitySpec, CustomFieldSpec, JwtKeySpec, MappingSpec, validate_spec
from worker.core.keys import JwtKey

Op = Literal["+", "~", "-"]


@dataclass(frozen=True, slots=True)
class Change:
    """One line of a change report: `+` added, `~` changed, `-` removed."""

    op: Op
    text: str

    def __str__(self) -> str:
        return f"{self.op} {self.text}"


def key_label(spec: JwtKeySpec, prepared: JwtKey | None = None) -> str:
    key = prepared or spec.prepare()
    return f"{key.alg} {key.fingerprint}"


#: A community's own settings: its columns in `communities`, in this order (DESIGN §1, §11).
SETTINGS: Final = (
    "signed_identities",
    "min_validity_seconds",
    "leeway_seconds",
    "max_validity_seconds",
    "retirement_window_seconds",
)


def _settings(spec: CommunitySpec) -> tuple[object, ...]:
    return (
        spec.signed_identities.value,
        spec.min_validity_seconds,
        spec.leeway_seconds,
        spec.max_validity_seconds,
        spec.retirement_window_seconds,
    )


def _shown(value: object) -> str:
    return "unset" if value is None else str(value)


def community_label(spec: CommunitySpec) -> str:
    """The settings, the optional ones only when they differ from their default."""
    defaults = _settings(validate_spec(CommunitySpec, {"id": spec.id}, s1=False))
    shown = [
        f"{name} {_shown(value)}"
        for i, (name, value) in enumerate(zip(SETTINGS, _settings(spec), strict=True))
        if i < 3 or value != defaults[i]
    ]
    return ", ".join(shown)


def field_label(spec: CustomFieldSpec) -> str:
    regex = f", regex {spec.regex!r}" if spec.regex is not None else ""
    return f"label {spec.label!r}{regex}"


def mapping_label(spec: MappingSpec) -> str:
    return f"{spec.from_} -> {spec.to}"


async def sync_community(
    conn: asyncpg.Connection, old: CommunitySpec | None, new: CommunitySpec
) -> list[Change]:
    """Make the rows of `new.id` equal `new`; `old` is what they hold now (None: absent)."""
    cid = new.id
    changes: list[Change] = []
    if old is None:
        await conn.execute(
            f"INSERT INTO communities (id, {', '.join(SETTINGS)}) "
            f"VALUES ($1, {', '.join(f'${i}' for i in range(2, len(SETTINGS) + 2))})",
            cid,
            *_settings(new),
        )
        changes.append(Change("+", f"community {cid} ({community_label(new)})"))
        old = validate_spec(CommunitySpec, {"id": cid}, s1=False)  # nothing yet: a baseline to diff
    else:
        settings = [
            f"{name} {_shown(before)} -> {_shown(after)}"
            for name, before, after in zip(SETTINGS, _settings(old), _settings(new), strict=True)
            if before != after
        ]
        if settings:
            assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(SETTINGS, 2))
            await conn.execute(f"UPDATE communities SET {assignments} WHERE id = $1", cid, *_settings(new))
            changes.append(Change("~", f"community {cid}: {', '.join(settings)}"))

    # Mappings leave before the custom fields they name, and come back after them.
    kept_positions, mapping_changes, append_from = await _remove_mappings(
        conn, cid, old.mappings, new.mappings
    )
    changes += await _sync_keys(conn, cid, old.jwt_keys, new.jwt_keys)
    changes += await _sync_fields(conn, cid, old.custom_fields, new.custom_fields)
    next_position = max(kept_positions, default=-1) + 1
    for mapping in new.mappings[append_from:]:
        await conn.execute(
            "INSERT INTO mappings (community_id, position, source, target) VALUES ($1, $2, $3, $4)",
            cid,
            next_position,
            mapping.from_,
            mapping.to,
        )
        next_position += 1
    return changes + mapping_changes


async def _sync_keys(
    conn: asyncpg.Connection, cid: str, old: list[JwtKeySpec], new: list[JwtKeySpec]
) -> list[Change]:
    changes = []
    before = {k.kid: (k, k.prepare()) for k in old}
    after = {k.kid: k for k in new}
    for kid, (spec, prepared) in before.items():
        if kid not in after:
            await conn.execute("DELETE FROM jwt_keys WHERE community_id = $1 AND kid = $2", cid, kid)
            await _bury(conn, cid, prepared)
            changes.append(Change("-", f"key {cid}/{kid} ({key_label(spec, prepared)})"))
    for kid, spec in after.items():
        prepared = spec.prepare()
        secret, pem = _key_columns(spec)
        if kid not in before:
            await conn.execute("DELETE FROM key_tombstones WHERE community_id = $1 AND kid = $2", cid, kid)
            await conn.execute(
                "INSERT INTO jwt_keys (community_id, kid, alg, hmac_secret, rsa_public_key) "
                "VALUES ($1, $2, $3, $4, $5)",
                cid,
                kid,
                spec.alg,
                secret,
                pem,
            )
            changes.append(Change("+", f"key {cid}/{kid} ({key_label(spec, prepared)})"))
            continue
        old_spec, old_prepared = before[kid]
        if (old_prepared.alg, old_prepared.digest) != (prepared.alg, prepared.digest):
            # New material under the same kid: a new key, so `created` restarts.
            await conn.execute(
                "UPDATE jwt_keys SET alg = $3, hmac_secret = $4, rsa_public_key = $5, created_at = now() "
                "WHERE community_id = $1 AND kid = $2",
                cid,
                kid,
                spec.alg,
                secret,
                pem,
            )
            changes.append(
                Change(
                    "~",
                    f"key {cid}/{kid} ({key_label(old_spec, old_prepared)} -> {key_label(spec, prepared)})",
                )
            )
    return changes


async def _bury(conn: asyncpg.Connection, cid: str, key: JwtKey) -> None:
    """L3: a removed key leaves a tombstone (kid, algorithm, fingerprint, when; never the secret)."""
    await conn.execute(
        "INSERT INTO key_tombstones (community_id, kid, alg, fingerprint) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (community_id, kid) DO UPDATE SET alg = EXCLUDED.alg, "
        "fingerprint = EXCLUDED.fingerprint, removed_at = now()",
        cid,
        key.kid,
        key.alg,
        key.fingerprint,
    )


def _key_columns(spec: JwtKeySpec) -> tuple[str | None, str | None]:
    if spec.hmac_secret is not None:
        return spec.hmac_secret.get_secret_value(), None
    assert spec.rsa_public_key is not None
    return None, spec.rsa_public_key.strip() + "\n"


async def _sync_fields(
    conn: asyncpg.Connection, cid: str, old: list[CustomFieldSpec], new: list[CustomFieldSpec]
) -> list[Change]:
    changes = []
    before = {f.key: f for f in old}
    after = {f.key: f for f in new}
    for key, spec in before.items():
        if key not in after:
            await conn.execute("DELETE FROM custom_fields WHERE community_id = $1 AND key = $2", cid, key)
            changes.append(Change("-", f"field {cid}/{key} ({field_label(spec)})"))
    for key, spec in after.items():
        if key not in before:
            await conn.execute(
                "INSERT INTO custom_fields (community_id, key, label, regex) VALUES ($1, $2, $3, $4)",
                cid,
                key,
                spec.label,
                spec.regex,
            )
            changes.append(Change("+", f"field {cid}/{key} ({field_label(spec)})"))
        elif before[key] != spec:
            await conn.execute(
                "UPDATE custom_fields SET label = $3, regex = $4 WHERE community_id = $1 AND key = $2",
                cid,
                key,
                spec.label,
                spec.regex,
            )
            changes.append(
                Change("~", f"field {cid}/{key} ({field_label(before[key])} -> {field_label(spec)})")
            )
    return changes


async def _remove_mappings(
    conn: asyncpg.Connection, cid: str, old: list[MappingSpec], new: list[MappingSpec]
) -> tuple[list[int], list[Change], int]:
    """Delete the mapping rows that `new` does not keep in place (M2: order is kept).

    `new` is written as: the rows of `old` it keeps, in their order, then the rest appended
    at the end. Returns the positions kept, the change lines, and the index in `new` from
    which mappings are to be appended. A mapping removed and appended again was moved.
    """
    rows = await conn.fetch("SELECT position FROM mappings WHERE community_id = $1 ORDER BY position", cid)
    positions = [r["position"] for r in rows]
    kept, append_from = _kept_prefix(old, new)
    dropped = [i for i in range(len(old)) if i not in kept]
    if dropped:
        await conn.execute(
            "DELETE FROM mappings WHERE community_id = $1 AND position = ANY($2::int[])",
            cid,
            [positions[i] for i in dropped],
        )
    removed = [old[i] for i in dropped]
    appended = list(new[append_from:])
    changes = []
    for mapping in removed:
        if mapping in appended:
            appended.remove(mapping)
            changes.append(Change("~", f"mapping {cid}: {mapping_label(mapping)} moved"))
        else:
            changes.append(Change("-", f"mapping {cid}: {mapping_label(mapping)}"))
    changes += [Change("+", f"mapping {cid}: {mapping_label(m)}") for m in appended]
    return [positions[i] for i in sorted(kept)], changes, append_from


def _kept_prefix(old: list[MappingSpec], new: list[MappingSpec]) -> tuple[set[int], int]:
    """The longest start of `new` found in `old` in order (greedily): the indexes of `old`
    it uses, and where in `new` the remainder, to be appended, begins."""
    kept: set[int] = set()
    i = 0
    for j, mapping in enumerate(new):
        while i < len(old) and old[i] != mapping:
            i += 1
        if i == len(old):
            return kept, j
        kept.add(i)
        i += 1
    return kept, len(new)
