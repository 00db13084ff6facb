"""`identity-worker community add|set-mode|set|list|remove`: one community per website (DESIGN §1, §7).

A community's settings are checked by the YAML loader's model before any connection; the
cross-checks (max >= min validity, S1's required key) run on the whole stored community.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from worker.cli.common import fail
from worker.cli.keys import key_from_options, key_options
from worker.cli.output import Column, print_changes, print_page, when
from worker.cli.store_session import (
    check_community_id,
    database_url_option,
    page_options,
    run_store,
    valid,
    write,
)
from worker.core.config import CommunitySpec, JwtKeySpec, lacks_required_key
from worker.core.reasons import Mode
from worker.store import listings
from worker.store import repository as repo
from worker.store.listings import CommunityRow
from worker.store.pages import PageRequest

MODES = "|".join(m.value for m in Mode)


@click.group("community")
def community_group() -> None:
    """Add, change, list and remove communities (one per customer website)."""


_SETTINGS_OPTIONS = (
    click.option(
        "--mode",
        metavar=MODES,
        help="require: only signed identities (default); reject: only unsigned ones.",
    ),
    click.option(
        "--min-validity-seconds",
        type=int,
        metavar="N",
        help="A token must stay valid this long after the event (0-31622400; default 3600).",
    ),
    click.option(
        "--leeway-seconds",
        type=int,
        metavar="N",
        help="Clock skew allowed on exp/nbf/iat (0-3600; default 10).",
    ),
    click.option(
        "--max-validity-seconds",
        metavar="N|unset",
        help="Refuse a token whose exp lies more than N s after the event (expiry_too_far, V9; "
        "1-316224000, at least the minimum validity); `unset`: no cap (the default).",
    ),
    click.option(
        "--retirement-window-seconds",
        type=int,
        metavar="N",
        help="`keys remove` refuses a key that verified a token this recently, unless --force "
        "(L3; 0-2592000, 0 never refuses; default 86400).",
    ),
)


def settings_options(command: Callable[..., None]) -> Callable[..., None]:
    """ID, then --mode, --min-validity-seconds, --leeway-seconds, --max-validity-seconds and
    --retirement-window-seconds: a community's settings, as `community add` and `set` take them."""
    for option in reversed(_SETTINGS_OPTIONS):
        command = option(command)
    return click.argument("community_id", metavar="ID")(command)


def _settings(
    mode: str | None = None,
    min_validity_seconds: int | None = None,
    leeway_seconds: int | None = None,
    max_validity_seconds: str | None = None,
    retirement_window_seconds: int | None = None,
) -> dict[str, Any]:
    """The settings given, by their column name (DESIGN §1); those not given are left out."""
    given = {
        "signed_identities": mode,
        "min_validity_seconds": min_validity_seconds,
        "leeway_seconds": leeway_seconds,
        "retirement_window_seconds": retirement_window_seconds,
    }
    return {name: value for name, value in given.items() if value is not None} | _max_validity(
        max_validity_seconds
    )


def _max_validity(value: str | None) -> dict[str, Any]:
    """`--max-validity-seconds`: a number, or `unset` (no cap); nothing when not given."""
    if value is None:
        return {}
    if value == "unset":
        return {"max_validity_seconds": None}
    try:
        return {"max_validity_seconds": int(value)}
    except ValueError:
        fail("--max-validity-seconds must be a whole number of seconds or `unset`")


