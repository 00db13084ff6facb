"""`/communities`: list, create (a `require` one with its first key, S1), read, change, remove."""

from __future__ import annotations

from fastapi import APIRouter, Response

from worker.admin import actions
from worker.admin.auth import ApiCaller, Connection, require_platform
from worker.admin.models import CommunitySettings
from worker.admin.paging import ApiPage, PageQuery
from worker.core.config import CommunitySpec
from worker.store.listings import CommunityRow

router = APIRouter(prefix="/communities", tags=["communities"])


class CommunityPage(ApiPage[CommunityRow]):
    """A page of communities."""


@router.get("", summary="A page of communities in id order (a community token sees its own only)")
async def list_communities(conn: Connection, caller: ApiCaller, page: PageQuery) -> CommunityPage:
    """`prefix` filters the community id (T5)."""
    return CommunityPage.of(await actions.communities(conn, caller, page))


@router.post("", status_code=201, summary="Create a community (platform token)")
async def create_community(conn: Connection, caller: ApiCaller, body: CommunitySpec) -> CommunityRow:
    """The body is a community as in the YAML of DESIGN §5, keys, custom fields and mappings
    included: a `require` community takes its first key in the same request (S1)."""
    require_platform(caller, "creating a community")
    return await actions.add_community(conn, caller, body)


@router.get("/{community_id}", summary="One community's settings and counts")
async def get_community(conn: Connection, caller: ApiCaller, community_id: str) -> CommunityRow:
    return await actions.community(conn, community_id)


@router.patch("/{community_id}", summary="Change settings; the ones not given keep their value")
async def update_community(
    conn: Connection, caller: ApiCaller, community_id: str, body: CommunitySettings
) -> CommunityRow:
    settings = body.model_dump(exclude_unset=True)
    return await actions.update_community(conn, caller, community_id, settings)


@router.delete("/{community_id}", status_code=204, summary="Remove a community and all it holds (platform)")
async def delete_community(conn: Connection, caller: ApiCaller, community_id: str) -> Response:
    require_platform(caller, "removing a community")
    await actions.remove_community(conn, caller, community_id)
    return Response(status_code=204)
