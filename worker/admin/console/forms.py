"""The changes the community page's forms post (DESIGN §10, A3, A5).

Each runs the API's own action; on success the browser goes back to the section that changed
(303) with a note there, on a refusal the page is shown again with, beside each field, what
is wrong in plain words (`wording.explain`). Secrets never come back in a form (a key's
secret, a pasted token); a secret the console generates is shown once, on the answer itself.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Final

from fastapi import APIRouter, Response
from fastapi.responses import HTMLResponse

from worker.admin import actions
from worker.admin.console.durations import DURATION_FIELDS, parse_duration
from worker.admin.console.page import DURATION_HINT, flash_redirect, render, section_rows
from worker.admin.console.session import CommunityVisit, Form, Visit
from worker.admin.console.wording import Refusal, explain
from worker.admin.errors import ApiError
from worker.admin.models import CommunitySettings
from worker.core import config as spec
from worker.store import listings

router = APIRouter(prefix="/communities/{community_id}", include_in_schema=False)

#: The Handling form's settings (the community's settings but its lists; DESIGN §5, L3).
HANDLING: Final = ("signed_identities", *DURATION_FIELDS)
#: Form fields whose value is never sent back to the browser.
SECRET_FIELDS: Final = frozenset({"hmac_secret", "rsa_public_key", "token"})
#: A generated HMAC secret: 12 random bytes as 24 hex characters, the platform's format (§1).
GENERATED_SECRET_BYTES: Final = 12


async def refusal_of(visit: Visit, exc: BaseException, values: dict[str, str]) -> Refusal:
    """Any refusal a console change can meet, in plain words (unknown exceptions re-raised)."""
    mappings = (await listings.list_mappings(visit.conn, visit.community_id, section_rows())).items
    return explain(exc, values, [(m.source, m.target) for m in mappings])


async def _submit(
    visit: Visit,
    section: str,
    change: Callable[[], Awaitable[object]],
    *,
    values: dict[str, str],
    done: str,
) -> Response:
    """Run a change; on success back to the section with `done` beside it, else the page with
    what is wrong beside each field (the values typed shown again, secrets never)."""
    try:
        await change()
    except Exception as exc:  # `refusal_of` re-raises what is not a refusal
        refusal = await refusal_of(visit, exc, values)
    else:
        return flash_redirect(f"/communities/{visit.community_id}", section, done)
    shown = {name: value for name, value in values.items() if name not in SECRET_FIELDS}
    return await render(visit, status=refusal.status, section=section, refusal=refusal, values=shown)


def _texts(form: dict[str, str], *names: str) -> dict[str, str]:
    """The named fields of a form, each "" when not posted."""
    return {name: form.get(name, "") for name in names}


@router.post("/handling")
async def handling(visit: CommunityVisit, form: Form) -> Response:
    values = _texts(form, *HANDLING)
    data: dict[str, object] = {"signed_identities": values["signed_identities"]}
    unreadable = Refusal(422)
    for name in DURATION_FIELDS:
        text = values[name]
        seconds = parse_duration(text)
        if seconds is not None:
            data[name] = seconds
        elif text.strip():
            unreadable.add(name, f"Not a duration. {DURATION_HINT}")
        elif name == "max_validity_seconds":
            data[name] = None  # empty: no maximum (V9)
        else:
            unreadable.add(name, f"Required. {DURATION_HINT}")
    if unreadable.fields:
        return await render(visit, status=422, section="handling", refusal=unreadable, values=values)

    async def change() -> object:
        settings = CommunitySettings.model_validate(data)
        return await actions.update_community(
            visit.conn, visit.caller, visit.community_id, settings.model_dump(exclude_unset=True)
        )

    return await _submit(visit, "handling", change, values=values, done="Handling saved.")


@router.post("/keys", response_class=HTMLResponse)
async def add_key(visit: CommunityVisit, form: Form) -> Response:
    """Add a key: an HMAC secret the console generates (shown once, on this answer), one
    pasted, or an RSA public key; `material` says which (generate, hmac, rsa)."""
    material = form.get("material", "generate")
    kid = form.get("kid", "").strip()
    data: dict[str, Any] = {"kid": kid}
    generated = None
    if material == "generate":
        generated = secrets.token_hex(GENERATED_SECRET_BYTES)
        data["hmac_secret"] = generated
    elif material == "hmac":
        data["hmac_secret"] = form.get("hmac_secret", "")
    elif material == "rsa":
        data["rsa_public_key"] = form.get("rsa_public_key", "")
    values = {"kid": kid, "material": material, **{k: v for k, v in data.items() if k != "kid"}}

    async def change() -> object:
        return await actions.add_key(
            visit.conn, visit.caller, visit.community_id, spec.JwtKeySpec.model_validate(data)
        )

    if generated is None:
        return await _submit(visit, "keys", change, values=values, done=f"Key {kid} added.")
    try:
        await change()
    except Exception as exc:
        refusal = await refusal_of(visit, exc, values)
        shown = {"kid": kid, "material": material}
        return await render(visit, status=refusal.status, section="keys", refusal=refusal, values=shown)
    # No redirect: the secret exists nowhere else (the store keeps it, never shows it again).
    note = f"Key {kid} added with a new secret. Copy it now: it is not shown again."
    return await render(visit, section="keys", flash=note, generated={"kid": kid, "secret": generated})


@router.post("/fields")
async def add_field(visit: CommunityVisit, form: Form) -> Response:
    values = _texts(form, "key", "label", "regex")
    data = {name: value for name, value in values.items() if name != "regex" or value}

    async def change() -> object:
        field = spec.CustomFieldSpec.model_validate(data)
        return await actions.add_field(visit.conn, visit.caller, visit.community_id, field)

    return await _submit(visit, "fields", change, values=values, done=f"Custom field {values['key']} added.")


@router.post("/mappings")
async def add_mapping(visit: CommunityVisit, form: Form) -> Response:
    """Add the mapping `from` -> `to` after the others (M2); a refusal keeps what was typed."""
    values = _texts(form, "from", "to")

    async def change() -> object:
        mapping = spec.MappingSpec.model_validate(values)
        return await actions.add_mapping(visit.conn, visit.caller, visit.community_id, mapping)

    done = f"Mapping {values['from']} → {values['to']} added."
    return await _submit(visit, "mappings", change, values=values, done=done)


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
        refusal = explain(exc, values)
        return await render(visit, status=exc.status, section="token-check", refusal=refusal, values=values)
    return await render(visit, section="token-check", check=check, values=values)
