"""`/communities/{id}/mappings`: extra values onto identity-group and custom fields, in order (M2)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from worker.admin import actions
from worker.admin.auth import ApiCaller, Connection
from worker.admin.paging import ApiPage, PageQuery
from worker.core.config import MappingSpec, validate_spec
from worker.store import listings
from worker.store.listings import MappingRow

router = APIRouter(prefix="/communities/{community_id}/mappings", tags=["mappings"])


class MappingPage(ApiPage[MappingRow]):
    """A page of a community's mappings."""


@router.get("", summary="A page of the community's mappings, in the order they apply (M2)")
async def list_mappings(
    conn: Connection, caller: ApiCaller, community_id: str, page: PageQuery
) -> MappingPage:
    """`prefix` filters `from` (T5); `position` is the rank among all the community's mappings."""
    return MappingPage.of(await listings.list_mappings(conn, community_id, page))


@router.post("", status_code=201, summary="Append a mapping {from, to} after the last one")
async def add_mapping(
    conn: Connection, caller: ApiCaller, community_id: str, body: MappingSpec
) -> MappingRow:
    """`from`: `uuid` or `extra_values.<key>`; `to`: `identity_group.<field>` or
    `custom_fields.<key>` of a declared custom field."""
    return await actions.add_mapping(conn, caller, community_id, body)


@router.delete("", status_code=204, summary="Remove the mapping from -> to; the others keep their order")
async def remove_mapping(
    conn: Connection,
    caller: ApiCaller,
    community_id: str,
    source: Annotated[str, Query(alias="from")],
    target: Annotated[str, Query(alias="to")],
) -> Response:
    mapping = validate_spec(MappingSpec, {"from": source, "to": target})
    await actions.remove_mapping(conn, caller, community_id, mapping)
    return Response(status_code=204)
