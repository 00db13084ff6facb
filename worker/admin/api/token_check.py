"""`/communities/{id}/token-check`: the `token verify` explanation as JSON (A5, DESIGN §7)."""

from __future__ import annotations

from fastapi import APIRouter

from worker.admin import actions
from worker.admin.auth import ApiCaller, Connection
from worker.admin.models import TokenCheck, TokenCheckResult

router = APIRouter(prefix="/communities/{community_id}/token-check", tags=["token check"])


@router.post("", summary="Explain, rule by rule, how the worker would judge a token now")
async def check_token(
    conn: Connection, caller: ApiCaller, community_id: str, body: TokenCheck
) -> TokenCheckResult:
    """Nothing is stored or logged; the verdict is the one the worker gives for the same text."""
    return await actions.check_token(conn, community_id, body.token, body.received_at)
