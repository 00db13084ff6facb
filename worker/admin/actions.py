"""What the API and the console do, written once for both (DESIGN §10, A3, A4).

Each write runs the store's own mutation (worker/store/repository.py: the same validation
as the admin commands and the YAML loader) and records it in the audit trail, in one
transaction: a refused change writes nothing, an accepted one is never unaudited. Access
has been checked before any of these run (worker/admin/auth.py).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict

import asyncpg

from worker.admin.auth import unknown_community
from worker.admin.errors import ApiError
from worker.admin.models import CheckStep, KeyListed, PreviewShown, TokenCheckResult, TokenTimeShown
from worker.core.config import CommunitySpec, CustomFieldSpec, JwtKeySpec, MappingSpec
from worker.core.debugger import debug_token
from worker.core.times import rfc3339_seconds
from worker.store import audit, listings
from worker.store import repository as repo
from worker.store.api_tokens import Caller
from worker.store.db import NotFound
from worker.store.lifecycle import KeyStillInUse
from worker.store.listings import CommunityRow, FieldRow, KeyRow, MappingRow
from worker.store.loading import load_community
from worker.store.pages import MAX_LIMIT, Page, PageRequest
from worker.store.sync import Change
from worker.store.usage import HealthRow, health_report, key_usage

Mutation = Callable[[asyncpg.Connection], Awaitable[list[Change]]]


async def _audited(
    conn: asyncpg.Connection, caller: Caller, action: str, community_id: str, mutation: Mutation
) -> list[Change]:
    async with conn.transaction():
        changes = await mutation(conn)
        await audit.record(conn, caller.actor, action, changes, community_id)
    return changes


# ---------------------------------------------------------------- communities


async def community(conn: asyncpg.Connection, community_id: str) -> CommunityRow:
    try:
        return await listings.community_row(conn, community_id)
    except NotFound:
        raise unknown_community(community_id) from None


async def communities(conn: asyncpg.Connection, caller: Caller, page: PageRequest) -> Page[CommunityRow]:
    """One page of the communities the caller sees: all (platform) or its own (T5)."""
    return await listings.list_communities(conn, page, only=caller.community_id)


async def add_community(conn: asyncpg.Connection, caller: Caller, spec: CommunitySpec) -> CommunityRow:
    await _audited(conn, caller, "community add", spec.id, lambda c: repo.add_community(c, spec))
    return await community(conn, spec.id)


async def update_community(
    conn: asyncpg.Connection, caller: Caller, community_id: str, settings: dict[str, object]
) -> CommunityRow:
    await _audited(
        conn,
        caller,
        "community set",
        community_id,
        lambda c: repo.update_community(c, community_id, settings),
    )
    return await community(conn, community_id)


async def remove_community(conn: asyncpg.Connection, caller: Caller, community_id: str) -> None:
    await _audited(
        conn, caller, "community remove", community_id, lambda c: repo.remove_community(c, community_id)
    )


# ---------------------------------------------------------------- keys, fields, mappings


async def keys(conn: asyncpg.Connection, community_id: str, page: PageRequest) -> Page[KeyListed]:
    """A page of the community's keys with their usage (L2): what the API and the console list."""
    used = await key_usage(conn, community_id)
    listed = []
    found = await listings.list_keys(conn, community_id, page)
    for key in found.items:
        usage = used.get(key.kid)
        last = usage.last_verified_at if usage is not None else None
        listed.append(KeyListed(**asdict(key), last_used_at=last, uses_24h=usage.uses_24h if usage else 0))
    return Page(listed, found.next)


async def add_key(conn: asyncpg.Connection, caller: Caller, community_id: str, key: JwtKeySpec) -> KeyRow:
    await _audited(conn, caller, "keys add", community_id, lambda c: repo.add_key(c, community_id, key))
    found = await listings.list_keys(conn, community_id, PageRequest(MAX_LIMIT, prefix=key.kid))
    return next(k for k in found.items if k.kid == key.kid)


