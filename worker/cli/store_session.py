"""Running one command against the configuration store: the one place a command connects (DESIGN §7).

Every value is validated by the models the YAML loader uses (`worker.core.config`), before
any connection is opened, and every write runs in one transaction, audited (A4): a refused
command changes nothing. The commands of each group (`community`, `keys`, …) live in their
own module and only say what to read or change.

Exit codes (worker.exitcodes): 0 done; 2 the input is wrong (a bad value, an unknown
community/kid/field/mapping, something that already exists: fix the command); 1 the
environment failed (the database cannot be reached, its schema is missing or outdated: fix
the setup, retry).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg
import click

from worker.cli.common import fail, fail_store
from worker.cli.output import Column, print_changes, print_page
from worker.core.config import CommunitySpec, ConfigError, SpecT, validate_spec
from worker.exitcodes import EXIT_ENVIRONMENT, EXIT_OK, EXIT_USAGE, PROG
from worker.store import audit
from worker.store.db import TRANSIENT_ERRORS, StoreError, connect, translate
from worker.store.db import database_url as resolve_url
from worker.store.migrate import check_schema
from worker.store.pages import DEFAULT_LIMIT, MAX_LIMIT, BadPage, Page, PageRequest
from worker.store.sync import Change

T = TypeVar("T")
R = TypeVar("R")


def _exit_status(wrong_input: str) -> str:
    return (
        f"Exit status: {EXIT_OK} done; {EXIT_USAGE} {wrong_input}; "
        f"{EXIT_ENVIRONMENT} database unreachable or schema missing."
    )


EXIT_CODES = _exit_status("wrong input (nothing changed)")  # the epilog of every command that may write
EXIT_CODES_READ = _exit_status("wrong input")  # … and of one that only reads

database_url_option = click.option(
    "--database-url",
    metavar="URL",
    help="PostgreSQL URL, e.g. postgresql://identity@127.0.0.1:5432/identity  [default: $DATABASE_URL]",
)


def on_community(command: Callable[..., None]) -> Callable[..., None]:
    """COMMUNITY as the first argument, and --database-url."""
    return click.argument("community_id", metavar="COMMUNITY")(database_url_option(command))


def run_store(
    url: str | None,
    action: Callable[[asyncpg.Connection], Awaitable[T]],
    *,
    write: bool = True,
    needs_schema: bool = True,
) -> T:
    """Connect, check the schema, run `action` (in one transaction when it writes; a write
    returns its Change lines, which are audited, A4). Every failure is one line and its exit code."""
    try:
        dsn = resolve_url(url)
    except StoreError as exc:
        fail_store(exc)

    async def go() -> T:
        conn = await connect(dsn)
        try:
            if needs_schema:
                await check_schema(conn)
            if not write:
                return await action(conn)
            async with conn.transaction():
                result = await action(conn)
                if isinstance(result, list):  # every write returns its Change lines: audit them (A4)
                    await audit.record(conn, audit.os_actor(), _command_name(), result)
                return result
        finally:
            await conn.close()

    try:
        return asyncio.run(go())
    except ConfigError as exc:
        fail("refused, the result would be invalid: " + "; ".join(exc.problems))
    except StoreError as exc:
        fail_store(exc)
    except (asyncpg.PostgresError, *TRANSIENT_ERRORS) as exc:
        error = translate(exc, dsn)
        fail_store(error)


def _command_name() -> str:
    """`keys add`, `config apply`, …: the audit trail's `action` for the command running."""
    ctx = click.get_current_context(silent=True)
    return ctx.command_path.partition(" ")[2] if ctx is not None else PROG


def valid(model: type[SpecT], what: str, data: dict[str, Any], *, s1: bool = True) -> SpecT:
    """Validate with the YAML loader's model; one line naming every problem, never a value.
    `s1=False`: the caller refuses a community without its required key itself (S1)."""
    try:
        return validate_spec(model, data, s1=s1)
    except ConfigError as exc:
        fail(f"invalid {what}: " + "; ".join(exc.problems))


def check_community_id(value: str) -> str:
    """A community id checked like the YAML loader's (exit 2 otherwise)."""
    return valid(CommunitySpec, "community", {"id": value}, s1=False).id  # the id alone


def write(
    url: str | None, community: str, op: Callable[[asyncpg.Connection, str], Awaitable[list[Change]]]
) -> None:
    """Run one change of one community in a transaction and print what changed."""
    cid = check_community_id(community)
    print_changes(run_store(url, lambda conn: op(conn, cid)))


def page_options(command: Callable[..., None]) -> Callable[..., None]:
    """--limit, --after and --prefix: the page a list command prints (T5); the command gets
    them as one `page` (a PageRequest), checked before any connection."""

    @functools.wraps(command)
    def wrapper(*args: Any, limit: int, after: str | None, prefix: str | None, **kwargs: Any) -> None:
        try:
            page = PageRequest(limit, after, prefix)
        except BadPage as exc:
            fail(exc.message)
        command(*args, page=page, **kwargs)

    for option in reversed(
        (
            click.option(
                "--limit",
                type=click.IntRange(1, MAX_LIMIT),
                default=DEFAULT_LIMIT,
                show_default=True,
                help=f"At most this many rows (1-{MAX_LIMIT}).",
            ),
            click.option(
                "--after", metavar="CURSOR", help="Start after this cursor (the hint below a page)."
            ),
            click.option("--prefix", metavar="TEXT", help="Only rows whose id starts with TEXT."),
        )
    ):
        wrapper = option(wrapper)
    return wrapper


def list_command(
    group: click.Group,
    what: str,
    fetch: Callable[[asyncpg.Connection, str, PageRequest], Awaitable[Page[R]]],
    columns: Sequence[Column[R]],
    doc: str,
) -> None:
    """Register `GROUP list COMMUNITY`: a page of one community's keys, fields or mappings."""

    @group.command("list", help=doc)
    @on_community
    @page_options
    def command(community_id: str, database_url: str | None, page: PageRequest) -> None:
        cid = check_community_id(community_id)
        found = run_store(database_url, lambda conn: fetch(conn, cid, page), write=False)
        print_page(columns, found, empty=f"community {cid} has no {what}")


def register(root: click.Group, *groups: click.Group, commands_too: bool = True) -> None:
    """Add store groups to the root command, each (and its commands) with the exit-code epilog."""
    for group in groups:
        group.epilog = EXIT_CODES
        if commands_too:
            for command in group.commands.values():
                command.epilog = EXIT_CODES
        root.add_command(group)
