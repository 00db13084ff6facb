"""Who a console request is from, and that a posted form is the console's own (DESIGN §10, A2).

CSRF: every form carries a value derived from the session's token (HMAC), which another
site cannot read; a post without it, or with a foreign `Origin`, is refused (403). The
cookie's SameSite=Strict keeps it off cross-site requests in the first place.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from worker.admin.auth import SESSION_COOKIE, Connection, ConsoleCaller
from worker.admin.errors import Forbidden
from worker.store.api_tokens import Caller


def csrf_token(request: Request) -> str:
    """The form value of the request's session (its cookie; empty before sign-in)."""
    session = request.cookies.get(SESSION_COOKIE, "")
    return hmac.new(session.encode(), b"identity-worker console form", hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Visit:
    """A console request about one community, its caller admitted (A2) and one pooled connection."""

    request: Request
    conn: asyncpg.Connection
    caller: Caller
    community_id: str


async def _visit(request: Request, conn: Connection, caller: ConsoleCaller, community_id: str) -> Visit:
    return Visit(request, conn, caller, community_id)


async def _form(request: Request, caller: ConsoleCaller) -> dict[str, str]:
    """The posted form, once the caller is admitted and the post is shown to be the console's."""
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise Forbidden("this form was posted from another site")
    form = await request.form()
    data = {name: value for name, value in form.items() if isinstance(value, str)}
    if not hmac.compare_digest(data.pop("csrf", ""), csrf_token(request)):
        raise Forbidden("the form is stale or came from another site: reload the page and try again")
    return data


CommunityVisit = Annotated[Visit, Depends(_visit)]
Form = Annotated[dict[str, str], Depends(_form)]