async def remove_key(
    conn: asyncpg.Connection,
    caller: Caller,
    community_id: str,
    kid: str,
    *,
    force: bool = False,
    how_to_force: str = "force the removal",
) -> None:
    """Remove a key, leaving a tombstone (L3). A key that verified a token within the
    community's retirement window is refused (409, when and how much, nothing written) unless
    `force` (`how_to_force` says how, in the caller's terms); a forced removal is audited as
    `keys remove --force`, like the command."""
    action = "keys remove --force" if force else "keys remove"
    try:
        await _audited(
            conn, caller, action, community_id, lambda c: repo.remove_key(c, community_id, kid, force=force)
        )
    except KeyStillInUse as exc:
        # The store's line tells a command's user about --force; the API and console say theirs.
        raise ApiError(
            409, f"refused: {exc.use_line}; move the website to another key first, or {how_to_force}"
        ) from None


async def add_field(
    conn: asyncpg.Connection, caller: Caller, community_id: str, field: CustomFieldSpec
) -> FieldRow:
    await _audited(conn, caller, "fields add", community_id, lambda c: repo.add_field(c, community_id, field))
    found = await listings.list_fields(conn, community_id, PageRequest(MAX_LIMIT, prefix=field.key))
    return next(f for f in found.items if f.key == field.key)


async def remove_field(conn: asyncpg.Connection, caller: Caller, community_id: str, key: str) -> None:
    await _audited(
        conn, caller, "fields remove", community_id, lambda c: repo.remove_field(c, community_id, key)
    )


async def add_mapping(
    conn: asyncpg.Connection, caller: Caller, community_id: str, mapping: MappingSpec
) -> MappingRow:
    await _audited(
        conn, caller, "mappings add", community_id, lambda c: repo.add_mapping(c, community_id, mapping)
    )
    found = await listings.list_mappings(conn, community_id, PageRequest(MAX_LIMIT, prefix=mapping.from_))
    return next(m for m in found.items if (m.source, m.target) == (mapping.from_, mapping.to))


async def remove_mapping(
    conn: asyncpg.Connection, caller: Caller, community_id: str, mapping: MappingSpec
) -> None:
    await _audited(
        conn, caller, "mappings remove", community_id, lambda c: repo.remove_mapping(c, community_id, mapping)
    )


# ---------------------------------------------------------------- health


async def health(conn: asyncpg.Connection, community_id: str, since_seconds: int) -> list[HealthRow]:
    """L5: the community's events per outcome and reason over the last `since_seconds`."""
    await community(conn, community_id)  # 404 for an unknown one, not an empty report
    return await health_report(conn, since_seconds=since_seconds, community_id=community_id)


# ---------------------------------------------------------------- token check


async def check_token(
    conn: asyncpg.Connection, community_id: str, token: str, received_at: str | None
) -> TokenCheckResult:
    """`token verify` for a community of the store: the same explanation, the same verdict (A5)."""
    prepared = await load_community(conn, community_id)
    if prepared is None:
        raise unknown_community(community_id)
    now = time.time()
    try:
        received = rfc3339_seconds(received_at) if received_at is not None else now
    except ValueError as exc:
        raise ApiError(422, f"received_at: {exc}") from None
    # No trimming: the very text the worker would judge, through its own code path (DESIGN §7);
    # the debugger adds the decoded token, its dates, the L4 notes and the preview.
    debug = debug_token(token, prepared, received_at=received, now=now)
    explanation = debug.explanation
    rejected = explanation.output.reason is not None
    preview = debug.preview
    return TokenCheckResult(
        accepted=explanation.accepted,
        reason=None if explanation.accepted else explanation.verdict,
        # The rejection's own detail; never the output record, which holds the raw event (token).
        detail=explanation.output.record.get("detail") if rejected else None,
        steps=[
            CheckStep(rule=s.rule, title=s.title, passed=s.passed, detail=s.detail) for s in explanation.steps
        ],
        notes=debug.notes,
        header=debug.header,
        payload=debug.payload,
        times=[TokenTimeShown(**asdict(t)) for t in debug.times],
        preview=PreviewShown(**asdict(preview)) if preview is not None else None,
    )
