"""`/audit` (platform) and `/communities/{id}/audit`: the audit trail, newest first (A4)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from worker.admin.auth import ApiCaller, Connection, require_platform
from worker.store import audit
from worker.store.audit import AuditEntry

router = APIRouter(tags=["audit"])

Limit = Annotated[int, Query(ge=1, le=audit.MAX_LIMIT, description="At most this many entries.")]
#: Entry ids are PostgreSQL bigints: a larger `before` is refused here, not by the driver.
Before = Annotated[
    int | None, Query(ge=1, le=2**63 - 1, description="Only entries older than this id (paging).")
]


@router.get("/audit", summary="Every community's audit trail (platform token)")
async def all_entries(
    conn: Connection, caller: ApiCaller, limit: Limit = audit.DEFAULT_LIMIT, before: Before = None
) -> list[AuditEntry]:
    require_platform(caller, "the whole audit trail")
    return await audit.list_entries(conn, limit=limit, before_id=before)


@router.get("/communities/{community_id}/audit", summary="One community's audit trail")
async def community_entries(
    conn: Connection,
    caller: ApiCaller,
    community_id: str,
    limit: Limit = audit.DEFAULT_LIMIT,
    before: Before = None,
) -> list[AuditEntry]:
    return await audit.list_entries(conn, community_id, limit=limit, before_id=before)
