"""`/communities/{id}/custom-fields`: what agents see besides the identity group (M4)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from worker.admin import actions
from worker.admin.auth import ApiCaller, Connection
from worker.admin.paging import ApiPage, PageQuery
from worker.core.config import CustomFieldSpec
from worker.store import listings
from worker.store.listings import FieldRow

router = APIRouter(prefix="/communities/{community_id}/custom-fields", tags=["custom fields"])


class FieldPage(ApiPage[FieldRow]):
    """A page of a community's custom fields."""


@router.get("", summary="A page of the community's custom fields, oldest first")
async def list_fields(conn: Connection, caller: ApiCaller, community_id: str, page: PageQuery) -> FieldPage:
    """`prefix` filters the field's key (T5)."""
    return FieldPage.of(await listings.list_fields(conn, community_id, page))


@router.post("", status_code=201, summary="Declare a custom field {key, label, regex?} (RE2, whole value)")
async def add_field(
    conn: Connection, caller: ApiCaller, community_id: str, body: CustomFieldSpec
) -> FieldRow:
    return await actions.add_field(conn, caller, community_id, body)


@router.delete("/{key}", status_code=204, summary="Remove a custom field no mapping targets")
async def remove_field(conn: Connection, caller: ApiCaller, community_id: str, key: str) -> Response:
    await actions.remove_field(conn, caller, community_id, key)
    return Response(status_code=204)
