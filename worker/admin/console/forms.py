"""The changes the community page's forms post (DESIGN §10, A3, A5).

Each runs the API's own action; on success the browser goes back to the page (303) with a
note, on a refusal the page is shown again with the API's message beside the field it names.
Secrets never come back in a form (a key's secret, a pasted token).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, Final

import asyncpg
from fastapi import APIRouter, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from worker.admin import actions, errors
from worker.admin.console.page import FLASH_COOKIE, render
from worker.admin.console.session import CommunityVisit, Form, Visit
from worker.admin.errors import ApiError
from worker.admin.models import CommunitySettings
from worker.core import config as spec
from worker.store.api_tokens import Caller

router = APIRouter(prefix="/communities/{community_id}", include_in_schema=False)

#: The Handling form's settings (the community's settings but its lists; DESIGN §5, L3).
HANDLING: Final = (
    "signed_identities",
    "min_validity_seconds",
    "leeway_seconds",
    "max_validity_seconds",
    "retirement_window_seconds",
)
_FIRST_NAME = re.compile(r"^([a-z_]+)")


async def _submit(
    visit: Visit,
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
        response = RedirectResponse(f"/communities/{visit.community_id}#{section}", 303)
        response.set_cookie(FLASH_COOKIE, done, httponly=True, samesite="strict", max_age=60)
        return response
    named = _FIRST_NAME.match(failure.message)
    field = named[1] if named and named[1] in values else None
    return await render(
        visit, status=failure.status, section=section, error=failure.message, field=field, values=values
    )


def _valid(model: type[spec.SpecT], data: dict[str, Any]) -> spec.SpecT:
    return model.model_validate(data)


def _number(text: str) -> int | str:
    """Form fields are text; a whole number goes to the model as one, anything else as given."""
    return int(text) if re.fullmatch(r"-?[0-9]{1,12}", text.strip()) else text


def _texts(form: dict[str, str], *names: str) -> dict[str, str]:
    """The named fields of a form, each "" when not posted."""
    return {name: form.get(name, "") for name in names}


@router.post("/handling")
async def handling(visit: CommunityVisit, form: Form) -> Response:
    values = _texts(form, *HANDLING)
    data: dict[str, object] = {
        name: _number(value) if name != "signed_identities" else value for name, value in values.items()
    }
    if not values["max_validity_seconds"].strip():
        data["max_validity_seconds"] = None  # empty: no maximum (V9)

    async def change() -> object:
        settings = CommunitySettings.model_validate(data)
        return await actions.update_community(
            visit.conn, visit.caller, visit.community_id, settings.model_dump(exclude_unset=True)
        )

    return await _submit(visit, "handling", change, values=values, done="handling saved")


@router.post("/keys")
async def add_key(visit: CommunityVisit, form: Form) -> Response:
    data = {
        name: form[name] for name in ("kid", "hmac_secret", "rsa_public_key") if form.get(name, "").strip()
    }
    values = {"kid": form.get("kid", ""), "hmac_secret": "", "rsa_public_key": ""}  # secrets never come back

    async def change() -> object:
        return await actions.add_key(
            visit.conn, visit.caller, visit.community_id, _valid(spec.JwtKeySpec, data)
        )

    done = f"key {data.get('kid', '')} added"
    return await _submit(visit, "keys", change, values=values, done=done)


@router.post("/keys/{kid}/remove")
async def remove_key(visit: CommunityVisit, form: Form, kid: str) -> Response:
    force = form.get("force") == "true"

    async def change() -> None:
        await actions.remove_key(
            visit.conn, visit.caller, visit.community_id, kid, force=force, how_to_force="use 'Remove anyway'"
        )

    # `refused_kid`: the refusal (L3) is shown beside that key, with its 'Remove anyway' button.
    done = f"key {kid} removed" + (" (forced)" if force else "")
    return await _submit(visit, "keys", change, values={"refused_kid": kid}, done=done)


@router.post("/fields")
async def add_field(visit: CommunityVisit, form: Form) -> Response:
    values = _texts(form, "key", "label", "regex")
    data = {name: value for name, value in values.items() if name != "regex" or value}

    async def change() -> object:
        field = _valid(spec.CustomFieldSpec, data)
        return await actions.add_field(visit.conn, visit.caller, visit.community_id, field)

    return await _submit(visit, "fields", change, values=values, done=f"custom field {values['key']} added")


@router.post("/fields/{key}/remove")
async def remove_field(visit: CommunityVisit, form: Form, key: str) -> Response:
    async def change() -> None:
        await actions.remove_field(visit.conn, visit.caller, visit.community_id, key)

    return await _submit(visit, "fields", change, values={}, done=f"custom field {key} removed")


#: `actions.add_mapping` or `actions.remove_mapping`.
MappingAction = Callable[[asyncpg.Connection, Caller, str, spec.MappingSpec], Awaitable[object]]


async def _mapping(visit: Visit, form: dict[str, str], action: MappingAction, *, added: bool) -> Response:
    """Add or remove the mapping `from` -> `to` (M2); a refused addition keeps what was typed."""
    values = _texts(form, "from", "to")

    async def change() -> object:
        return await action(visit.conn, visit.caller, visit.community_id, _valid(spec.MappingSpec, values))

    done = f"mapping {values['from']} -> {values['to']} {'added' if added else 'removed'}"
    return await _submit(visit, "mappings", change, values=values if added else {}, done=done)


@router.post("/mappings")
async def add_mapping(visit: CommunityVisit, form: Form) -> Response:
    return await _mapping(visit, form, actions.add_mapping, added=True)


@router.post("/mappings/remove")
async def remove_mapping(visit: CommunityVisit, form: Form) -> Response:
    return await _mapping(visit, form, actions.remove_mapping, added=False)


@router.post("/token-check", response_class=HTMLResponse)
async def token_check(visit: CommunityVisit, form: Form) -> Response:
    received_at = form.get("received_at", "").strip() or None
    # Judged exactly as pasted (DESIGN §7): whitespace or a `Bearer ` prefix around it gets a
    # note and the verdict of the token alone. Kept in the box for the next try (the page is
    # no-store, A9); never stored or logged.
    token = form.get("token", "")
    values = {"token": token, "received_at": received_at or ""}
    try:
        check = await actions.check_token(visit.conn, visit.community_id, token, received_at)
    except ApiError as exc:
        return await render(
            visit,
            status=exc.status,
            section="token-check",
            error=exc.message,
            field="received_at",
            values=values,
        )
    return await render(visit, section="token-check", check=check, values=values)
