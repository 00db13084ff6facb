"""Communities read back from their rows (DESIGN §5): what the worker, `process --database-url`
and every admin read load.

One statement reads every community (or one) with its keys, custom fields and mappings, one
consistent snapshot; each row set is validated by the same `CommunitySpec` model as the YAML
loader, then prepared (`Community.from_spec`) with its key tombstones (L3). A community whose
rows the model refuses is reported apart (`InvalidStoredConfig`), never hidden by the others.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any, Final

import asyncpg

from worker.core.community import Community
from worker.core.config import CommunitySpec, ConfigError, validate_spec
from worker.store.db import TRANSIENT_ERRORS, StoreError, connect, translate
from worker.store.lifecycle import read_tombstones
from worker.store.migrate import check_schema

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
    """Rows that pass the CHECK constraints but not the model (e.g. a regex RE2 refuses): a read
    met them, no write was refused. `problems`: {community_id: [line, …]}."""

    def __init__(self, problems: dict[str, list[str]]) -> None:
        super().__init__(
            "; ".join(
                f"stored community {cid} does not pass the model: {'; '.join(items)}"
                for cid, items in sorted(problems.items())
            )
        )
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


async def read_spec_data(
    conn: asyncpg.Connection, community_ids: Sequence[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Every community (or those of `community_ids`) as the data a `CommunitySpec` validates,
    unvalidated, in id order, in one statement (one consistent snapshot)."""
    if community_ids is None:
        rows = await conn.fetch(_SPEC_QUERY + " ORDER BY c.id")
    else:
        rows = await conn.fetch(
            _SPEC_QUERY + " WHERE c.id = ANY($1::text[]) ORDER BY c.id", list(community_ids)
        )
    return {row["id"]: _spec_data(row) for row in rows}


async def stream_spec_data(
    conn: asyncpg.Connection, community_id: str | None, batch: int
) -> AsyncIterator[list[dict[str, Any]]]:
    """`read_spec_data` of every community (or one) in id order, `batch` at a time, through a
    cursor: constant memory whatever the store's size (T4). Run it inside a transaction."""
    query, args = (
        (_SPEC_QUERY + " ORDER BY c.id", [])
        if community_id is None
        else (_SPEC_QUERY + " WHERE c.id = $1", [community_id])
    )
    rows: list[dict[str, Any]] = []
    async for row in conn.cursor(query, *args, prefetch=batch):
        rows.append(_spec_data(row))
        if len(rows) == batch:
            yield rows
            rows = []
    if rows:
        yield rows


def stored_spec(data: dict[str, Any]) -> CommunitySpec:
    """One community's stored data validated by the YAML loader's model; ConfigError with its
    problems. S1 is left out: rows written before 0002 may break it (see WITHOUT_S1)."""
    return validate_spec(CommunitySpec, data, s1=False)


async def read_specs(
    conn: asyncpg.Connection, community_id: str | None = None
) -> tuple[dict[str, CommunitySpec], dict[str, list[str]]]:
    """Every community (or one), as specs, in one statement (one consistent snapshot).

    Returns the valid specs and, apart, the problems of rows the model refuses, so that one
    bad community never hides the others.
    """
    data = await read_spec_data(conn, None if community_id is None else [community_id])
    specs: dict[str, CommunitySpec] = {}
    invalid: dict[str, list[str]] = {}
    for cid, item in data.items():
        try:
            specs[cid] = stored_spec(item)
        except ConfigError as exc:
            invalid[cid] = exc.problems
    return specs, invalid


async def valid_specs(conn: asyncpg.Connection, community_id: str | None = None) -> dict[str, CommunitySpec]:
    """`read_specs` for readers that need every community valid: InvalidStoredConfig otherwise."""
    specs, invalid = await read_specs(conn, community_id)
    if invalid:
        raise InvalidStoredConfig(invalid)
    return specs


async def load_all_communities(conn: asyncpg.Connection) -> dict[str, Community]:
    """All communities, prepared for the pipeline (C1). InvalidStoredConfig if a row is bad."""
    specs = await valid_specs(conn)
    tombstones = await read_tombstones(conn)
    return {cid: Community.from_spec(spec, tombstones.get(cid)) for cid, spec in specs.items()}


async def load_community(conn: asyncpg.Connection, community_id: str) -> Community | None:
    """One community, prepared; None when it does not exist."""
    spec = (await valid_specs(conn, community_id)).get(community_id)
    if spec is None:
        return None
    return Community.from_spec(spec, (await read_tombstones(conn, community_id)).get(community_id))


async def load_all_from_url(url: str) -> dict[str, Community]:
    """Every community of the store at `url`, prepared (`process --database-url`).

    Raises StoreError (its `.message` is safe to print): the store cannot be reached, its
    schema is missing, or a community's rows are invalid.
    """
    conn = await connect(url)
    try:
        await check_schema(conn)
        return await load_all_communities(conn)
    except (asyncpg.PostgresError, *TRANSIENT_ERRORS) as exc:
        raise translate(exc, url) from None
    finally:
        await conn.close()
