"""Who a console request is from, and that a posted form is the console's own (DESIGN §10, A2, A8).

The browser holds a session id (worker/store/sessions.py), never the token. CSRF: every
form carries a value derived from the session id (HMAC), which another site cannot read; a
post without it is refused (403). Every post, sign-in included (login CSRF), must come from
the console's own origin (`same_origin`): a foreign or `null` `Origin` is refused, and so is
a browser's `Sec-Fetch-Site` naming another site. The cookie's SameSite=Strict keeps it off
cross-site requests in the first place.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from worker.admin.auth import SESSION_COOKIE, Connection, ConsoleCaller
from worker.admin.bodies import check_fields
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


def same_origin(request: Request) -> None:
    """403 unless a posted form comes from the console's own pages (A8: sign-in too).

    `Origin` when sent must be this service's (an opaque `null` origin, e.g. a sandboxed
    frame's, is another site); `Sec-Fetch-Site`, which browsers send and pages cannot set,
    must say the same. A client that sends neither (a script) has no browser to abuse.
    """
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise Forbidden("this form was posted from another site")
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise Forbidden("this form was posted from another site")


async def _form(request: Request, caller: ConsoleCaller) -> dict[str, str]:
    """The posted form, once the caller is admitted and the post is shown to be the console's."""
    same_origin(request)
    form = await request.form()
    data = {name: value for name, value in form.items() if isinstance(value, str)}
    check_fields(data.items())  # A7 for a multipart post too (StrictInput reads urlencoded ones)
    if not hmac.compare_digest(data.pop("csrf", ""), csrf_token(request)):
        raise Forbidden("the form is stale or came from another site: reload the page and try again")
    return data


CommunityVisit = Annotated[Visit, Depends(_visit)]
Form = Annotated[dict[str, str], Depends(_form)]
