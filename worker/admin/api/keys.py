"""`/communities/{id}/keys`: JWT keys, posted with their secret, shown without it (A3)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from worker.admin import actions
from worker.admin.auth import ApiCaller, Connection
from worker.admin.models import KeyListed
from worker.admin.paging import ApiPage, PageQuery
from worker.core.config import JwtKeySpec
from worker.store.listings import KeyRow

router = APIRouter(prefix="/communities/{community_id}/keys", tags=["keys"])


class KeyPage(ApiPage[KeyListed]):
    """A page of a community's keys."""


@router.get(
    "",
    summary="A page of the community's keys, oldest first: kid, algorithm, fingerprint, created, "
    "last used, uses in 24 h; never a secret",
)
async def list_keys(conn: Connection, caller: ApiCaller, community_id: str, page: PageQuery) -> KeyPage:
    """`prefix` filters the kid (T5)."""
    return KeyPage.of(await actions.keys(conn, community_id, page))


@router.post("", status_code=201, summary="Add a key: {kid, hmac_secret} (HS256) or {kid, rsa_public_key}")
async def add_key(conn: Connection, caller: ApiCaller, community_id: str, body: JwtKeySpec) -> KeyRow:
    """`hmac_secret`: exactly 24 characters 0-9a-f. `rsa_public_key`: PEM, BEGIN PUBLIC KEY or
    BEGIN RSA PUBLIC KEY, at least 2048 bits. The answer shows the key without its secret."""
    return await actions.add_key(conn, caller, community_id, body)


@router.delete(
    "/{kid}", status_code=204, summary="Remove a key: running workers refuse its tokens within 1 s"
)
async def remove_key(
    conn: Connection, caller: ApiCaller, community_id: str, kid: str, force: bool = False
) -> Response:
    """409 while the key verified a token within the community's retirement window (L3): the
    answer says when it was last used and how many tokens in the window; `?force=true` removes
    it anyway (audited as forced)."""
    await actions.remove_key(
        conn, caller, community_id, kid, force=force, how_to_force="remove it anyway with ?force=true"
    )
    return Response(status_code=204)
