"""The console's pages (DESIGN §10, A5): sign-in, a refusal, and a community's page.

A community's page shows every section with, beside each field, the format rule its
validator applies (`RULES`) and, after a refused change, the API's message (`render`).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from worker.admin import actions
from worker.admin.auth import SESSION_COOKIE, Connection, admit, session_caller
from worker.admin.console.session import CommunityVisit, Visit, csrf_token, same_origin
from worker.admin.errors import ApiError
from worker.admin.models import TokenCheckResult
from worker.core import config as spec
from worker.core.contracts import GROUP_LIST_FIELDS, GROUP_SCALAR_FIELDS, Mode
from worker.core.keys import HMAC_SECRET_PATTERN, KID_MAX_CHARS, KID_PATTERN, RSA_MIN_BITS
from worker.store import audit, sessions
from worker.store import repository as repo
from worker.store.pages import MAX_LIMIT, BadPage, PageRequest

ADMIN: Final = Path(__file__).resolve().parent.parent
STATIC: Final = ADMIN / "static"
templates = Jinja2Templates(directory=ADMIN / "templates")
router = APIRouter(include_in_schema=False)

#: The note a change leaves for the next page (one minute, then gone).
FLASH_COOKIE: Final = "identity_worker_flash"
AUDIT_ROWS: Final = 50
SECTION_ROWS: Final = MAX_LIMIT
#: The console's Health section: the last hour, as `GET …/health` by default (L5).
HEALTH_SECONDS: Final = 3600
#: The format rules shown beside each field: from the constants the validators use.
RULES: Final = {
    "kid": f"{KID_PATTERN}, at most {KID_MAX_CHARS} characters",
    "hmac_secret": f"HS256: exactly 24 characters 0-9a-f ({HMAC_SECRET_PATTERN}); "
    "the key is those 24 characters",
    "rsa_public_key": f"RS256: PEM, BEGIN PUBLIC KEY or BEGIN RSA PUBLIC KEY, at least {RSA_MIN_BITS} bits; "
    "never a private key",
    "min_validity_seconds": f"0-{spec.MAX_MIN_VALIDITY_SECONDS}: a token must stay valid this long",
    "leeway_seconds": f"0-{spec.MAX_LEEWAY_SECONDS}: clock skew allowed on exp, nbf, iat",
    "max_validity_seconds": f"empty (no maximum) or 1-{spec.MAX_MAX_VALIDITY_SECONDS}: "
    "a token valid longer after the event is refused (expiry_too_far)",
    "retirement_window_seconds": f"0-{spec.MAX_RETIREMENT_WINDOW_SECONDS}: removing a key that "
    "verified a token this recently needs 'Remove anyway'",
    "key": f"{spec.FIELD_KEY_PATTERN}",
    "label": f"1-{spec.MAX_LABEL_CHARS} characters, what agents see",
    "regex": f"optional; RE2 syntax, must match the whole value, at most {spec.MAX_REGEX_CHARS} characters",
    "from": "uuid or extra_values.<key>",
    "to": "identity_group.<field> or custom_fields.<key> of a declared field",
}


def error_page(request: Request, error: ApiError) -> Response:
    """A refusal of a console page: sign in again (401), or say what is wrong."""
    if error.status == 401:
        response = _signin(request, error.message, 401)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response
    return templates.TemplateResponse(request, "error.html", {"error": error.message}, error.status)


def _signin(request: Request, error: str | None = None, status: int = 200) -> Response:
    return templates.TemplateResponse(request, "signin.html", {"error": error}, status)


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, conn: Connection) -> Response:
    if not request.cookies.get(SESSION_COOKIE):
        return _signin(request)
    caller = await session_caller(conn, request)
    if caller.community_id is not None:
        return RedirectResponse(f"/communities/{caller.community_id}", 303)
    # T5: a page at a time, searched by id prefix (`?q=`), `?after=` from the page's "Next" link.
    query = request.query_params
    try:
        page = PageRequest(after=query.get("after") or None, prefix=query.get("q") or None)
        found = await actions.communities(conn, caller, page)
    except BadPage as exc:
        raise ApiError(422, exc.message) from None
    context = {"caller": caller, "communities": found.items, "search": page.prefix or "", "next": found.next}
    return templates.TemplateResponse(request, "communities.html", context)


@router.post("/signin")
async def signin(request: Request, conn: Connection) -> Response:
    """Check the token, then open a session (A8): the browser gets the session's id, never the token."""
    same_origin(request)  # login CSRF: another site must not sign this browser in as itself
    token = str((await request.form()).get("token", "")).strip()
    try:
        caller = await admit(conn, token, None)
    except ApiError as exc:
        return _signin(request, exc.message, exc.status)
    previous = request.cookies.get(SESSION_COOKIE)
    async with conn.transaction():
        if previous:  # signing in again replaces the browser's session, never adds to it
            await sessions.close(conn, previous)
        session_id = await sessions.open_session(conn, caller)
    response = RedirectResponse("/", 303)
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/signout")
async def signout(request: Request, conn: Connection) -> Response:
    """End the session on the server (A8), then ask the browser to forget its cookie."""
    same_origin(request)
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        await sessions.close(conn, session_id)
    response = RedirectResponse("/", 303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/communities/{community_id}", response_class=HTMLResponse)
async def community_page(visit: CommunityVisit) -> Response:
    response = await render(visit, flash=visit.request.cookies.get(FLASH_COOKIE))
    response.delete_cookie(FLASH_COOKIE, path="/")
    return response


async def render(
    visit: Visit,
    *,
    status: int = 200,
    section: str | None = None,
    error: str | None = None,
    field: str | None = None,
    values: dict[str, str] | None = None,
    check: TokenCheckResult | None = None,
    flash: str | None = None,
) -> Response:
    """The community's page; after a change, `section` holds the form, `error` the API's
    message beside `field` (None: beside the form's button), `values` what to show again."""
    conn, community_id = visit.conn, visit.community_id
    # Each section shows its first SECTION_ROWS rows (T5: bounded whatever the community holds).
    rows = PageRequest(SECTION_ROWS)
    fields = (await repo.list_fields(conn, community_id, rows)).items
    targets = [f"identity_group.{name}" for name in GROUP_SCALAR_FIELDS + GROUP_LIST_FIELDS]
    context: dict[str, Any] = {
        "caller": visit.caller,
        "community": await actions.community(conn, community_id),
        "keys": [asdict(k) for k in (await actions.keys(conn, community_id, rows)).items],
        "fields": fields,
        "mappings": (await repo.list_mappings(conn, community_id, rows)).items,
        "entries": (await audit.list_entries(conn, PageRequest(AUDIT_ROWS), community_id)).items,
        "health": await actions.health(conn, community_id, HEALTH_SECONDS),
        "modes": [m.value for m in Mode],
        "targets": targets + [f"custom_fields.{f.key}" for f in fields],
        "rules": RULES,
        "csrf": csrf_token(visit.request),
        "section": section,
        "error": error,
        "error_field": field,
        "values": values or {},
        "check": check,
        "flash": flash,
    }
    return templates.TemplateResponse(visit.request, "community.html", context, status)
