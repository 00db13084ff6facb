"""`identity-worker fields add|list|remove`: a community's custom fields (DESIGN §1, M4, §7)."""

from __future__ import annotations

import click

from worker.cli.output import Column, when
from worker.cli.store_session import list_command, on_community, valid, write
from worker.core.config import CustomFieldSpec
from worker.store import listings
from worker.store import repository as repo
from worker.store.listings import FieldRow


@click.group("fields")
def fields_group() -> None:
    """Add, list and remove a community's custom fields (what agents see besides the identity group)."""


@fields_group.command("add")
@on_community
@click.argument("key")
@click.option("--label", required=True, help="What agents see (1-255 characters).")
@click.option("--regex", metavar="RE2", help="A value must match it as a whole (RE2 syntax, linear time).")
def fields_add(community_id: str, key: str, label: str, regex: str | None, database_url: str | None) -> None:
    """Declare a custom field KEY (^[a-z0-9_]{1,64}$); mappings can then fill it.

    \b
    Example:
      identity-worker fields add acme customer_id --label "Customer ID" --regex 'C[0-9]{6}'
    """
    data = {"key": key, "label": label, **({"regex": regex} if regex is not None else {})}
    field = valid(CustomFieldSpec, "custom field", data)
    write(database_url, community_id, lambda conn, cid: repo.add_field(conn, cid, field))


FIELD_COLUMNS: list[Column[FieldRow]] = [
    Column("KEY", lambda r: r.key),
    Column("LABEL", lambda r: r.label),
    Column("REGEX", lambda r: r.regex if r.regex is not None else "-"),
    Column("CREATED", lambda r: when(r.created_at)),
]
list_command(
    fields_group,
    "custom fields",
    listings.list_fields,
    FIELD_COLUMNS,
    """List a community's custom fields.

    \b
    Example:
      identity-worker fields list acme
    """,
)


@fields_group.command("remove")
@on_community
@click.argument("key")
def fields_remove(community_id: str, key: str, database_url: str | None) -> None:
    """Remove a custom field. Refused while a mapping still targets it: remove that first.

    \b
    Example:
      identity-worker fields remove acme customer_id
    """
    write(database_url, community_id, lambda conn, cid: repo.remove_field(conn, cid, key))
