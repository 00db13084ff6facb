"""The console's pages (DESIGN §10, A5): sign-in, a refusal, a community's page, a confirmation.

A community's page shows every section with, beside each field, what it takes in plain words
(`RULES`) and, after a refused change, what is wrong with the value given (`wording.explain`)
next to that field; after an accepted change, the note sits in the section that changed.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, unquote

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from worker.admin import actions
from worker.admin.auth import SESSION_COOKIE, Connection, admit
from worker.admin.console.durations import ago, show_duration
from worker.admin.console.session import CommunityVisit, Visit, csrf_token, same_origin
from worker.admin.console.wording import FIELD_KEY_RULE, Refusal
from worker.admin.errors import ApiError
from worker.admin.models import TokenCheckResult
from worker.core import config as spec
from worker.core.contracts import GROUP_LIST_FIELDS, GROUP_SCALAR_FIELDS
from worker.core.keys import KID_MAX_CHARS, RSA_MIN_BITS
from worker.core.reasons import Mode
from worker.store import audit, listings, sessions
from worker.store.pages import MAX_LIMIT, BadPage, PageRequest

ADMIN: Final = Path(__file__).resolve().parent.parent
STATIC: Final = ADMIN / "static"
templates = Jinja2Templates(directory=ADMIN / "templates")
templates.env.filters["duration"] = show_duration
router = APIRouter(include_in_schema=False)

#: The note a change leaves for the next page: "section|text" (one minute, then gone).
FLASH_COOKIE: Final = "identity_worker_flash"
AUDIT_ROWS: Final = 50
SECTION_ROWS: Final = MAX_LIMIT
#: The console's Health section: the last hour, as `GET …/health` by default (L5).
HEALTH_SECONDS: Final = 3600
#: What each field takes, in plain words, from the constants the validators use.
RULES: Final = {
    "kid": f"The kid your website puts in its tokens' header: lower-case letters, digits and _, "
    f"at most {KID_MAX_CHARS} characters.",
    "hmac_secret": "Exactly 24 characters 0-9 and a-f, as your website signs with them.",
    "rsa_public_key": "The PEM text from -----BEGIN PUBLIC KEY----- to its END line, "
    f"at least {RSA_MIN_BITS} bits. Never a private key.",
    "min_validity_seconds": "A token must stay valid at least this long after the event "
    f"(at most {show_duration(spec.MAX_MIN_VALIDITY_SECONDS)}).",
    "leeway_seconds": "Clock difference allowed between your website and the platform "
    f"(at most {show_duration(spec.MAX_LEEWAY_SECONDS)}).",
    "max_validity_seconds": "Empty: no maximum. Otherwise a token valid longer than this after the "
    f"event is refused (at most {show_duration(spec.MAX_MAX_VALIDITY_SECONDS)}).",
    "retirement_window_seconds": "Removing a key that verified a token this recently asks you to "
    f"confirm twice (at most {show_duration(spec.MAX_RETIREMENT_WINDOW_SECONDS)}).",
    "key": f"{FIELD_KEY_RULE}; used in mappings as custom_fields.<key>.",
    "label": f"What agents see, 1 to {spec.MAX_LABEL_CHARS} characters.",
    "regex": "Optional. A value must match it whole (RE2 syntax), e.g. C[0-9]{6}.",
    "from": "uuid, or extra_values. followed by the name of a value your website sends.",
    "to": "identity_group.<field>, or custom_fields.<key> of a declared custom field.",
    "id": "1 to 64 letters, digits, underscores and hyphens; cannot be changed later.",
}
DURATION_HINT: Final = "Seconds, or a duration such as 90 s, 15 min, 1 h or 2 d."


def error_page(request: Request, error: ApiError) -> Response:
    """A refusal of a console page: sign in again (401), or say what is wrong."""
    if error.status == 401:
        response = signin_page(request, error.message, 401)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response
    return templates.TemplateResponse(request, "error.html", {"error": error.message}, error.status)


def signin_page(request: Request, error: str | None = None, status: int = 200) -> Response:
    return templates.TemplateResponse(request, "signin.html", {"error": error}, status)


def take_flash(request: Request, section: str) -> tuple[str | None, str | None]:
    """The (section, text) a change left for this page, if any."""
    note = request.cookies.get(FLASH_COOKIE)
    if not note:
        return None, None
    where, _, text = unquote(note).partition("|")
    return (where, text) if text else (section, where)


def flash_redirect(url: str, section: str, text: str) -> Response:
    """Back to `url`'s `section` (303) with `text` beside it."""
    response = RedirectResponse(f"{url}#{section}", 303)
    # Quoted: a cookie holds Latin-1 only, and the note may name a mapping with its arrow.
    note = quote(f"{section}|{text}")
    response.set_cookie(FLASH_COOKIE, note, httponly=True, samesite="strict", max_age=60)
    return response


