"""Write communities' desired state over their current rows, and say what changed.

Every admin mutation and `config apply` go through here: the caller builds each whole desired
`CommunitySpec` (validated by the same model as the YAML loader, DESIGN §5, A3); `plan`
computes the difference with the stored spec (pure: rows to write and `Change` lines), and
`write` sends the rows of any number of communities as a few array statements per table, in
an order the foreign keys accept, inside the caller's transaction (T4: one diff, written in
batches, so 100 000 communities cost a few hundred statements, not a million).
`sync_community` is both for one community. The `Change` lines are what the commands print;
a key is shown by kid, algorithm and fingerprint, never by its secret (DESIGN §7).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Final, Literal

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


@functools.cache
def _default_settings() -> tuple[object, ...]:
    return _settings(validate_spec(CommunitySpec, {"id": "defaults"}, s1=False))


def community_label(spec: CommunitySpec) -> str:
    """The settings, the optional ones only when they differ from their default."""
    defaults = _default_settings()
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


Row = tuple[object, ...]


@dataclass(slots=True)
class Writes:
    """The rows a diff writes, per statement of `_STATEMENTS` (same names), for any number of
    communities. Each row is the statement's columns, in order."""

    mappings_deleted: list[Row] = field(default_factory=list)  # (community, position)
    communities_added: list[Row] = field(default_factory=list)  # (id, *SETTINGS)
    communities_changed: list[Row] = field(default_factory=list)  # (id, *SETTINGS)
    keys_deleted: list[Row] = field(default_factory=list)  # (community, kid)
    tombstones: list[Row] = field(default_factory=list)  # (community, kid, alg, fingerprint)
    tombstones_cleared: list[Row] = field(default_factory=list)  # (community, kid)
    keys_added: list[Row] = field(default_factory=list)  # (community, kid, alg, secret, pem)
    keys_changed: list[Row] = field(default_factory=list)  # (community, kid, alg, secret, pem)
    fields_deleted: list[Row] = field(default_factory=list)  # (community, key)
    fields_added: list[Row] = field(default_factory=list)  # (community, key, label, regex)
    fields_changed: list[Row] = field(default_factory=list)  # (community, key, label, regex)
    mappings_added: list[Row] = field(default_factory=list)  # (community, position, source, target)

    def __len__(self) -> int:
        return sum(len(getattr(self, f.name)) for f in fields(self))


def _unnest(*types: str) -> str:
    return "unnest(" + ", ".join(f"${i}::{t}[]" for i, t in enumerate(types, 1)) + ")"


_SETTING_TYPES: Final = ("text", "text", "int", "int", "int", "int")  # id, then SETTINGS
_KEY_TYPES: Final = ("text", "text", "text", "text", "text")
_FIELD_TYPES: Final = ("text", "text", "text", "text")
_PAIR: Final = _unnest("text", "text")

#: Each list of `Writes` and its statement, in the order they run: mappings leave before the
#: custom fields they name and come back after them; a community exists before its rows.
_STATEMENTS: Final = {
    "mappings_deleted": "DELETE FROM mappings m USING " + _unnest("text", "int") + " AS u(c, p) "
    "WHERE m.community_id = u.c AND m.position = u.p",
    "communities_added": f"INSERT INTO communities (id, {', '.join(SETTINGS)}) "
    f"SELECT * FROM {_unnest(*_SETTING_TYPES)}",
    "communities_changed": "UPDATE communities c SET "
    + ", ".join(f"{name} = u.{name}" for name in SETTINGS)
    + f" FROM {_unnest(*_SETTING_TYPES)} AS u(id, {', '.join(SETTINGS)}) WHERE c.id = u.id",
    "keys_deleted": f"DELETE FROM jwt_keys k USING {_PAIR} AS u(c, kid) "
    "WHERE k.community_id = u.c AND k.kid = u.kid",
    # L3: a removed key leaves a tombstone (kid, algorithm, fingerprint, when; never the secret).
    "tombstones": "INSERT INTO key_tombstones (community_id, kid, alg, fingerprint) "
    f"SELECT * FROM {_unnest('text', 'text', 'text', 'text')} "
    "ON CONFLICT (community_id, kid) DO UPDATE SET alg = EXCLUDED.alg, "
    "fingerprint = EXCLUDED.fingerprint, removed_at = now()",
    "tombstones_cleared": f"DELETE FROM key_tombstones t USING {_PAIR} AS u(c, kid) "
    "WHERE t.community_id = u.c AND t.kid = u.kid",
    "keys_added": "INSERT INTO jwt_keys (community_id, kid, alg, hmac_secret, rsa_public_key) "
    f"SELECT * FROM {_unnest(*_KEY_TYPES)}",
    # New material under the same kid: a new key, so `created` restarts.
    "keys_changed": "UPDATE jwt_keys k SET alg = u.alg, hmac_secret = u.s, rsa_public_key = u.pem, "
    f"created_at = now() FROM {_unnest(*_KEY_TYPES)} AS u(c, kid, alg, s, pem) "
    "WHERE k.community_id = u.c AND k.kid = u.kid",
    "fields_deleted": f"DELETE FROM custom_fields f USING {_PAIR} AS u(c, key) "
    "WHERE f.community_id = u.c AND f.key = u.key",
    "fields_added": "INSERT INTO custom_fields (community_id, key, label, regex) "
    f"SELECT * FROM {_unnest(*_FIELD_TYPES)}",
    "fields_changed": "UPDATE custom_fields f SET label = u.label, regex = u.regex "
    f"FROM {_unnest(*_FIELD_TYPES)} AS u(c, key, label, regex) "
    "WHERE f.community_id = u.c AND f.key = u.key",
    "mappings_added": "INSERT INTO mappings (community_id, position, source, target) "
    f"SELECT * FROM {_unnest('text', 'int', 'text', 'text')}",
}
#: Rows per statement: large enough that 100 000 communities take a few hundred statements,
#: small enough that each is a short step a progress line can count.
BATCH_ROWS: Final = 10_000