@community_group.command("add")
@settings_options
@click.option("--kid", help="Key ID of the community's first key (with --hmac-secret or --rsa-public-key).")
@key_options
@database_url_option
def community_add(
    community_id: str,
    kid: str | None,
    hmac_secret: str | None,
    rsa_public_key: str | None,
    database_url: str | None,
    **given: Any,
) -> None:
    """Add a community. In require mode (the default) it needs its first key, given here (S1):
    --kid with --hmac-secret or --rsa-public-key. In reject mode it needs none.

    \b
    Examples:
      printf '%s' 0123456789abcdef01234567 |
          identity-worker community add acme --kid acme_2026 --hmac-secret -
      identity-worker community add acme --kid acme_rsa --rsa-public-key acme_public.pem
      identity-worker community add acme-shop --mode reject --leeway-seconds 30
    """
    keys: list[JwtKeySpec] = []
    if kid is not None or hmac_secret is not None or rsa_public_key is not None:
        if kid is None:
            fail("--kid: give the key ID of the first key, with --hmac-secret or --rsa-public-key")
        keys.append(key_from_options(kid, hmac_secret, rsa_public_key))
    data = {"id": community_id, **_settings(**given), "jwt_keys": keys}
    spec = valid(CommunitySpec, "community", data, s1=False)
    if lacks_required_key(spec):
        fail(
            f"community {spec.id} would require signed identities with no key (S1): give its first key "
            "(--kid KID with --hmac-secret SECRET or --rsa-public-key FILE), or add it with --mode reject"
        )
    print_changes(run_store(database_url, lambda conn: repo.add_community(conn, spec)))


def _update(community_id: str, database_url: str | None, settings: dict[str, Any]) -> None:
    # The values alone, before connecting; the cross-checks (max >= min validity) run on the
    # whole stored community, so this one assumes the loosest minimum.
    loosest = {"id": check_community_id(community_id), "min_validity_seconds": 0}
    valid(CommunitySpec, "community", {**loosest, **settings}, s1=False)
    write(database_url, community_id, lambda conn, cid: repo.update_community(conn, cid, settings))


@community_group.command("set-mode")
@click.argument("community_id", metavar="ID")
@click.argument("mode", metavar=MODES)
@database_url_option
def community_set_mode(community_id: str, mode: str, database_url: str | None) -> None:
    """Set whether a community requires signed identities (require) or refuses them (reject).

    A community requires signed identities only once it has a key (S1). Running workers
    follow within a second (C2).

    \b
    Example:
      identity-worker community set-mode acme reject
    """
    _update(community_id, database_url, _settings(mode=mode))


@community_group.command("set")
@settings_options
@database_url_option
def community_set(community_id: str, database_url: str | None, **given: Any) -> None:
    """Change a community's settings; the options not given keep their value.

    \b
    Examples:
      identity-worker community set acme --min-validity-seconds 1800 --leeway-seconds 5
      identity-worker community set acme --max-validity-seconds 86400 --retirement-window-seconds 604800
      identity-worker community set acme --max-validity-seconds unset
    """
    settings = _settings(**given)
    if not settings:
        fail(
            "nothing to change: give --mode, --min-validity-seconds, --leeway-seconds, "
            "--max-validity-seconds or --retirement-window-seconds"
        )
    _update(community_id, database_url, settings)


COMMUNITY_COLUMNS: list[Column[CommunityRow]] = [
    Column("ID", lambda r: r.id),
    Column("MODE", lambda r: r.signed_identities),
    Column("MIN_VALIDITY_S", lambda r: r.min_validity_seconds),
    Column("LEEWAY_S", lambda r: r.leeway_seconds),
    Column("MAX_VALIDITY_S", lambda r: "-" if r.max_validity_seconds is None else r.max_validity_seconds),
    Column("RETIREMENT_S", lambda r: r.retirement_window_seconds),
    Column("KEYS", lambda r: r.keys),
    Column("FIELDS", lambda r: r.custom_fields),
    Column("MAPPINGS", lambda r: r.mappings),
    Column("CREATED", lambda r: when(r.created_at)),
]


@community_group.command("list")
@database_url_option
@page_options
def community_list(database_url: str | None, page: PageRequest) -> None:
    """List communities in id order, a page at a time, with their settings and how many keys,
    fields and mappings they have.

    \b
    Examples:
      identity-worker community list
      identity-worker community list --prefix acme --limit 500
    """
    found = run_store(database_url, lambda conn: listings.list_communities(conn, page), write=False)
    print_page(COMMUNITY_COLUMNS, found, empty="no communities")


@community_group.command("remove")
@click.argument("community_id", metavar="ID")
@database_url_option
def community_remove(community_id: str, database_url: str | None) -> None:
    """Remove a community with all its keys, fields and mappings. Its events are refused
    with unknown_community from then on.

    \b
    Example:
      identity-worker community remove acme
    """
    write(database_url, community_id, repo.remove_community)