@router.post("/signin")
async def signin(request: Request, conn: Connection) -> Response:
    """Check the token, then open a session (A8): the browser gets the session's id, never the token."""
    same_origin(request)  # login CSRF: another site must not sign this browser in as itself
    token = str((await request.form()).get("token", "")).strip()
    try:
        caller = await admit(conn, token, None)
    except ApiError as exc:
        return signin_page(request, exc.message, exc.status)
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
    section, text = take_flash(visit.request, "handling")
    response = await render(visit, section=section, flash=text)
    response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def _section_page(request: Request, section: str) -> PageRequest:
    """The page of `section` that `?<section>_after=` asks for."""
    return PageRequest(SECTION_ROWS, request.query_params.get(f"{section}_after") or None)


def section_rows() -> PageRequest:
    """The rows each section of a community's page shows (T5: bounded whatever it holds)."""
    return PageRequest(SECTION_ROWS)


def base_context(request: Request, **extra: Any) -> dict[str, Any]:
    """What every signed-in page shows: the CSRF value, the time (for "3 min ago")."""
    now = datetime.now(UTC)
    return {"csrf": csrf_token(request), "now": now, "ago": lambda moment: ago(moment, now), **extra}


async def render(
    visit: Visit,
    *,
    status: int = 200,
    section: str | None = None,
    refusal: Refusal | None = None,
    values: dict[str, str] | None = None,
    check: TokenCheckResult | None = None,
    flash: str | None = None,
    generated: dict[str, str] | None = None,
) -> Response:
    """The community's page; after a change, `section` holds the form, `refusal` what is wrong
    beside each field, `values` what to show again, `flash` the note of an accepted change,
    `generated` a new key's secret, shown this once."""
    conn, community_id = visit.conn, visit.community_id
    # T5: each section shows SECTION_ROWS rows, from `?<section>_after=` (its own pages).
    rows = PageRequest(SECTION_ROWS)
    wanted = {name: _section_page(visit.request, name) for name in ("keys", "fields", "mappings")}
    try:  # a cursor not ours: 422, as the API says it
        keys = await actions.keys(conn, community_id, wanted["keys"])
        fields = await listings.list_fields(conn, community_id, wanted["fields"])
        mappings = await listings.list_mappings(conn, community_id, wanted["mappings"])
    except BadPage as exc:
        raise ApiError(422, exc.message) from None
    # Mapping targets: the first page's fields, whichever page of fields is shown.
    first_fields = fields
    if wanted["fields"].after is not None:
        first_fields = await listings.list_fields(conn, community_id, rows)
    targets = [f"identity_group.{name}" for name in GROUP_SCALAR_FIELDS + GROUP_LIST_FIELDS]
    pages = {
        name: {"next": found.next, "after": wanted[name].after}
        for name, found in (("keys", keys), ("fields", fields), ("mappings", mappings))
    }
    context = base_context(
        visit.request,
        caller=visit.caller,
        community=await actions.community(conn, community_id),
        keys=[asdict(k) for k in keys.items],
        fields=fields.items,
        mappings=mappings.items,
        pages=pages,
        entries=(await audit.list_entries(conn, PageRequest(AUDIT_ROWS), community_id)).items,
        health=await actions.health(conn, community_id, HEALTH_SECONDS),
        modes=[m.value for m in Mode],
        targets=targets + [f"custom_fields.{f.key}" for f in first_fields.items],
        rules=RULES,
        duration_hint=DURATION_HINT,
        section=section,
        errors=refusal.fields if refusal else {},
        general=refusal.general if refusal else [],
        values=values or {},
        check=check,
        flash=flash,
        generated=generated,
    )
    response = templates.TemplateResponse(visit.request, "community.html", context, status)
    if generated:
        response.headers["Cache-Control"] = "no-store"  # the secret is shown once, never kept
    return response


def confirm(
    visit: Visit,
    what: str,
    path: str,
    section: str,
    facts: list[str],
    *,
    hidden: dict[str, str] | None = None,
    refusal: Refusal | None = None,
    force: bool = False,
) -> Response:
    """The confirmation page of removing `what` ("key k1") of the visit's community (no
    JavaScript needed): the facts that matter, one button that posts to `path` (under the
    community's page), and Cancel back to its `section`. After a refusal, the refusal and
    (when the removal may be forced, L3) a "Remove … anyway" button."""
    page = f"/communities/{visit.community_id}"
    context = base_context(
        visit.request,
        caller=visit.caller,
        title=f"Remove {what}?",
        action=f"{page}/{path}",
        button=f"Remove {what}",
        back=f"{page}#{section}" if section else page,
        facts=facts,
        hidden=hidden or {},
        general=refusal.general if refusal else [],
        force=force,
    )
    return templates.TemplateResponse(
        visit.request, "confirm.html", context, refusal.status if refusal else 200
    )
