"""What the configuration service lets in (DESIGN §10, A2, A7, A12): the one door of every request.

`StrictInput` wraps the whole application, so no route, console form or future endpoint can
be reached around it. For each request it
- reads the body once, at most `limit` bytes (413 otherwise, declared or streamed);
- reads a JSON body as strictly as a configuration file (A7): a member name repeated in any
  object, nested ones and objects in arrays included, is refused (422) rather than last-wins,
  so a pasted `"signed_identities": "reject"` after a `"require"` cannot switch signatures off;
- holds every text to one rule (`check_text`, A7): no NUL, no lone surrogate (PostgreSQL
  cannot store either, and the driver's message must never be the answer), and no control
  character, except tab and line breaks in the few members that are several lines by nature
  (`MULTI_LINE_FIELDS`: a PEM key, a pasted token). The rule covers JSON member names and
  values, form fields (the console), the path and the query string.

A refusal names a member only when it is one of the API's own field names (A12): a secret
pasted as a member name is never reflected. What FastAPI counts as JSON (no content type,
`application/json`, `application/*+json`) is a subset of what is checked here (any content
type naming json), so a body cannot be read loosely after being let through.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, Final
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worker.admin import errors
from worker.admin.asgi import HttpMiddleware
from worker.admin.errors import ApiError
from worker.admin.models import KNOWN_FIELD_NAMES
from worker.core.storable import unstorable

#: Members whose text is several lines by nature: tab, CR and LF allowed there only.
MULTI_LINE_FIELDS: Final = frozenset({"rsa_public_key", "token"})
#: The shape of the API's query parameter names (`from`, `force`, `limit`, ...).
_QUERY_NAME: Final = re.compile(r"^[a-z]{1,16}$")


def named(name: str) -> str:
    """How a refusal names a member: itself when it is one of the API's fields (A12)."""
    return name if name in KNOWN_FIELD_NAMES else "an unknown member"


def check_text(text: str, where: str, *, multi_line: bool = False, status: int = 422) -> None:
    """The one text rule (A7): ApiError naming `where` (never the text) when `text` breaks it."""
    problem = unstorable(text, multi_line=multi_line)
    if problem is not None:
        raise ApiError(status, f"{where} {problem}; it cannot be stored")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`json.loads`'s object hook: refuse a repeated member name and text that breaks the rule."""
    seen: set[str] = set()
    for name, value in pairs:
        check_text(name, "a member name")
        if name in seen:
            raise ApiError(422, f"{named(name)} is given twice in one object; give each member once")
        seen.add(name)
        if isinstance(value, str):
            check_text(value, named(name), multi_line=name in MULTI_LINE_FIELDS)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, str):
                    check_text(item, named(name))
    return dict(pairs)


def check_json(body: bytes) -> None:
    """A7 for a JSON body; a body that is not JSON is left to the framework's own 400."""
    try:
        document = json.loads(body, object_pairs_hook=_pairs)
    except (ValueError, RecursionError):  # JSONDecodeError, bad UTF-8, too deep: the framework's 400
        return
    if isinstance(document, str):
        check_text(document, "the body")
    elif isinstance(document, list):
        for item in document:
            if isinstance(item, str):
                check_text(item, "the body")


def check_fields(fields: Iterable[tuple[str, str]]) -> None:
    """A7 for a console form's fields, however they were encoded (the console's `Form` calls
    it for multipart posts too)."""
    for name, value in fields:
        check_text(name, "a form field's name")
        check_text(value, named(name), multi_line=name in MULTI_LINE_FIELDS)


def check_form(body: bytes) -> None:
    """A7 for a console form (application/x-www-form-urlencoded)."""
    check_fields(parse_qsl(body.decode("utf-8", "surrogateescape"), keep_blank_values=True))


def check_address(path: str, query: bytes) -> None:
    """A7 for the path and the query string (400: the address itself is refused).

    A query parameter given twice is refused like a repeated JSON member: the framework
    would take the last (`?force=false&force=true`). Query parameter names are named when
    they have the shape of the API's own (lower-case words), never otherwise (A12).
    """
    check_text(path, "the path", status=400)
    seen: set[str] = set()
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True, encoding="utf-8"):
        check_text(name, "a query parameter's name", status=400)
        shown = name if _QUERY_NAME.fullmatch(name) else "(unknown)"
        if name in seen:
            raise ApiError(400, f"query parameter {shown} is given twice; give it once")
        seen.add(name)
        check_text(value, f"query parameter {shown}", status=400)


def _content_type(headers: Iterable[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name.lower() == b"content-type":
            return value.decode("latin-1").lower()
    return ""


class StrictInput(HttpMiddleware):
    """The door of every HTTP request: body size, strict JSON and forms, the text rule."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        super().__init__(app)
        self.limit = limit

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _refuse(send, ApiError(413, f"the body is larger than {self.limit} bytes"))
            return
        # Read the whole body first (at most `limit` bytes), then hand it on: the framework
        # turns any error raised while it reads into a 400, which would hide the 413.
        chunks: list[Message] = []
        body = b""
        while True:
            message = await receive()
            chunks.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if len(body) > self.limit:
                await _refuse(send, ApiError(413, f"the body is larger than {self.limit} bytes"))
                return
            if not message.get("more_body", False):
                break
        try:
            check_address(scope["path"], scope.get("query_string", b""))
            content_type = _content_type(scope["headers"])
            if body and (not content_type or "json" in content_type):
                check_json(body)
            elif body and content_type.startswith("application/x-www-form-urlencoded"):
                check_form(body)
        except ApiError as refusal:
            await _refuse(send, refusal)
            return

        async def replay() -> Message:
            return chunks.pop(0) if chunks else await receive()

        await self.app(scope, replay, send)


async def _refuse(send: Send, error: ApiError) -> None:
    response = errors.json_error(error)
    await send({"type": "http.response.start", "status": error.status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})
