"""The audit trail (DESIGN §10, A4): who changed what, when, before -> after, never a secret.

Every write of the configuration service and of the admin commands calls `record` inside
the transaction of the change itself, so a change and its row commit or roll back together.
A row holds the change lines the commands print (`sync.Change`): keys appear by kid,
algorithm and fingerprint, settings as `before -> after`; no line ever holds a secret.
One row per community, so that a community's trail holds its own lines only.
"""

from __future__ import annotations

import getpass
import re
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
        groups.setdefault(owner, []).append(str(change))
    # One pipelined statement for all the rows (T4: a `config apply` of 100 000 communities).
    await conn.executemany(
        "INSERT INTO audit_log (actor, action, community_id, changes) VALUES ($1, $2, $3, $4)",
        [(actor, action, owner, lines) for owner, lines in groups.items()],
    )


#: Newest first (T5); `prefix` filters the community id (the platform's view).
ORDER: Final = Order((("id", "int"),), 'community_id COLLATE "C"', descending=True)


async def list_entries(
    conn: asyncpg.Connection, page: PageRequest, community_id: str | None = None
) -> Page[AuditEntry]:
    """One page of the trail, newest first: all (platform) or one community's (T5)."""
    select = "SELECT id, at, actor, action, community_id, changes FROM audit_log"
    equal = [] if community_id is None else [("community_id", community_id)]
    rows = await ORDER.fetch(conn, select, page, equal)
    return ORDER.page([AuditEntry(**dict(r)) for r in rows], page, lambda e: (e.id,))
