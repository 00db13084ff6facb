"""The console (DESIGN §10, A5): server-rendered pages over the API's own actions.

Sign in with an API token (kept in an HttpOnly, SameSite=Strict cookie); a community's page
has the seed's sections: Handling, JWT keys, Extra values mapping, Custom fields, Test a
token, Audit. Forms post to the server, which runs the same `actions` as the API and, on a
refusal, shows the API's very message next to the field it is about. No JavaScript.

CSRF: every form carries a value derived from the session's token (HMAC), which another
site cannot read; a post without it, or with a foreign `Origin`, is refused (403). The
cookie's SameSite=Strict keeps it off cross-site requests in the first place.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from worker.admin import actions, errors
from worker.admin.auth import SESSION_COOKIE, Connection, ConsoleCaller, admit
from worker.admin.errors import ApiError, Forbidden
from worker.admin.models import CommunitySettings, TokenCheckResult
from worker.core import config as spec
from worker.core.contracts import GROUP_LIST_FIELDS, GROUP_SCALAR_FIELDS, Mode
from worker.core.keys import HMAC_SECRET_PATTERN, KID_MAX_CHARS, KID_PATTERN, RSA_MIN_BITS
from worker.store import audit
from worker.store import repository as repo
from worker.store.api_tokens import Caller

HERE: Final = Path(__file__).resolve().parent
FLASH_COOKIE: Final = "identity_worker_flash"
AUDIT_ROWS: Final = 50
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)

#: The format rules shown beside each field: from the constants the validators use.
RULES: Final = {
    "kid": f"{KID_PATTERN}, at most {KID_MAX_CHARS} characters",
    "hmac_secret": f"HS256: exactly 24 characters 0-9a-f ({HMAC_SECRET_PATTERN}); "
    "the key is those 24 characters",
    "rsa_public_key": f"RS256: PEM, BEGIN PUBLIC KEY or BEGIN RSA PUBLIC KEY, at least {RSA_MIN_BITS} bits; "
    "never a private key",
    "min_validity_seconds": f"0-{spec.MAX_MIN_VALIDITY_SECONDS}: a token must stay valid this long",
    "leeway_seconds": f"0-{spec.MAX_LEEWAY_SECONDS}: clock skew allowed on exp, nbf, iat",
    "key": f"{spec.FIELD_KEY_PATTERN}",
    "label": f"1-{spec.MAX_LABEL_CHARS} characters, what agents see",
    "regex": f"optional; RE2 syntax, must match the whole value, at most {spec.MAX_REGEX_CHARS} characters",
    "from": "uuid or extra_values.<key>",
    "to": "identity_group.<field> or custom_fields.<key> of a declared field",
}
_FIRST_NAME = re.compile(r"^([a-z_]+)")


def mount(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(router)


def csrf_token(session: str) -> str:
    return hmac.new(session.encode(), b"identity-worker console form", hashlib.sha256).hexdigest()


async def _form(request: Request, caller: ConsoleCaller) -> dict[str, str]:
    """The posted form, once the caller is admitted and the post is shown to be the console's."""
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise Forbidden("this form was posted from another site")
    form = await request.form()
    data = {name: value for name, value in form.items() if isinstance(value, str)}
    expected = csrf_token(request.cookies.get(SESSION_COOKIE, ""))
    if not hmac.compare_digest(data.pop("csrf", ""), expected):
        raise Forbidden("the form is stale or came from another site: reload the page and try again")
    return data


Form = Annotated[dict[str, str], Depends(_form)]


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
    session = request.cookies.get(SESSION_COOKIE)
    if not session:
        return _signin(request)
    caller = await admit(conn, session, None)
    if caller.community_id is not None:
        return RedirectResponse(f"/communities/{caller.community_id}", 303)
    context = {"caller": caller, "communities": await actions.communities(conn, caller)}
    return templates.TemplateResponse(request, "communities.html", context)


