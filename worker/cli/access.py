"""`admin serve` and `admin token create|list|revoke`: the configuration service (DESIGN §10).

The service is the API and console of worker/admin; the tokens are its keys (A2): printed
once at creation, stored as hashes only, scoped to a community or to the platform.
"""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Final

import asyncpg
import click

from worker.cli import store_session
from worker.cli.common import fail, fail_store
from worker.cli.output import Column, print_changes, print_page, when
from worker.cli.store_session import database_url_option, page_options, run_store
from worker.exitcodes import PROG
from worker.store import api_tokens, audit
from worker.store.api_tokens import TokenRow
from worker.store.audit import AuditEntry
from worker.store.db import StoreError
from worker.store.db import database_url as resolve_url
from worker.store.pages import PageRequest
from worker.store.sync import Change


@click.group("admin")
def admin_group() -> None:
    """The configuration service: its HTTP API and console, and the tokens that open them."""


@admin_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="TCP port.")
@database_url_option
def serve(host: str, port: int, database_url: str | None) -> None:
    """Serve the admin API under /api/v1 (OpenAPI at /api/v1/openapi.json) and the console at /.

    Every request needs a token from `admin token create`. Stops on Ctrl-C or SIGTERM.

    \b
    Example:
      identity-worker admin serve --port 8080
    """
    import uvicorn  # the service's dependencies load only for this command

    from worker.admin.app import create_app
    from worker.ops.logging import configure_logging

    try:
        url = resolve_url(database_url)
    except StoreError as exc:
        fail_store(exc)
    run_store(url, lambda conn: asyncio.sleep(0), write=False)  # reachable and migrated, or one line
    click.echo(f"{PROG} admin: console http://{host}:{port}/  API http://{host}:{port}/api/v1", err=True)
    configure_logging("info")  # JSON lines on stderr, as the worker's (DESIGN §7)
    app = create_app(url)
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, server_header=False)


@admin_group.group("token")
def token_group() -> None:
    """API tokens: each opens one community, or the platform (every community)."""


#: A token's lifetime (A10): a whole number of hours or days, at most ten years.
_LIFETIME = re.compile(r"^([1-9][0-9]{0,5})([hd])$")
_LIFETIME_UNITS: Final = {"h": timedelta(hours=1), "d": timedelta(days=1)}
MAX_LIFETIME: Final = timedelta(days=3660)


def _lifetime(ctx: click.Context, param: click.Parameter, text: str | None) -> timedelta | None:
    if text is None:
        return None
    match = _LIFETIME.fullmatch(text.strip())
    lifetime = int(match[1]) * _LIFETIME_UNITS[match[2]] if match else None
    if lifetime is None or lifetime > MAX_LIFETIME:
        fail(f"--expires must be a lifetime like 12h or 90d (hours or days, at most 3660d), got {text!r}")
    return lifetime


@token_group.command("create")
@click.argument("name")
@click.option("--community", "community_id", metavar="ID", help="Scope the token to this community.")
@click.option("--platform", is_flag=True, help="Scope the token to the platform: every community.")
@click.option(
    "--expires",
    "lifetime",
    metavar="DURATION",
    callback=_lifetime,
    help="Refuse the token this long from now, e.g. 12h or 90d (default: until revoked).",
)
@database_url_option
def token_create(
    name: str, community_id: str | None, platform: bool, lifetime: timedelta | None, database_url: str | None
) -> None:
    """Create token NAME (^[A-Za-z0-9_.-]{1,64}$) and print it, once: only its hash is kept.

    \b
    Examples:
      identity-worker admin token create acme-admins --community acme --expires 90d
      TOKEN=$(identity-worker admin token create operators --platform)
    """
    if (community_id is None) != platform:
        fail("give exactly one of --community ID or --platform")
    token, caller = run_store(
        database_url,
        lambda conn: api_tokens.create(conn, name, community_id, actor=audit.os_actor(), lifetime=lifetime),
    )
    click.echo(token)
    click.echo(f"token {caller.name} ({caller.scope}) created: it is shown only now, keep it safe", err=True)


TOKEN_COLUMNS: list[Column[TokenRow]] = [
    Column("NAME", lambda r: r.name),
    Column("SCOPE", lambda r: r.scope),
    Column("CREATED", lambda r: when(r.created_at)),
    Column("CREATED_BY", lambda r: r.created_by),
    Column("LAST_USED", lambda r: when(r.last_used_at)),
    Column("EXPIRES", lambda r: when(r.expires_at, missing="never")),
    Column("REVOKED", lambda r: when(r.revoked_at)),
]


@token_group.command("list")
@database_url_option
@page_options
def token_list(database_url: str | None, page: PageRequest) -> None:
    """List tokens, a page at a time, oldest first: name, scope, created, last used, expiry,
    revoked. Never the token. --prefix filters the name.

    \b
    Example:
      identity-worker admin token list
    """
    found = run_store(database_url, lambda conn: api_tokens.list_tokens(conn, page), write=False)
    print_page(TOKEN_COLUMNS, found, empty="no tokens")


@token_group.command("revoke")
@click.argument("name")
@database_url_option
def token_revoke(name: str, database_url: str | None) -> None:
    """Revoke token NAME: its next request is refused (401).

    \b
    Example:
      identity-worker admin token revoke acme-admins
    """

    async def action(conn: asyncpg.Connection) -> api_tokens.Caller:
        return await api_tokens.revoke(conn, name, actor=audit.os_actor())

    caller = run_store(database_url, action)
    print_changes([Change("-", f"token {caller.name} ({caller.scope}) revoked")])


@click.group("audit")
def audit_group() -> None:
    """The audit trail of configuration changes (API, console and commands alike)."""


AUDIT_COLUMNS: list[Column[AuditEntry]] = [
    Column("WHEN", lambda r: when(r.at)),
    Column("WHO", lambda r: r.actor),
    Column("COMMUNITY", lambda r: r.community_id or "-"),
    Column("WHAT", lambda r: r.action),
    Column("CHANGES", lambda r: " | ".join(r.changes)),
]


@audit_group.command("list")
@click.option(
    "--community",
    "community_id",
    metavar="ID",
    help="Only this community's entries (every incarnation of the id: removed and re-created ones too).",
)
@database_url_option
@page_options
def audit_list(community_id: str | None, database_url: str | None, page: PageRequest) -> None:
    """Who changed what, when, before -> after (newest first), a page at a time. Never a
    secret. --prefix filters the community id.

    \b
    Examples:
      identity-worker audit list
      identity-worker audit list --community acme --limit 20
    """
    found = run_store(
        database_url,
        lambda conn: audit.list_entries(conn, page, community_id, every_incarnation=True),
        write=False,
    )
    print_page(AUDIT_COLUMNS, found, empty="no audit entries")


def register(root: click.Group) -> None:
    store_session.register(root, admin_group, audit_group, commands_too=False)
