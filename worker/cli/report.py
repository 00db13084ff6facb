"""`identity-worker report`: integration health per community over a time window (DESIGN §11, L5).

The numbers are the workers' own counts (per community, outcome, reason and minute), written
to the store every few seconds alongside key usage; see `worker.runtime.usage_recorder`.
"""

from __future__ import annotations

import re

import asyncpg
import click

from worker.cli.common import fail
from worker.cli.output import Column, table, when
from worker.cli.store_session import EXIT_CODES_READ, check_community_id, database_url_option, run_store
from worker.store.usage import HEALTH_RETENTION_DAYS, HealthRow, health_report

_DURATION = re.compile(r"^([0-9]+)([smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_SINCE_SECONDS = HEALTH_RETENTION_DAYS * 86400
NO_COMMUNITY_LABEL = "(none)"  # events of no configured community: unknown ids, unreadable events


def parse_duration(text: str) -> int:
    """`90`, `90s`, `15m`, `1h`, `7d` → seconds; one clear line otherwise."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        fail(f"--since must be a duration like 30m, 1h or 7d, got {text!r}")
    seconds = int(match[1]) * _UNIT_SECONDS[match[2]]
    if not 1 <= seconds <= MAX_SINCE_SECONDS:
        fail(f"--since must be between 1s and {HEALTH_RETENTION_DAYS}d (counts are kept that long)")
    return seconds


def _columns(rows: list[HealthRow]) -> list[Column[HealthRow]]:
    """The report's columns; SHARE is a row's part of its community's events in the window."""
    totals: dict[str, int] = {}
    for row in rows:
        totals[row.community_id] = totals.get(row.community_id, 0) + row.events
    return [
        Column("COMMUNITY", lambda r: r.community_id or NO_COMMUNITY_LABEL),
        Column("OUTCOME", lambda r: r.outcome),
        Column("REASON", lambda r: r.reason or "-"),
        Column("EVENTS", lambda r: r.events),
        Column("SHARE", lambda r: f"{100 * r.events / totals[r.community_id]:.1f}%"),
        Column("LAST_AT", lambda r: when(r.last_at)),
        Column("LAST_DETAIL", lambda r: (r.last_detail or "-").replace("\n", " ")),
    ]


@click.command("report")
@click.option("--community", "community_id", metavar="ID", help="Only this community.")
@click.option(
    "--since",
    default="1h",
    show_default=True,
    metavar="DURATION",
    help=f"The window: 30m, 1h, 7d … (at most {HEALTH_RETENTION_DAYS}d).",
)
@database_url_option
def report(community_id: str | None, since: str, database_url: str | None) -> None:
    """Integration health: each community's outcomes and rejection reasons over the window,
    with each one's share of the community's events and the last detail seen (L5).

    Counts are per minute (the minute the window starts in counts whole) and reach the store
    within a few seconds of the events (the workers' flush interval). Community `(none)` holds
    events of no configured community (unknown_community, unreadable events).

    \b
    Examples:
      identity-worker report
      identity-worker report --community acme --since 24h
    """
    seconds = parse_duration(since)
    cid = check_community_id(community_id) if community_id is not None else None

    async def fetch(conn: asyncpg.Connection) -> list[HealthRow]:
        return await health_report(conn, since_seconds=seconds, community_id=cid)

    rows = run_store(database_url, fetch, write=False)
    where = f" for community {cid}" if cid else ""
    table(_columns(rows), rows, empty=f"no events{where} in the last {since}")


def register(root: click.Group) -> None:
    report.epilog = EXIT_CODES_READ
    root.add_command(report)