#: Told the rows written so far and the total, after each statement of a long write.
Progress = Callable[[int, int], None]


async def write(conn: asyncpg.Connection, writes: Writes, progress: Progress | None = None) -> None:
    """Send `writes` in the caller's transaction: each list as array statements of at most
    BATCH_ROWS rows. The CHECK constraints, triggers (NOTIFY, C1) and S1's deferred check
    (0002) run on every row as they would for single statements."""
    total, done = len(writes), 0
    for name, statement in _STATEMENTS.items():
        rows: list[Row] = getattr(writes, name)
        for start in range(0, len(rows), BATCH_ROWS):
            batch = rows[start : start + BATCH_ROWS]
            await conn.execute(statement, *(list(column) for column in zip(*batch, strict=True)))
            done += len(batch)
            if progress is not None:
                progress(done, total)


async def mapping_positions(conn: asyncpg.Connection, community_ids: Sequence[str]) -> dict[str, list[int]]:
    """Each community's stored mapping positions, in order (M2): what `plan` deletes by."""
    rows = await conn.fetch(
        "SELECT community_id, array_agg(position ORDER BY position) AS positions FROM mappings "
        "WHERE community_id = ANY($1::text[]) GROUP BY community_id",
        list(community_ids),
    )
    return {r["community_id"]: list(r["positions"]) for r in rows}


async def sync_community(
    conn: asyncpg.Connection, old: CommunitySpec | None, new: CommunitySpec
) -> list[Change]:
    """Make the rows of `new.id` equal `new`; `old` is what they hold now (None: absent)."""
    positions = (await mapping_positions(conn, [new.id])).get(new.id, []) if old is not None else []
    writes = Writes()
    changes = plan(writes, old, new, positions)
    await write(conn, writes)
    return changes


def plan(
    writes: Writes, old: CommunitySpec | None, new: CommunitySpec, positions: Sequence[int]
) -> list[Change]:
    """Add to `writes` what makes the rows of `new.id` equal `new`, and say what changes.

    `old`: what the rows hold now (None: absent); `positions`: the stored positions of its
    mappings, in order. Pure: no I/O."""
    cid = new.id
    changes: list[Change] = []
    if old is None:
        writes.communities_added.append((cid, *_settings(new)))
        changes.append(Change("+", f"community {cid} ({community_label(new)})"))
        old_keys, old_fields, old_mappings = [], [], []
    else:
        settings = [
            f"{name} {_shown(before)} -> {_shown(after)}"
            for name, before, after in zip(SETTINGS, _settings(old), _settings(new), strict=True)
            if before != after
        ]
        if settings:
            writes.communities_changed.append((cid, *_settings(new)))
            changes.append(Change("~", f"community {cid}: {', '.join(settings)}"))
        old_keys, old_fields, old_mappings = old.jwt_keys, old.custom_fields, old.mappings
    mapping_changes = _plan_mappings(writes, cid, old_mappings, new.mappings, positions)
    changes += _plan_keys(writes, cid, old_keys, new.jwt_keys)
    changes += _plan_fields(writes, cid, old_fields, new.custom_fields)
    return changes + mapping_changes


