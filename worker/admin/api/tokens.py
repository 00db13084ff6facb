"""`/tokens`: the service's API tokens, in pages (A2, A10, T5); never a token or its hash.

Listing them is the platform's (like `admin token list`): a community's token does not see
which others exist. Tokens are made and revoked by `identity-worker admin token`, not here.
"""

from __future__ import annotations

from fastapi import APIRouter

from worker.admin.auth import ApiCaller, Connection, require_platform
from worker.admin.paging import ApiPage, PageQuery
from worker.store import api_tokens
from worker.store.api_tokens import TokenRow

router = APIRouter(tags=["tokens"])


class TokenPage(ApiPage[TokenRow]):
    """A page of API tokens: name, scope, created, by whom, last used, expiry, revoked."""


@router.get("/tokens", summary="A page of the API tokens, oldest first (platform token)")
async def list_tokens(conn: Connection, caller: ApiCaller, page: PageQuery) -> TokenPage:
    """`prefix` filters the token's name. Never the token, never its hash (A2)."""
    require_platform(caller, "the list of tokens")
    return TokenPage.of(await api_tokens.list_tokens(conn, page))