@router.post("/signin")
async def signin(request: Request, conn: Connection) -> Response:
    token = str((await request.form()).get("token", "")).strip()
    try:
        await admit(conn, token, None)
    except ApiError as exc:
        return _signin(request, exc.message, exc.status)
    response = RedirectResponse("/", 303)
    response.set_cookie(
        SESSION_COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
    return response


@router.post("/signout")
async def signout() -> Response:
    response = RedirectResponse("/", 303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/communities/{community_id}", response_class=HTMLResponse)
async def community_page(
    request: Request, conn: Connection, caller: ConsoleCaller, community_id: str
) -> Response:
    response = await _page(request, conn, caller, community_id, flash=request.cookies.get(FLASH_COOKIE))
    response.delete_cookie(FLASH_COOKIE, path="/")
    return response


async def _page(
    request: Request,
    conn: Connection,
    caller: Caller,
    community_id: str,
    *,
    status: int = 200,
    section: str | None = None,
    error: str | None = None,
    field: str | None = None,
    values: dict[str, str] | None = None,
    check: TokenCheckResult | None = None,
    flash: str | None = None,
) -> Response:
    fields = await repo.list_fields(conn, community_id)
    targets = [f"identity_group.{name}" for name in GROUP_SCALAR_FIELDS + GROUP_LIST_FIELDS]
    context: dict[str, Any] = {
        "caller": caller,
        "community": await actions.community(conn, community_id),
        "keys": [asdict(k) for k in await repo.list_keys(conn, community_id)],
        "fields": fields,
        "mappings": await repo.list_mappings(conn, community_id),
        "entries": await audit.list_entries(conn, community_id, limit=AUDIT_ROWS),
        "modes": [m.value for m in Mode],
        "targets": targets + [f"custom_fields.{f.key}" for f in fields],
        "rules": RULES,
        "csrf": csrf_token(request.cookies.get(SESSION_COOKIE, "")),
        "section": section,
        "error": error,
        "error_field": field,
        "values": values or {},
        "check": check,
        "flash": flash,
    }
    return templates.TemplateResponse(request, "community.html", context, status)


async def _submit(
    request: Request,
    conn: Connection,
    caller: Caller,
    community_id: str,
    section: str,
    change: Callable[[], Awaitable[object]],
    *,
    values: dict[str, str],
    done: str,
) -> Response:
    """Run a change; on success back to the page (303) with a note, else the page with the
    API's message beside the field it names (or beside the form's button)."""
    try:
        await change()
    except ValidationError as exc:
        failure = errors.invalid(exc)
    except Exception as exc:  # the API's table decides; anything it does not know is re-raised
        failure = errors.from_exception(exc)
    else:
        response = RedirectResponse(f"/communities/{community_id}#{section}", 303)
        response.set_cookie(FLASH_COOKIE, done, httponly=True, samesite="strict", max_age=60)
        return response
    named = _FIRST_NAME.match(failure.message)
    field = named[1] if named and named[1] in values else None
    return await _page(
        request,
        conn,
        caller,
        community_id,
        status=failure.status,
        section=section,
        error=failure.message,
        field=field,
        values=values,
    )


def _valid(model: type[spec.SpecT], data: dict[str, Any]) -> spec.SpecT:
    return model.model_validate(data)


def _number(text: str) -> int | str:
    """Form fields are text; a whole number goes to the model as one, anything else as given."""
    return int(text) if re.fullmatch(r"-?[0-9]{1,12}", text.strip()) else text


@router.post("/communities/{community_id}/handling")
async def handling(
    request: Request, conn: Connection, caller: ConsoleCaller, form: Form, community_id: str
) -> Response:
    values = {
        name: form.get(name, "") for name in ("signed_identities", "min_validity_seconds", "leeway_seconds")
    }
    data = {name: _number(value) if name != "signed_identities" else value for name, value in values.items()}

    async def change() -> object:
        settings = CommunitySettings.model_validate(data)
        return await actions.update_community(
            conn, caller, community_id, settings.model_dump(exclude_unset=True)
        )

    return await _submit(
        request, conn, caller, community_id, "handling", change, values=values, done="handling saved"
    )


@router.post("/communities/{community_id}/keys")
async def add_key(
    request: Request, conn: Connection, caller: ConsoleCaller, form: Form, community_id: str
) -> Response:
    data = {
        name: form[name] for name in ("kid", "hmac_secret", "rsa_public_key") if form.get(name, "").strip()
    }
    values = {"kid": form.get("kid", ""), "hmac_secret": "", "rsa_public_key": ""}  # secrets never come back

    async def change() -> object:
        return await actions.add_key(conn, caller, community_id, _valid(spec.JwtKeySpec, data))

    kid = data.get("kid", "")
    return await _submit(
        request, conn, caller, community_id, "keys", change, values=values, done=f"key {kid} added"
    )


@router.post("/communities/{community_id}/keys/{kid}/remove")
async def remove_key(
    request: Request, conn: Connection, caller: ConsoleCaller, form: Form, community_id: str, kid: str
) -> Response:
    async def change() -> None:
        await actions.remove_key(conn, caller, community_id, kid)

    return await _submit(
        request, conn, caller, community_id, "keys", change, values={}, done=f"key {kid} removed"
    )


@router.post("/communities/{community_id}/fields")
async def add_field(
    request: Request, conn: Connection, caller: ConsoleCaller, form: Form, community_id: str
) -> Response:
    values = {name: form.get(name, "") for name in ("key", "label", "regex")}
    data = {name: value for name, value in values.items() if name != "regex" or value}

    async def change() -> object:
        return await actions.add_field(conn, caller, community_id, _valid(spec.CustomFieldSpec, data))

    done = f"custom field {values['key']} added"
    return await _submit(request, conn, caller, community_id, "fields", change, values=values, done=done)


@router.post("/communities/{community_id}/fields/{key}/remove")
async def remove_field(
    request: Request, conn: Connection, caller: ConsoleCaller, form: Form, community_id: str, key: str
) -> Response:
    async def change() -> None:
        await actions.remove_field(conn, caller, community_id, key)

    done = f"custom field {key} removed"
    return await _submit(request, conn, caller, community_id, "fields", change, values={}, done=done)


@router.post("/communities/{community_id}/mappings")
async def add_mapping(
    request: Request, conn: Connection, caller: ConsoleCaller, form: Form, community_id: str
) -> Response:
    values = {name: form.get(name, "") for name in ("from", "to")}

    async def change() -> object:
        return await actions.add_mapping(conn, caller, community_id, _valid(spec.MappingSpec, values))

    done = f"mapping {values['from']} -> {values['to']} added"
    return await _submit(request, conn, caller, community_id, "mappings", change, values=values, done=done)


@router.post("/communities/{community_id}/mappings/remove")
async def remove_mapping(
    request: Request, conn: Connection, caller: ConsoleCaller, form: Form, community_id: str
) -> Response:
    values = {name: form.get(name, "") for name in ("from", "to")}

    async def change() -> None:
        await actions.remove_mapping(conn, caller, community_id, _valid(spec.MappingSpec, values))

    done = f"mapping {values['from']} -> {values['to']} removed"
    return await _submit(request, conn, caller, community_id, "mappings", change, values={}, done=done)


@router.post("/communities/{community_id}/token-check", response_class=HTMLResponse)
async def token_check(
    request: Request, conn: Connection, caller: ConsoleCaller, form: Form, community_id: str
) -> Response:
    received_at = form.get("received_at", "").strip() or None
    values = {"token": "", "received_at": received_at or ""}  # the token is never sent back
    try:
        # A pasted token's surrounding whitespace (a textarea adds line ends) is not part of it.
        check = await actions.check_token(conn, community_id, form.get("token", "").strip(), received_at)
    except ApiError as exc:
        return await _page(
            request,
            conn,
            caller,
            community_id,
            status=exc.status,
            section="token-check",
            error=exc.message,
            field="received_at",
            values=values,
        )
    return await _page(request, conn, caller, community_id, section="token-check", check=check, values=values)
