"""Removals in the console, each behind a confirmation page (DESIGN §10, A5; L3).

Every Remove in the console is a link to a page that says what goes and what follows (a key's
last use, the mapping that writes a field) with one button that posts the removal and Cancel
back: no JavaScript needed, no removal in one click. A key still in use (L3) is refused on
that page, with the store's facts, and offers "Remove anyway" (force); a community (platform
token) goes the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Response
from fastapi.responses import HTMLResponse

from worker.admin import actions
from worker.admin.auth import require_platform
from worker.admin.console.durations import ago, show_duration
from worker.admin.console.forms import refusal_of
from worker.admin.console.page import confirm, flash_redirect, section_rows
from worker.admin.console.session import CommunityVisit, Form, Visit
from worker.admin.console.wording import Refusal
from worker.core import config as spec
from worker.store import listings
from worker.store.db import NotFound

router = APIRouter(prefix="/communities/{community_id}", include_in_schema=False)


def _page(visit: Visit) -> str:
    return f"/communities/{visit.community_id}"


# ---------------------------------------------------------------- keys


async def _key_page(visit: Visit, kid: str, *, refusal: Refusal | None = None) -> Response:
    listed = {k.kid: k for k in (await actions.keys(visit.conn, visit.community_id, section_rows())).items}
    key = listed.get(kid)
    if key is None:
        raise NotFound(f"community {visit.community_id!r} has no key with kid {kid!r}")
    community = await actions.community(visit.conn, visit.community_id)
    now = datetime.now(UTC)
    facts = [
        f"{key.alg} key, fingerprint {key.fingerprint}, added {key.created_at:%Y-%m-%d %H:%M} UTC.",
        f"Last verified a token: {ago(key.last_used_at, now)}; {key.uses_24h} token(s) in the last 24 h.",
        "Tokens your website still signs with it are refused from the moment it is removed.",
        f"Retirement window: {show_duration(community.retirement_window_seconds)} (see Handling).",
    ]
    if community.signed_identities == "require" and len(listed) == 1:
        facts.append("It is the community's only key, and the community requires signed identities.")
    # L3: the key is in use (its refusal names the option); the administrator may still force it.
    in_use = refusal is not None and any("Remove anyway" in line for line in refusal.general)
    return confirm(visit, f"key {kid}", f"keys/{kid}/remove", "keys", facts, refusal=refusal, force=in_use)


@router.get("/keys/{kid}/remove", response_class=HTMLResponse)
async def confirm_key_removal(visit: CommunityVisit, kid: str) -> Response:
    return await _key_page(visit, kid)


@router.post("/keys/{kid}/remove")
async def remove_key(visit: CommunityVisit, form: Form, kid: str) -> Response:
    force = form.get("force") == "true"
    try:
        await actions.remove_key(
            visit.conn, visit.caller, visit.community_id, kid, force=force, how_to_force="use Remove anyway"
        )
    except Exception as exc:
        return await _key_page(visit, kid, refusal=await refusal_of(visit, exc, {}))
    done = f"Key {kid} removed" + (" (forced, although in use)." if force else ".")
    return flash_redirect(_page(visit), "keys", done)


# ---------------------------------------------------------------- custom fields


async def _field_page(visit: Visit, key: str, *, refusal: Refusal | None = None) -> Response:
    field = next(
        (
            f
            for f in (await listings.list_fields(visit.conn, visit.community_id, section_rows())).items
            if f.key == key
        ),
        None,
    )
    if field is None:
        raise NotFound(f"community {visit.community_id!r} has no custom field {key!r}")
    mappings = (await listings.list_mappings(visit.conn, visit.community_id, section_rows())).items
    writers = [m for m in mappings if m.target == f"custom_fields.{key}"]
    facts = [f"Label: {field.label}." + (f" Pattern: {field.regex}." if field.regex else "")]
    facts += [f"Mapping {m.position} ({m.source} → {m.target}) writes this field." for m in writers]
    if not writers:
        facts.append("No mapping writes it: agents stop seeing it from the next event on.")
    return confirm(visit, f"custom field {key}", f"fields/{key}/remove", "fields", facts, refusal=refusal)


@router.get("/fields/{key}/remove", response_class=HTMLResponse)
async def confirm_field_removal(visit: CommunityVisit, key: str) -> Response:
    return await _field_page(visit, key)


@router.post("/fields/{key}/remove")
async def remove_field(visit: CommunityVisit, form: Form, key: str) -> Response:
    try:
        await actions.remove_field(visit.conn, visit.caller, visit.community_id, key)
    except Exception as exc:
        return await _field_page(visit, key, refusal=await refusal_of(visit, exc, {}))
    return flash_redirect(_page(visit), "fields", f"Custom field {key} removed.")


# ---------------------------------------------------------------- mappings


async def _mapping_page(
    visit: Visit, source: str, target: str, *, refusal: Refusal | None = None
) -> Response:
    rows = (await listings.list_mappings(visit.conn, visit.community_id, section_rows())).items
    row = next((m for m in rows if (m.source, m.target) == (source, target)), None)
    if row is None:
        raise NotFound(f"community {visit.community_id!r} has no mapping {source} -> {target}")
    facts = [
        f"Mapping {row.position}: {source} → {target}.",
        f"From the next event on, agents no longer see {source} as {target}.",
    ]
    hidden = {"from": source, "to": target}
    return confirm(
        visit, f"mapping {row.position}", "mappings/remove", "mappings", facts, hidden=hidden, refusal=refusal
    )


@router.get("/mappings/remove", response_class=HTMLResponse)
async def confirm_mapping_removal(visit: CommunityVisit) -> Response:
    query = visit.request.query_params
    return await _mapping_page(visit, query.get("from", ""), query.get("to", ""))


@router.post("/mappings/remove")
async def remove_mapping(visit: CommunityVisit, form: Form) -> Response:
    source, target = form.get("from", ""), form.get("to", "")
    try:
        mapping = spec.MappingSpec.model_validate({"from": source, "to": target})
        await actions.remove_mapping(visit.conn, visit.caller, visit.community_id, mapping)
    except Exception as exc:
        return await _mapping_page(visit, source, target, refusal=await refusal_of(visit, exc, {}))
    return flash_redirect(_page(visit), "mappings", f"Mapping {source} → {target} removed.")


# ---------------------------------------------------------------- communities (platform)


@router.get("/remove", response_class=HTMLResponse)
async def confirm_community_removal(visit: CommunityVisit) -> Response:
    require_platform(visit.caller, "removing a community")
    community = await actions.community(visit.conn, visit.community_id)
    facts = [
        f"It holds {community.keys} key(s), {community.custom_fields} custom field(s) and "
        f"{community.mappings} mapping(s); all go with it.",
        "Its events are then rejected as unknown_community.",
    ]
    return confirm(visit, f"community {community.id}", "remove", "", facts)


@router.post("/remove")
async def remove_community(visit: CommunityVisit, form: Form) -> Response:
    require_platform(visit.caller, "removing a community")
    await actions.remove_community(visit.conn, visit.caller, visit.community_id)
    return flash_redirect("/", "communities", f"Community {visit.community_id} removed.")
