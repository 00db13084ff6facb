"""`identity-worker mappings add|list|remove`: a community's extra-value mappings (DESIGN M1–M6, §7)."""

from __future__ import annotations

import click

from worker.cli.output import Column, when
from worker.cli.store_session import list_command, on_community, valid, write
from worker.core.config import MappingSpec
from worker.store import listings
from worker.store import repository as repo
from worker.store.listings import MappingRow


@click.group("mappings")
def mappings_group() -> None:
    """Add, list and remove a community's extra-value mappings (applied in order, M2)."""


def _mapping(source: str, target: str) -> MappingSpec:
    return valid(MappingSpec, "mapping", {"from": source, "to": target})


@mappings_group.command("add")
@on_community
@click.argument("source", metavar="FROM")
@click.argument("target", metavar="TO")
def mappings_add(community_id: str, source: str, target: str, database_url: str | None) -> None:
    """Append a mapping after the community's last one (mappings apply in order, M2).

    FROM is `uuid` or `extra_values.<key>`; TO is `identity_group.<field>` (firstname,
    lastname, gender, company, notes, emails, home_phones, mobile_phones) or
    `custom_fields.<key>` of a declared custom field.

    \b
    Examples:
      identity-worker mappings add acme extra_values.customer_id custom_fields.customer_id
      identity-worker mappings add acme uuid identity_group.notes
    """
    mapping = _mapping(source, target)
    write(database_url, community_id, lambda conn, cid: repo.add_mapping(conn, cid, mapping))


MAPPING_COLUMNS: list[Column[MappingRow]] = [
    Column("#", lambda r: r.position),
    Column("FROM", lambda r: r.source),
    Column("TO", lambda r: r.target),
    Column("CREATED", lambda r: when(r.created_at)),
]
list_command(
    mappings_group,
    "mappings",
    listings.list_mappings,
    MAPPING_COLUMNS,
    """List a community's mappings in the order they apply (M2).

    \b
    Example:
      identity-worker mappings list acme
    """,
)


@mappings_group.command("remove")
@on_community
@click.argument("source", metavar="FROM")
@click.argument("target", metavar="TO")
def mappings_remove(community_id: str, source: str, target: str, database_url: str | None) -> None:
    """Remove the mapping FROM -> TO; the others keep their order.

    \b
    Example:
      identity-worker mappings remove acme uuid identity_group.notes
    """
    mapping = _mapping(source, target)
    write(database_url, community_id, lambda conn, cid: repo.remove_mapping(conn, cid, mapping))
