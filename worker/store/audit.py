"""The audit trail (DESIGN §10, A4): who changed what, when, before -> after, never a secret.

Every write of the configuration service and of the admin commands calls `record` inside
the transaction of the change itself, so a change and its row commit or roll back together.
A row holds the change lines the commands print (`sync.Change`): keys appear by kid,
algorithm and fingerprint, settings as `before -> after`; no line ever holds a secret.
One row per community, so that a community's trail holds its own lines only; and each row
records the incarnation of its community it was written in, so that a community removed and
created again under the same id starts with an empty trail for its new owner, while the
platform still sees both (A11). Audit text never holds a raw newline or other control
character (`plain`): a value that reached a change line cannot forge a row of a listing.
"""

from __future__ import annotations

import getpass
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import asyncpg

from worker.core.contracts import COMMUNITY_ID_PATTERN
from worker.store.pages import Order, Page, PageRequest
from worker.store.sync import Change

#: Every change line names its community second: `community ID …`, `key ID/kid …`,
#: `field ID/key …`, `mapping ID: …` (worker/store/sync.py); ids hold no space, `/` or `:`.
_COMMUNITY_OF_LINE = re.compile(
    rf"^(?:community|key|field|mapping) ({COMMUNITY_ID_PATTERN[1:-1]})(?:[ /:]|$)"
)


#: Unicode categories a listing must never print raw (A11): controls (newline, escape, ...),
#: format characters (bidi overrides), surrogates, line and paragraph separators.
_UNPRINTABLE: Final = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def plain(text: str) -> str:
    """`text` with every unprintable character written as an escape (`\\n`, `\\u202e`), so
    one audit line stays one printed line whatever a stored value held (A11)."""
    # str.isprintable is false for every category of _UNPRINTABLE (and a few more): when it is
    # true, nothing needs escaping, found at C speed (T4: `config apply` of 100 000 communities
    # audits ~1 000 000 lines; the per-character check took ~4 s of them).
    if text.isprintable() or all(unicodedata.category(ch) not in _UNPRINTABLE for ch in text):
        return text
    return "".join(
        ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch) in _UNPRINTABLE else ch
        for ch in text
    )


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    community_id: str | None
    changes: list[str]


def os_actor() -> str:
    """The admin commands' actor: the operating-system user who ran them (A4)."""
    try:
        return f"os-user {getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER: still say something true
        return "os-user unknown"


def community_of(change: Change) -> str | None:
    """The community a change line is about, None for one about no community (a platform token)."""
    match = _COMMUNITY_OF_LINE.match(change.text)
    return match[1] if match else None


async def record(
    conn: asyncpg.Connection,
    actor: str,
    action: str,
    changes: Sequence[Change],
    community_id: str | None = None,
) -> None:
    """Write the audit rows of one change, in the caller's transaction; nothing for no change.

    Without `community_id` (e.g. `config apply`, which may touch several communities), the
    lines are split by the community each names: one row per community.
    """
    groups: dict[str | None, list[str]] = {}
    for change in changes:
        owner = community_id if community_id is not None else community_of(change)
        groups.setdefault(owner, []).append(plain(str(change)))
    # One pipelined statement for all the rows (T4: a `config apply` of 100 000 communities),
    # each with the incarnation its community has now (A11); none once it is removed (its
    # removal row is then the platform's to see).
    await conn.executemany(
        "INSERT INTO audit_log (actor, action, community_id, incarnation, changes) "
        "VALUES ($1, $2, $3, (SELECT incarnation FROM communities WHERE id = $3), $4)",
        [(plain(actor), plain(action), owner, lines) for owner, lines in groups.items()],
    )


#: Newest first (T5); `prefix` filters the community id (the platform's view).
ORDER: Final = Order((("id", "int"),), 'community_id COLLATE "C"', descending=True)
#: A11: a community's entries of its current incarnation only.
_CURRENT_INCARNATION: Final = (
    "incarnation = (SELECT c.incarnation FROM communities c WHERE c.id = audit_log.community_id)"
)


async def list_entries(
    conn: asyncpg.Connection,
    page: PageRequest,
    community_id: str | None = None,
    *,
    every_incarnation: bool = False,
) -> Page[AuditEntry]:
    """One page of the trail, newest first: all (platform) or one community's (T5).

    A community's entries are those of its current incarnation (A11: what its owner may
    see); `every_incarnation` (the platform's operators) adds those of earlier ones.
    """
    select = "SELECT id, at, actor, action, community_id, changes FROM audit_log"
    equal = [] if community_id is None else [("community_id", community_id)]
    where = [_CURRENT_INCARNATION] if community_id is not None and not every_incarnation else []
    rows = await ORDER.fetch(conn, select, page, equal, where)
    # Rows written before A11's escaping are escaped on the way out too.
    entries = [
        AuditEntry(
            r["id"],
            r["at"],
            plain(r["actor"]),
            plain(r["action"]),
            r["community_id"],
            [plain(line) for line in r["changes"]],
        )
        for r in rows
    ]
    return ORDER.page(entries, page, lambda e: (e.id,))
