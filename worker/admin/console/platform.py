"""The platform view (DESIGN §10, A2, A5; L5): every community, searched by id prefix, each
with its integration health over the last hour, and a form that creates a community with
its first key (S1), the console generating its HMAC secret if asked (shown once).

A community token never sees this page: `/` sends it to its own community.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Final

import asyncpg
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from worker.admin import actions
from worker.admin.auth import SESSION_COOKIE, Connection, ConsoleCaller, require_platform, session_caller
from worker.admin.console.forms import GENERATED_SECRET_BYTES
from worker.admin.console.page import (
    FLASH_COOKIE,
    HEALTH_SECONDS,
    RULES,
    base_context,
    flash_redirect,
    render,
    signin_page,
    take_flash,
    templates,
)
from worker.admin.console.session import Form, Visit
from worker.admin.console.wording import Refusal, explain
from worker.admin.errors import ApiError
from worker.core import config as spec
from worker.core.reasons import Mode
from worker.store.api_tokens import Caller
from worker.store.pages import DEFAULT_LIMIT, BadPage, PageRequest
from worker.store.usage import health_report

router = APIRouter(include_in_schema=False)

#: Communities per page of the platform view (the API's default page, T5).
PAGE_SIZE: Final = DEFAULT_LIMIT


@dataclass(frozen=True, slots=True)
class Health:
    """One community's last hour (L5): events accepted, rejected, and the commonest reason."""

    accepted: int = 0
    rejected: int = 0
    top_reason: str = ""


async def _health(conn: asyncpg.Connection, community_ids: list[str]) -> dict[str, Health]:
    """The last hour of the communities on the page (T5: a page's worth of rows, not the store's)."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in await health_report(conn, since_seconds=HEALTH_SECONDS, community_ids=community_ids):
        counts[row.community_id][row.reason if row.outcome == "rejected" else ""] += row.events
    health = {}
    for community_id, by_reason in counts.items():
        rejected = {reason: n for reason, n in by_reason.items() if reason}
        top = max(rejected, key=lambda reason: rejected[reason]) if rejected else ""
        health[community_id] = Health(by_reason.get("", 0), sum(rejected.values()), top)
    return health


async def platform_page(
    request: Request,
    conn: asyncpg.Connection,
    caller: Caller,
    *,
    refusal: Refusal | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    """The platform's list: `?prefix=` keeps the ids that start with it, `?after=` pages on."""
    prefix = request.query_params.get("prefix", "")
    after = request.query_params.get("after", "")
    try:  # T5: one page from the store, by id prefix, `after` from the page's Next link
        found = await actions.communities(conn, caller, PageRequest(PAGE_SIZE, after or None, prefix or None))
    except BadPage as exc:
        raise ApiError(422, exc.message) from None
    section, flash = take_flash(request, "communities")
    context: dict[str, Any] = base_context(
        request,
        caller=caller,
        communities=found.items,
        prefix=prefix,
        next_after=found.next,
        health=await _health(conn, [c.id for c in found.items]),
        modes=[m.value for m in Mode],
        rules=RULES,
        section="create" if refusal else section,
        flash=flash,
        errors=refusal.fields if refusal else {},
        general=refusal.general if refusal else [],
        values=values or {},
    )
    response = templates.TemplateResponse(
        request, "communities.html", context, refusal.status if refusal else 200
    )
    response.delete_cookie(FLASH_COOKIE, path="/")
    return response


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, conn: Connection) -> Response:
    if not request.cookies.get(SESSION_COOKIE):
        return signin_page(request)
    caller = await session_caller(conn, request)
    if caller.community_id is not None:
        return RedirectResponse(f"/communities/{caller.community_id}", 303)
    return await platform_page(request, conn, caller)


@router.post("/communities", response_class=HTMLResponse)
async def create_community(request: Request, conn: Connection, caller: ConsoleCaller, form: Form) -> Response:
    """A new community, in require mode with its first key (generated, pasted HMAC secret or
    RSA public key), or in reject mode with or without one."""
    require_platform(caller, "creating a community")
    community_id = form.get("id", "").strip()
    kid = form.get("kid", "").strip()
    material = form.get("material", "generate")
    data: dict[str, Any] = {"id": community_id, "signed_identities": form.get("signed_identities", "")}
    generated = None
    key: dict[str, str] = {"kid": kid}
    if material == "generate":
        generated = secrets.token_hex(GENERATED_SECRET_BYTES)
        key["hmac_secret"] = generated
    elif material in ("hmac", "rsa"):
        name = "hmac_secret" if material == "hmac" else "rsa_public_key"
        key[name] = form.get(name, "")
    if kid or data["signed_identities"] != "reject":
        data["jwt_keys"] = [key]
    else:
        generated = None  # reject mode without a key: nothing to generate
    values = {"id": community_id, "signed_identities": data["signed_identities"], "kid": kid}
    try:
        await actions.add_community(conn, caller, spec.CommunitySpec.model_validate(data))
    except Exception as exc:
        refusal = explain(exc, {**values, **{k: v for k, v in key.items() if k != "kid"}})
        shown = {**values, "material": material}
        return await platform_page(request, conn, caller, refusal=refusal, values=shown)
    if generated is None:
        done = f"Community {community_id} created."
        return flash_redirect(f"/communities/{community_id}", "handling", done)
    visit = Visit(request, conn, caller, community_id)
    note = f"Community {community_id} created with key {kid}. Copy its secret now: it is not shown again."
    return await render(visit, section="keys", flash=note, generated={"kid": kid, "secret": generated})
