"""Who may do what (DESIGN §10, A2): the one access check of the API and the console.

`admit` is the rule, written once: no token, an unknown one or a revoked one is 401; a
route about `{community_id}` answers 404 when that community does not exist *or* is not the
token's, with the same message either way, so a community token cannot even learn which
other communities exist. `api_caller` (exactly one bearer header, A10) and `console_caller`
(the console's session cookie, A8) are the two ways a request shows who it is from; every
route depends on one of them, and a test walks the routes to hold it so. A session cookie is
never an API credential, and a token is never kept by the console.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Final

import asyncpg
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from worker.admin.errors import ApiError, Forbidden, Unauthorized
from worker.store import api_tokens, sessions
from worker.store.api_tokens import Caller
from worker.store.db import NotFound

#: The console's session id cookie (HttpOnly, SameSite=Strict, Secure behind https; A8).
SESSION_COOKIE: Final = "identity_worker_session"
#: The path parameter naming the community a route is about.
COMMUNITY_PARAM: Final = "community_id"

_bearer = HTTPBearer(
    auto_error=False,
    description="A token from `identity-worker admin token create` (one community, or the platform).",
)


async def connection(request: Request) -> AsyncIterator[asyncpg.Connection]:
    """One pooled connection for the whole request."""
    pool: asyncpg.Pool = request.app.state.pool
    async with pool.acquire() as conn:
        yield conn


Connection = Annotated[asyncpg.Connection, Depends(connection)]


def unknown_community(community_id: str) -> NotFound:
    """The one answer for a community that does not exist or is not the caller's (A2)."""
    return NotFound(f"no community {community_id!r}")


async def admit(conn: asyncpg.Connection, token: str | None, community_id: str | None) -> Caller:
    """The caller, if the token lets it reach `community_id` (None: a route about no community)."""
    if not token:
        raise Unauthorized(
            "sign in: send `Authorization: Bearer <token>` (see `identity-worker admin token`)"
        )
    caller = await api_tokens.authenticate(conn, token)
    if caller is None:
        raise Unauthorized("the token is unknown, revoked or expired")
    return await reach(conn, caller, community_id)


async def reach(conn: asyncpg.Connection, caller: Caller, community_id: str | None) -> Caller:
    """`caller`, if it may reach `community_id` (None: a route about no community); else 404."""
    if community_id is not None:
        if caller.community_id not in (None, community_id):
            raise unknown_community(community_id)
        if await conn.fetchval("SELECT 1 FROM communities WHERE id = $1", community_id) is None:
            raise unknown_community(community_id)
    return caller


def require_platform(caller: Caller, what: str) -> None:
    """Platform-only operations (creating or removing communities, the whole audit trail)."""
    if not caller.platform:
        raise Forbidden(f"{what} needs a platform token; this token is scoped to {caller.scope}")


async def api_caller(
    request: Request,
    conn: Connection,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The API's access dependency: the bearer token, scoped to the route's community.

    Exactly one `Authorization` header (A10): with two, which one counts would depend on the
    proxy in front, so neither does (400).
    """
    if len(request.headers.getlist("authorization")) > 1:
        raise ApiError(400, "send one Authorization header, not several")
    token = credentials.credentials if credentials is not None else None
    return await admit(conn, token, request.path_params.get(COMMUNITY_PARAM))


async def session_caller(conn: asyncpg.Connection, request: Request) -> Caller:
    """Who the request's console session is from (A8); 401 without a live session."""
    session_id = request.cookies.get(SESSION_COOKIE)
    caller = await sessions.resume(conn, session_id) if session_id else None
    if caller is None:
        raise Unauthorized("sign in with an API token (your session ended or expired)")
    return caller


async def console_caller(request: Request, conn: Connection) -> Caller:
    """The console's access dependency: the session, scoped like the API."""
    return await reach(conn, await session_caller(conn, request), request.path_params.get(COMMUNITY_PARAM))


ApiCaller = Annotated[Caller, Depends(api_caller)]
ConsoleCaller = Annotated[Caller, Depends(console_caller)]
