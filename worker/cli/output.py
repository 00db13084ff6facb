"""How the commands print: tables, change lines and times, one shape for every command (DESIGN §7).

Every list command prints a table through `table` (one header row, columns two spaces apart,
trailing blanks trimmed, a sentence when empty); every write prints its `Change` lines through
`print_changes`; every time is `when`'s UTC RFC 3339 to the second.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

import click

from worker.store.pages import Page
from worker.store.sync import Change

R = TypeVar("R")


def when(value: datetime | None, *, missing: str = "-") -> str:
    """`2026-11-24T10:00:00Z` (UTC, seconds); `missing` for no time at all."""
    return missing if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Column(Generic[R]):
    """One column of a table: its header and how a row fills its cell."""

    header: str
    cell: Callable[[R], object]


def table(columns: Sequence[Column[R]], rows: Iterable[R], *, empty: str) -> None:
    """Print `rows` under the columns' headers, each column as wide as its widest cell;
    `empty` (a sentence) instead when there is no row."""
    body = [[str(column.cell(row)) for column in columns] for row in rows]
    if not body:
        click.echo(empty)
        return
    cells = [[column.header for column in columns], *body]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    for line in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def print_page(columns: Sequence[Column[R]], page: Page[R], *, empty: str) -> None:
    """`table` of one page's rows; when there are more, how to ask for them (on stderr, so
    stdout stays the table): the same command with `--after CURSOR` (T5)."""
    table(columns, page.items, empty=empty)
    if page.next is not None:
        ctx = click.get_current_context(silent=True)
        again = ctx.command_path if ctx is not None else "the same command"
        click.echo(f"more rows: {again} ... --after {page.next}", err=True)


def print_changes(changes: Sequence[Change], *, nothing: str = "no changes") -> None:
    """One line per change (`+ …` added, `~ …` changed, `- …` removed), or `nothing`."""
    if changes:  # one write: a `config apply` may print a million lines
        click.echo("\n".join(str(change) for change in changes))
    else:
        click.echo(nothing)


def totals(changes: Sequence[Change]) -> str:
    """`2 added, 1 changed, 0 removed`."""
    counts = {op: sum(1 for c in changes if c.op == op) for op in "+~-"}
    return f"{counts['+']} added, {counts['~']} changed, {counts['-']} removed"