def _plan_keys(writes: Writes, cid: str, old: list[JwtKeySpec], new: list[JwtKeySpec]) -> list[Change]:
    changes = []
    before = {k.kid: (k, k.prepare()) for k in old}
    after = {k.kid: k for k in new}
    for kid, (spec, prepared) in before.items():
        if kid not in after:
            writes.keys_deleted.append((cid, kid))
            writes.tombstones.append((cid, kid, prepared.alg, prepared.fingerprint))
            changes.append(Change("-", f"key {cid}/{kid} ({key_label(spec, prepared)})"))
    for kid, spec in after.items():
        prepared = spec.prepare()
        row = (cid, kid, spec.alg, *_key_columns(spec))
        if kid not in before:
            writes.tombstones_cleared.append((cid, kid))
            writes.keys_added.append(row)
            changes.append(Change("+", f"key {cid}/{kid} ({key_label(spec, prepared)})"))
            continue
        old_spec, old_prepared = before[kid]
        if (old_prepared.alg, old_prepared.digest) != (prepared.alg, prepared.digest):
            writes.keys_changed.append(row)
            changes.append(
                Change(
                    "~",
                    f"key {cid}/{kid} ({key_label(old_spec, old_prepared)} -> {key_label(spec, prepared)})",
                )
            )
    return changes


def _key_columns(spec: JwtKeySpec) -> tuple[str | None, str | None]:
    if spec.hmac_secret is not None:
        return spec.hmac_secret.get_secret_value(), None
    assert spec.rsa_public_key is not None
    return None, spec.rsa_public_key.strip() + "\n"


def _plan_fields(
    writes: Writes, cid: str, old: list[CustomFieldSpec], new: list[CustomFieldSpec]
) -> list[Change]:
    changes = []
    before = {f.key: f for f in old}
    after = {f.key: f for f in new}
    for key, spec in before.items():
        if key not in after:
            writes.fields_deleted.append((cid, key))
            changes.append(Change("-", f"field {cid}/{key} ({field_label(spec)})"))
    for key, spec in after.items():
        if key not in before:
            writes.fields_added.append((cid, key, spec.label, spec.regex))
            changes.append(Change("+", f"field {cid}/{key} ({field_label(spec)})"))
        elif before[key] != spec:
            writes.fields_changed.append((cid, key, spec.label, spec.regex))
            changes.append(
                Change("~", f"field {cid}/{key} ({field_label(before[key])} -> {field_label(spec)})")
            )
    return changes


def _plan_mappings(
    writes: Writes, cid: str, old: list[MappingSpec], new: list[MappingSpec], positions: Sequence[int]
) -> list[Change]:
    """Delete the mapping rows that `new` does not keep in place, append the rest (M2: order
    is kept). `new` is written as: the rows of `old` it keeps, in their order, then the rest
    appended at the end. A mapping removed and appended again was moved."""
    kept, append_from = _kept_prefix(old, new)
    dropped = [i for i in range(len(old)) if i not in kept]
    writes.mappings_deleted.extend((cid, positions[i]) for i in dropped)
    next_position = max((positions[i] for i in kept), default=-1) + 1
    writes.mappings_added.extend(
        (cid, next_position + n, m.from_, m.to) for n, m in enumerate(new[append_from:])
    )
    appended = list(new[append_from:])
    changes = []
    for mapping in (old[i] for i in dropped):
        if mapping in appended:
            appended.remove(mapping)
            changes.append(Change("~", f"mapping {cid}: {mapping_label(mapping)} moved"))
        else:
            changes.append(Change("-", f"mapping {cid}: {mapping_label(mapping)}"))
    changes += [Change("+", f"mapping {cid}: {mapping_label(m)}") for m in appended]
    return changes


def written_form(spec: CommunitySpec) -> tuple[object, ...]:
    """The rows `spec` is written as, order-free where the store keeps no order (keys and
    fields by name; mappings in order, M2): equal to `stored_form` of the rows exactly when
    `plan` would write nothing."""
    return (
        _settings(spec),
        sorted((k.kid, *_key_columns(k)) for k in spec.jwt_keys),
        sorted((f.key, f.label, f.regex) for f in spec.custom_fields),
        [(m.from_, m.to) for m in spec.mappings],
    )


def stored_form(data: dict[str, Any]) -> tuple[object, ...]:
    """`written_form` of a community's rows as `loading.read_spec_data` gives them (unvalidated)."""
    return (
        tuple(data[name] for name in SETTINGS),
        sorted((k["kid"], k.get("hmac_secret"), k.get("rsa_public_key")) for k in data["jwt_keys"]),
        sorted((f["key"], f["label"], f.get("regex")) for f in data["custom_fields"]),
        [(m["from"], m["to"]) for m in data["mappings"]],
    )


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
