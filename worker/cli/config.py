"""`identity-worker config apply|export`: the store as one YAML file (DESIGN §5, §7).

`apply` runs in one transaction, all or nothing (`--dry-run` rolls it back); `export` withholds
HMAC secrets unless asked, and writes a file readable by its owner only. Both scale with the
file (T4): `apply` writes one diff in batches and says how far it is on a long run (stderr);
`export` streams, a batch of communities at a time.
"""

from __future__ import annotations

import sys
import time
from typing import Final, TextIO

import asyncpg
import click

from worker.cli.common import fail, private_file, read_text
from worker.cli.output import print_changes, totals
from worker.cli.store_session import check_community_id, database_url_option, run_store
from worker.core.config import ConfigError
from worker.exitcodes import PROG
from worker.store import applied_texts
from worker.store import repository as repo
from worker.store.sync import Change
from worker.store.yaml_io import dump_communities, export_header

#: A run longer than this says how far it is, on stderr, at most this often (seconds).
PROGRESS_EVERY: Final = 2.0
#: What a streamed export to stdout ends with when it fails midway: a line no YAML reader
#: accepts, so an incomplete export can never be applied as if it were whole.
INCOMPLETE: Final = "%INCOMPLETE export: it failed here, see its error\n"


class _Progress:
    """`config apply: …` lines on stderr, once the run is past PROGRESS_EVERY seconds."""

    def __init__(self) -> None:
        self.started = self.said = time.monotonic()

    def say(self, text: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if now - self.started >= PROGRESS_EVERY and (force or now - self.said >= PROGRESS_EVERY):
            click.echo(f"{PROG} config apply: {text} ({now - self.started:.0f} s)", err=True)
            self.said = now

    def rows(self, done: int, total: int) -> None:
        self.say(f"{done} of {total} rows written", force=done == total)


class _Unreadable(Exception):
    """The file's own problems (ConfigError lines), met inside the apply's transaction."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("unreadable file")
        self.problems = problems


class _DryRun(Exception):
    """Rolls the transaction of `config apply --dry-run` back."""

    def __init__(self, changes: list[Change]) -> None:
        super().__init__("dry run")
        self.changes = changes


@click.group("config")
def config_group() -> None:
    """Apply a YAML configuration file to the store, or export the store as one (DESIGN §5)."""


@config_group.command("apply")
@click.argument("file", metavar="FILE")
@click.option(
    "--prune", is_flag=True, help="Also remove the communities of the store that the file does not list."
)
@click.option("--dry-run", is_flag=True, help="Print what would change; write nothing.")
@database_url_option
def config_apply(file: str, prune: bool, dry_run: bool, database_url: str | None) -> None:
    """Make the store hold FILE (`-`: stdin), in one transaction: all or nothing.

    Each community in the file ends up exactly as written: its keys, custom fields and
    mappings not in the file are removed. Communities the file does not list are left
    alone, unless --prune. Prints each change (+ added, ~ changed, - removed), then totals.

    \b
    Examples:
      identity-worker config apply examples/communities.yaml --dry-run
      identity-worker config apply examples/communities.yaml
      identity-worker config export --include-secrets > backup.yaml   # then, elsewhere:
      identity-worker config apply backup.yaml --prune
    """
    progress = _Progress()
    text = read_text(file, "configuration file")

    async def action(conn: asyncpg.Connection) -> list[Change]:
        # T4: under the apply's lock, so that what is skipped as unchanged is what is written over.
        await conn.execute("LOCK TABLE communities IN EXCLUSIVE MODE")
        try:
            reading = await applied_texts.read_file(conn, text)
        except ConfigError as exc:  # the file's problems, not the result's (run_store's ConfigError)
            raise _Unreadable(exc.problems) from None
        config = reading.config
        read, skipped = len(config.communities), len(reading.unchanged)
        progress.say(
            f"{read + skipped} communities read ({skipped} unchanged since applied, {read} validated)",
            force=True,
        )
        changes = await repo.apply_config(
            conn, config, prune=prune, progress=progress.rows, unchanged=reading.unchanged
        )
        await applied_texts.record(conn, reading.digests)
        if dry_run:
            raise _DryRun(changes)
        return changes

    try:
        changes = run_store(database_url, action)
    except _DryRun as dry:
        changes = dry.changes
    except _Unreadable as exc:
        fail(f"{file}: " + "; ".join(exc.problems))
    print_changes(changes)
    click.echo(f"{'dry run, nothing written: would apply' if dry_run else 'applied'}: {totals(changes)}")


@config_group.command("export")
@click.option("--community", "community_id", metavar="ID", help="Export this community only.")
@click.option(
    "--include-secrets",
    is_flag=True,
    help="Write HMAC secrets in clear. Without it each is a `<withheld sha256:…>` placeholder that "
    "`config apply` refuses, so the file cannot be applied by mistake.",
)
@click.option(
    "--output", "-o", metavar="FILE", help="Write to FILE (created with mode 0600) instead of stdout."
)
@database_url_option
def config_export(
    community_id: str | None, include_secrets: bool, output: str | None, database_url: str | None
) -> None:
    """Print the store's configuration as the YAML that `config apply` and `process --config` read.

    \b
    Examples:
      identity-worker config export --community acme
      identity-worker config export --include-secrets -o backup.yaml
    """
    cid = check_community_id(community_id) if community_id is not None else None

    started = False

    async def export(conn: asyncpg.Connection, out: TextIO) -> None:
        nonlocal started
        async for has_hmac, batch in repo.export_config(conn, cid):
            if not started:
                out.write(export_header(has_hmac=has_hmac, include_secrets=include_secrets, empty=not batch))
                started = True
            out.write(dump_communities(batch, include_secrets=include_secrets))

    if output is not None:
        try:
            with private_file(output) as handle:  # may hold secrets: 0600 whatever the file was before
                run_store(database_url, lambda conn: export(conn, handle), write=False)
        except OSError as exc:
            fail(f"cannot write {output}: {exc.strerror}")
        return
    try:
        run_store(database_url, lambda conn: export(conn, sys.stdout), write=False)
    except BaseException:
        if started:
            sys.stdout.write(INCOMPLETE)
        raise
