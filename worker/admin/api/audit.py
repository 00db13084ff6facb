"""`/audit` (platform) and `/communities/{id}/audit`: the audit trail, newest first (A4), in pages (T5)."""

from __future__ import annotations

from fastapi import APIRouter

from worker.admin.auth import ApiCaller, Connection, require_platform
from worker.admin.paging import ApiPage, PageQuery
from worker.store import audit
from worker.store.audit import AuditEntry

router = APIRouter(tags=["audit"])


class AuditPage(ApiPage[AuditEntry]):
    """A page of the audit trail."""


@router.get("/audit", summary="A page of every community's audit trail, newest first (platform token)")
async def all_entries(conn: Connection, caller: ApiCaller, page: PageQuery) -> AuditPage:
    """`prefix` filters the community id."""
    require_platform(caller, "the whole audit trail")
    return AuditPage.of(await audit.list_entries(conn, page))


@router.get(
    "/communities/{community_id}/audit", summary="A page of one community's audit trail, newest first"
)
async def community_entries(
    conn: Connection, caller: ApiCaller, community_id: str, page: PageQuery
) -> AuditPage:
    """`prefix` filters the community id (so it is this community's, or nothing)."""
    return AuditPage.of(await audit.list_entries(conn, page, community_id))
