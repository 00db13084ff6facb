"""`identity-worker db migrate`: the configuration store's schema (DESIGN §7)."""

from __future__ import annotations

import asyncpg
import click

from worker.cli.store_session import database_url_option, run_store
from worker.store.migrate import LATEST_VERSION, migrate


@click.group("db")
def db_group() -> None:
    """The configuration store's schema."""


@db_group.command("migrate")
@database_url_option
def db_migrate(database_url: str | None) -> None:
    """Create or upgrade the configuration schema (idempotent; safe from several processes
    at once: they take turns on an advisory lock).

    \b
    Example:
      identity-worker db migrate --database-url postgresql://identity@127.0.0.1:5432/identity
    """

    async def action(conn: asyncpg.Connection) -> list[str]:
        return [f"applied {m.version:04d}_{m.name}" for m in await migrate(conn)]

    applied = run_store(database_url, action, write=False, needs_schema=False)
    for line in applied:
        click.echo(line)
    click.echo(f"schema is at version {LATEST_VERSION}" + ("" if applied else " (nothing to do)"))
