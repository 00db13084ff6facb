"""`/communities/{id}/keys`: JWT keys, posted with their secret, shown without it (A3)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from worker.admin import actions
from worker.admin.auth import ApiCaller, Connection
from worker.core.config import JwtKeySpec
from worker.store import repository as repo
from worker.store.repository import KeyRow

router = APIRouter(prefix="/communities/{community_id}/keys", tags=["keys"])


@router.get("", summary="The community's keys: kid, algorithm, fingerprint, created; never a secret")
async def list_keys(conn: Connection, caller: ApiCaller, community_id: str) -> list[KeyRow]:
    return await repo.list_keys(conn, community_id)


@router.post("", status_code=201, summary="Add a key: {kid, hmac_secret} (HS256) or {kid, rsa_public_key}")
async def add_key(conn: Connection, caller: ApiCaller, community_id: str, body: JwtKeySpec) -> KeyRow:
    """`hmac_secret`: exactly 24 characters 0-9a-f. `rsa_public_key`: PEM, BEGIN PUBLIC KEY or
    BEGIN RSA PUBLIC KEY, at least 2048 bits. The answer shows the key without its secret."""
    return await actions.add_key(conn, caller, community_id, body)


@router.delete(
    "/{kid}", status_code=204, summary="Remove a key: running workers refuse its tokens within 1 s"
)
async def remove_key(conn: Connection, caller: ApiCaller, community_id: str, kid: str) -> Response:
    await actions.remove_key(conn, caller, community_id, kid)
    return Response(status_code=204)
