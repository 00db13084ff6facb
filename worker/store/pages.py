"""Pages of a listing (DESIGN §12, T5): a page limit, a stable cursor, an id-prefix filter.

Every listing of the store (communities, keys, custom fields, mappings, the audit trail, API
tokens) is read one page at a time: at most `limit` rows (default 100, at most 500) after a
cursor, in a fixed order. The cursor is keyset, not an offset: it holds the sort key of the
last row shown, and the next page starts strictly after it. A row inserted or removed
meanwhile never makes a page repeat or skip one of the others, and a page costs an index range
scan whatever the listing's size (T5: ≤ 100 ms at 100 000 communities).

Text sort keys compare byte-wise (`COLLATE "C"`, migration 0007's index), whatever the
database's collation, so that an id-prefix filter is an index range too. A cursor is opaque to
callers: base64url of the sort key's values as JSON; a cursor that is not one of ours is an
`InputError` naming `after`, never a database error.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Generic, Literal, TypeVar

import asyncpg

from worker.store.db import InputError

DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 500
#: What a prefix may be: as long as the longest id of any listing (community ids, kids, keys,
#: token names are at most 64 characters; a mapping's `from` at most 77).
MAX_PREFIX_CHARS: Final = 128

T = TypeVar("T")
KeyType = Literal["text", "int", "timestamptz"]


class BadPage(InputError):
    """A cursor that no listing gave, or a limit or prefix out of bounds."""


@dataclass(frozen=True, slots=True)
class PageRequest:
    """Which page: at most `limit` rows, after the cursor `after` (None: the first page), only
    those whose listing id starts with `prefix` (None or '': all)."""

    limit: int = DEFAULT_LIMIT
    after: str | None = None
    prefix: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise BadPage(f"limit must be between 1 and {MAX_LIMIT}")
        if self.prefix is not None and len(self.prefix) > MAX_PREFIX_CHARS:
            raise BadPage(f"prefix is longer than {MAX_PREFIX_CHARS} characters")
        if self.prefix is not None and not storable(self.prefix):
            raise BadPage("prefix holds a character no id can hold (NUL or a lone surrogate)")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page: its rows in the listing's order, and the cursor of the next page (None: this
    is the last one)."""

    items: list[T]
    next: str | None


@dataclass(frozen=True, slots=True)
class Order:
    """A listing's order: its sort key as SQL expressions with their types (the last one
    unique within the listing), and the expression the prefix filter applies to."""

    key: tuple[tuple[str, KeyType], ...]
    prefix_on: str
    descending: bool = False

    def conditions(self, request: PageRequest, args: list[object]) -> list[str]:
        """The SQL conditions of `request` (cursor, prefix), their values appended to `args`
        (numbered after the ones already there)."""
        found: list[str] = []
        if request.after is not None:
            values = self._decode(request.after)
            params = []
            for (_, kind), value in zip(self.key, values, strict=True):
                args.append(value)
                params.append(
                    f"${len(args)}::text::{kind}" if kind == "timestamptz" else f"${len(args)}::{kind}"
                )
            columns = ", ".join(expression for expression, _ in self.key)
            found.append(f"({columns}) {'<' if self.descending else '>'} ({', '.join(params)})")
        if request.prefix:
            args.append(request.prefix)
            found.append(f"{self.prefix_on} >= ${len(args)}::text")
            upper = _after_prefix(request.prefix)
            if upper is not None:
                args.append(upper)
                found.append(f"{self.prefix_on} < ${len(args)}::text")
        return found

    async def fetch(
        self,
        conn: asyncpg.Connection,
        select: str,
        request: PageRequest,
        equal: Sequence[tuple[str, object]] = (),
        where: Sequence[str] = (),
    ) -> list[asyncpg.Record]:
        """`select`'s rows of the page `request` asks for, with `equal`'s (column, value)
        conditions and `where`'s (SQL without parameters) too, in this order; one row more
        than the page (see `page`)."""
        args: list[object] = []
        conditions = list(where)
        for column, value in equal:
            args.append(value)
            conditions.append(f"{column} = ${len(args)}")
        conditions += self.conditions(request, args)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        args.append(request.limit + 1)
        query = f"{select} {where} ORDER BY {self.order_by()} LIMIT ${len(args)}"
        return list(await conn.fetch(query, *args))

    def order_by(self) -> str:
        direction = " DESC" if self.descending else ""
        return ", ".join(expression + direction for expression, _ in self.key)

    def page(self, rows: Sequence[T], request: PageRequest, key: Callable[[T], Sequence[object]]) -> Page[T]:
        """The page of `rows`, read with LIMIT `request.limit + 1` (one more tells there is a
        next page); `key` gives a row's sort key values."""
        if len(rows) <= request.limit:
            return Page(list(rows), None)
        items = list(rows[: request.limit])
        return Page(items, _encode(key(items[-1])))

    def _decode(self, cursor: str) -> list[object]:
        try:
            values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):  # nested too deep
            values = None
        if not isinstance(values, list) or len(values) != len(self.key):
            raise BadPage("after: not a cursor of this listing (use the `next` of the page before)")
        for (_, kind), value in zip(self.key, values, strict=True):
            wrong_type = not isinstance(value, int if kind == "int" else str) or isinstance(value, bool)
            bad_time = kind == "timestamptz" and not wrong_type and not _is_time(str(value))
            if (
                wrong_type
                or bad_time
                or (isinstance(value, str) and not storable(value))
                or _out_of_range(value)
            ):
                raise BadPage("after: not a cursor of this listing (use the `next` of the page before)")
        return values


def storable(text: str) -> bool:
    """Text PostgreSQL can hold: no NUL, no lone surrogate."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_time(text: str) -> bool:
    """A time as `_encode` writes them (asyncpg's UTC datetimes, `isoformat()`) and no other:
    `fromisoformat` also reads week dates, decimal commas and offsets PostgreSQL refuses (a
    forged cursor must be a BadPage, not a database error)."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return False
    return parsed.utcoffset() == timedelta(0) and parsed.isoformat() == text


def _out_of_range(value: object) -> bool:
    return isinstance(value, int) and not -(2**63) <= value < 2**63


def _encode(values: Sequence[object]) -> str:
    text = json.dumps(
        [v.isoformat() if hasattr(v, "isoformat") else v for v in values], separators=(",", ":")
    )
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _after_prefix(prefix: str) -> str | None:
    """The least text greater than every text that starts with `prefix`, byte-wise (C
    collation orders UTF-8 by code point); None when there is none."""
    for i in range(len(prefix) - 1, -1, -1):
        code = ord(prefix[i]) + 1
        while 0xD800 <= code <= 0xDFFF:  # no surrogate is text PostgreSQL stores
            code += 1
        if code <= 0x10FFFF:
            return prefix[:i] + chr(code)
    return None
