"""Store administration: `db migrate`, `community`, `keys`, `fields`, `mappings`, `config` (DESIGN §7).

Every value is validated by the models the YAML loader uses (`worker.core.config`), before
any connection is opened, and every write runs in one transaction: a refused command
changes nothing. Secrets are never printed: keys are shown by kid, algorithm and
fingerprint.

Exit codes: 0 done; 2 the input is wrong (a bad value, an unknown community/kid/field/
mapping, something that already exists: fix the command); 1 the environment failed (the
database cannot be reached, its schema is missing or outdated: fix the setup, retry).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import click

from worker.cli.common import fail, write_private
from worker.core.config import (
    CommunitySpec,
    ConfigError,
    CustomFieldSpec,
    JwtKeySpec,
    MappingSpec,
    SpecT,
    lacks_required_key,
    parse_yaml,
    validate_spec,
)
from worker.core.contracts import Mode
from worker.core.keys import HMAC_SECRET, RSA_PUBLIC_KEY
from worker.store import audit
from worker.store import repository as repo
from worker.store.db import TRANSIENT_ERRORS, StoreError, connect, translate
from worker.store.db import database_url as resolve_url
from worker.store.lifecycle import KeyInUse, KeyStillInUse, check_retirement
from worker.store.migrate import LATEST_VERSION, check_schema, migrate
from worker.store.sync import Change
from worker.store.usage import KeyUsage, key_usage
from worker.store.yaml_io import dump_config, refuse_withheld_secrets

T = TypeVar("T")
MODES = "|".join(m.value for m in Mode)

database_url_option = click.option(
    "--database-url",
    metavar="URL",
    help="PostgreSQL URL, e.g. postgresql://identity@127.0.0.1:5432/identity  [default: $DATABASE_URL]",
)


def on_community(command: Callable[..., None]) -> Callable[..., None]:
    """COMMUNITY as the first argument, and --database-url."""
    return click.argument("community_id", metavar="COMMUNITY")(database_url_option(command))


class _DryRun(Exception):
    """Rolls the transaction of `config apply --dry-run` back."""

    def __init__(self, changes: list[Change]) -> None:
        super().__init__("dry run")
        self.changes = changes


def _run(
    url: str | None,
    action: Callable[[asyncpg.Connection], Awaitable[T]],
    *,
    write: bool = True,
    needs_schema: bool = True,
) -> T:
    """Connect, check the schema, run `action` (in one transaction when it writes)."""
    try:
        dsn = resolve_url(url)
    except StoreError as exc:
        fail(exc.message, exc.exit_code)

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
        fail(exc.message, exc.exit_code)
    except (asyncpg.PostgresError, *TRANSIENT_ERRORS) as exc:
        error = translate(exc, dsn)
        fail(error.message, error.exit_code)


def _command_name() -> str:
    """`keys add`, `config apply`, …: the audit trail's `action` for the command running."""
    ctx = click.get_current_context(silent=True)
    return ctx.command_path.partition(" ")[2] if ctx is not None else "identity-worker"


def _valid(model: type[SpecT], what: str, data: dict[str, Any], *, s1: bool = True) -> SpecT:
    """Validate with the YAML loader's model; one line naming every problem, never a value.
    `s1=False`: the caller refuses a community without its required key itself (S1)."""
    try:
        return validate_spec(model, data, s1=s1)
    except ConfigError as exc:
        fail(f"invalid {what}: " + "; ".join(exc.problems))


def _community_id(value: str) -> str:
    return _valid(CommunitySpec, "community", {"id": value}, s1=False).id  # the id alone


def _print_changes(changes: Sequence[Change], *, nothing: str = "no changes") -> None:
    for change in changes:
        click.echo(str(change))
    if not changes:
        click.echo(nothing)


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, empty: str) -> None:
    if not rows:
        click.echo(empty)
        return
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _read_text(path: str, what: str) -> str:
    """A file's text, or stdin for `-`."""
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        fail(f"cannot read {what} {path}: {exc.strerror}")
    except UnicodeDecodeError:
        fail(f"{what} {path} is not UTF-8 text")


def _write(
    url: str | None, community_id: str, op: Callable[[asyncpg.Connection, str], Awaitable[list[Change]]]
) -> None:
    """Run one change of one community in a transaction and print what changed."""
    cid = _community_id(community_id)
    _print_changes(_run(url, lambda conn: op(conn, cid)))


def _list_command(
    group: click.Group,
    what: str,
    fetch: Callable[[asyncpg.Connection, str], Awaitable[Sequence[Any]]],
    headers: Sequence[str],
    cells: Callable[[Any], Sequence[object]],
    doc: str,
) -> None:
    """Register `GROUP list COMMUNITY`: a table of one community's keys, fields or mappings."""

    @group.command("list", help=doc)
    @on_community
    def command(community_id: str, database_url: str | None) -> None:
        cid = _community_id(community_id)
        rows = _run(database_url, lambda conn: fetch(conn, cid), write=False)
        _table(headers, [cells(r) for r in rows], empty=f"community {cid} has no {what}")


def _secret_from_stdin() -> str:
    """`--hmac-secret -`: one line of stdin, or a hidden prompt on a terminal."""
    if sys.stdin.isatty():
        return str(click.prompt("HMAC secret", hide_input=True, err=True)).strip()
    return sys.stdin.readline().strip()


EXIT_CODES = "Exit status: 0 done; 2 wrong input (nothing changed); 1 database unreachable or schema missing."


# ---------------------------------------------------------------- db


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

    applied = _run(database_url, action, write=False, needs_schema=False)
    for line in applied:
        click.echo(line)
    click.echo(f"schema is at version {LATEST_VERSION}" + ("" if applied else " (nothing to do)"))


# ---------------------------------------------------------------- community


@click.group("community")
def community_group() -> None:
    """Add, change, list and remove communities (one per customer website)."""


def _settings(
    mode: str | None,
    min_validity: int | None,
    leeway: int | None,
    retirement_window: int | None = None,
) -> dict[str, Any]:
    given = {
        "signed_identities": mode,
        "min_validity_seconds": min_validity,
        "leeway_seconds": leeway,
        "retirement_window_seconds": retirement_window,
    }
    return {name: value for name, value in given.items() if value is not None}


mode_option = click.option(
    "--mode", metavar=MODES, help="require: only signed identities (default); reject: only unsigned ones."
)
min_validity_option = click.option(
    "--min-validity-seconds",
    type=int,
    metavar="N",
    help="A token must stay valid this long after the event (0-31622400; default 3600).",
)
leeway_option = click.option(
    "--leeway-seconds", type=int, metavar="N", help="Clock skew allowed on exp/nbf/iat (0-3600; default 10)."
)
max_validity_option = click.option(
    "--max-validity-seconds",
    metavar="N|unset",
    help="Refuse a token whose exp lies more than N s after the event (expiry_too_far, V9; "
    "1-316224000, at least the minimum validity); `unset`: no cap (the default).",
)
retirement_option = click.option(
    "--retirement-window-seconds",
    type=int,
    metavar="N",
    help="`keys remove` refuses a key that verified a token this recently, unless --force "
    "(L3; 0-2592000, 0 never refuses; default 86400).",
)


def _max_validity(value: str | None) -> dict[str, Any]:
    """`--max-validity-seconds`: a number, or `unset` (no cap); nothing when not given."""
    if value is None:
        return {}
    if value == "unset":
        return {"max_validity_seconds": None}
    try:
        return {"max_validity_seconds": int(value)}
    except ValueError:
        fail("--max-validity-seconds must be a whole number of seconds or `unset`")


def key_options(command: Callable[..., None]) -> Callable[..., None]:
    """--hmac-secret and --rsa-public-key: the one key a command writes (exactly one of them)."""
    command = click.option(
        "--rsa-public-key",
        metavar="FILE",
        help=f"{RSA_PUBLIC_KEY.alg}: a PEM file with {RSA_PUBLIC_KEY.rule} (`-` reads stdin). "
        "A private key is refused.",
    )(command)
    return click.option(
        "--hmac-secret",
        metavar="SECRET",
        help=f"{HMAC_SECRET.alg}: {HMAC_SECRET.rule}. "
        "`-` reads it from stdin, which keeps it out of the process list and shell history.",
    )(command)


def _key(kid: str, hmac_secret: str | None, rsa_public_key: str | None) -> JwtKeySpec:
    """The key given by --hmac-secret or --rsa-public-key, validated like the YAML loader's."""
    if (hmac_secret is None) == (rsa_public_key is None):
        hmac, rsa = HMAC_SECRET.alg, RSA_PUBLIC_KEY.alg
        fail(f"give exactly one of --hmac-secret ({hmac}) or --rsa-public-key FILE ({rsa})")
    data: dict[str, Any] = {"kid": kid}
    if hmac_secret is not None:
        data["hmac_secret"] = _secret_from_stdin() if hmac_secret == "-" else hmac_secret
    else:
        assert rsa_public_key is not None
        data["rsa_public_key"] = _read_text(rsa_public_key, "RSA public key file")
    return _valid(JwtKeySpec, "key", data)


@community_group.command("add")
@click.argument("community_id", metavar="ID")
@mode_option
@min_validity_option
@leeway_option
@max_validity_option
@retirement_option
@click.option("--kid", help="Key ID of the community's first key (with --hmac-secret or --rsa-public-key).")
@key_options
@database_url_option
def community_add(
    community_id: str,
    mode: str | None,
    min_validity_seconds: int | None,
    leeway_seconds: int | None,
    max_validity_seconds: str | None,
    retirement_window_seconds: int | None,
    kid: str | None,
    hmac_secret: str | None,
    rsa_public_key: str | None,
    database_url: str | None,
) -> None:
    """Add a community. In require mode (the default) it needs its first key, given here (S1):
    --kid with --hmac-secret or --rsa-public-key. In reject mode it needs none.

    \b
    Examples:
      printf '%s' 0123456789abcdef01234567 |
          identity-worker community add acme --kid acme_2026 --hmac-secret -
      identity-worker community add acme --kid acme_rsa --rsa-public-key acme_public.pem
      identity-worker community add acme-shop --mode reject --leeway-seconds 30
    """
    keys: list[JwtKeySpec] = []
    if kid is not None or hmac_secret is not None or rsa_public_key is not None:
        if kid is None:
            fail("--kid: give the key ID of the first key, with --hmac-secret or --rsa-public-key")
        keys.append(_key(kid, hmac_secret, rsa_public_key))
    settings = _settings(mode, min_validity_seconds, leeway_seconds, retirement_window_seconds)
    data = {"id": community_id, **settings, **_max_validity(max_validity_seconds), "jwt_keys": keys}
    spec = _valid(CommunitySpec, "community", data, s1=False)
    if lacks_required_key(spec):
        fail(
            f"community {spec.id} would require signed identities with no key (S1): give its first key "
            "(--kid KID with --hmac-secret SECRET or --rsa-public-key FILE), or add it with --mode reject"
        )
    _print_changes(_run(database_url, lambda conn: repo.add_community(conn, spec)))


def _update(community_id: str, database_url: str | None, settings: dict[str, Any]) -> None:
    # The values alone, before connecting; the cross-checks (max >= min validity) run on the
    # whole stored community, so this one assumes the loosest minimum.
    loosest = {"id": _community_id(community_id), "min_validity_seconds": 0}
    _valid(CommunitySpec, "community", {**loosest, **settings}, s1=False)
    _write(database_url, community_id, lambda conn, cid: repo.update_community(conn, cid, settings))


@community_group.command("set-mode")
@click.argument("community_id", metavar="ID")
@click.argument("mode", metavar=MODES)
@database_url_option
def community_set_mode(community_id: str, mode: str, database_url: str | None) -> None:
    """Set whether a community requires signed identities (require) or refuses them (reject).

    A community requires signed identities only once it has a key (S1). Running workers
    follow within a second (C2).

    \b
    Example:
      identity-worker community set-mode acme reject
    """
    _update(community_id, database_url, _settings(mode, None, None))


@community_group.command("set")
@click.argument("community_id", metavar="ID")
@mode_option
@min_validity_option
@leeway_option
@max_validity_option
@retirement_option
@database_url_option
def community_set(
    community_id: str,
    mode: str | None,
    min_validity_seconds: int | None,
    leeway_seconds: int | None,
    max_validity_seconds: str | None,
    retirement_window_seconds: int | None,
    database_url: str | None,
) -> None:
    """Change a community's settings; the options not given keep their value.

    \b
    Examples:
      identity-worker community set acme --min-validity-seconds 1800 --leeway-seconds 5
      identity-worker community set acme --max-validity-seconds 86400 --retirement-window-seconds 604800
      identity-worker community set acme --max-validity-seconds unset
    """
    settings = _settings(mode, min_validity_seconds, leeway_seconds, retirement_window_seconds)
    settings.update(_max_validity(max_validity_seconds))
    if not settings:
        fail(
            "nothing to change: give --mode, --min-validity-seconds, --leeway-seconds, "
            "--max-validity-seconds or --retirement-window-seconds"
        )
    _update(community_id, database_url, settings)


@community_group.command("list")
@database_url_option
def community_list(database_url: str | None) -> None:
    """List communities with their settings and how many keys, fields and mappings they have.

    \b
    Example:
      identity-worker community list
    """
    rows = _run(database_url, repo.list_communities, write=False)
    _table(
        (
            "ID",
            "MODE",
            "MIN_VALIDITY_S",
            "LEEWAY_S",
            "MAX_VALIDITY_S",
            "RETIREMENT_S",
            "KEYS",
            "FIELDS",
            "MAPPINGS",
            "CREATED",
        ),
        [
            (
                r.id,
                r.signed_identities,
                r.min_validity_seconds,
                r.leeway_seconds,
                "-" if r.max_validity_seconds is None else r.max_validity_seconds,
                r.retirement_window_seconds,
                r.keys,
                r.custom_fields,
                r.mappings,
                _when(r.created_at),
            )
            for r in rows
        ],
        empty="no communities",
    )


@community_group.command("remove")
@click.argument("community_id", metavar="ID")
@database_url_option
def community_remove(community_id: str, database_url: str | None) -> None:
    """Remove a community with all its keys, fields and mappings. Its events are refused
    with unknown_community from then on.

    \b
    Example:
      identity-worker community remove acme
    """
    _write(database_url, community_id, repo.remove_community)


# ---------------------------------------------------------------- keys


@click.group("keys")
def keys_group() -> None:
    """Add, list and remove a community's JWT verification keys.

    \b
    Rotation without downtime:
      1. identity-worker keys add acme acme_2027 --hmac-secret -   (secret on stdin)
      2. move the website to sign with kid acme_2027
      3. identity-worker keys remove acme acme_2026
    Running workers follow each step within a second (C2).
    """


@keys_group.command("add")
@on_community
@click.argument("kid")
@key_options
def keys_add(
    community_id: str, kid: str, hmac_secret: str | None, rsa_public_key: str | None, database_url: str | None
) -> None:
    """Add a verification key under KID (^[a-z0-9_]+$, at most 64 characters).

    Give exactly one of --hmac-secret or --rsa-public-key. The secret is never printed back:
    the key is shown by kid, algorithm and fingerprint.

    \b
    Examples:
      printf '%s' 0123456789abcdef01234567 | identity-worker keys add acme acme_2026 --hmac-secret -
      identity-worker keys add acme acme_rsa --rsa-public-key acme_public.pem
    """
    cid = _community_id(community_id)
    key = _key(kid, hmac_secret, rsa_public_key)
    _write(database_url, cid, lambda conn, cid: repo.add_key(conn, cid, key))


async def _keys_with_usage(conn: asyncpg.Connection, community_id: str) -> list[tuple[Any, KeyUsage | None]]:
    keys = await repo.list_keys(conn, community_id)
    used = await key_usage(conn, community_id)
    return [(key, used.get(key.kid)) for key in keys]


def _key_cells(row: tuple[Any, KeyUsage | None]) -> Sequence[object]:
    key, used = row
    last = used.last_verified_at if used is not None else None
    return (
        key.kid,
        key.alg,
        key.fingerprint,
        _when(key.created_at),
        _when(last) if last is not None else "never",
        used.uses_24h if used is not None else 0,
    )


_list_command(
    keys_group,
    "keys",
    _keys_with_usage,
    ("KID", "ALG", "FINGERPRINT", "CREATED", "LAST_USED", "USES_24H"),
    _key_cells,
    """List a community's keys: kid, algorithm, fingerprint, created, when it last verified a
    token and how many it verified in the last 24 h (L2; workers write their counts every few
    seconds). Never the secret.

    \b
    Example:
      identity-worker keys list acme
    """,
)


@keys_group.command("remove")
@on_community
@click.argument("kid")
@click.option(
    "--force", is_flag=True, help="Remove it even if it verified a token within the retirement window."
)
def keys_remove(community_id: str, kid: str, force: bool, database_url: str | None) -> None:
    """Remove a key: tokens signed with it are refused (unknown_kid, "key 'KID' was removed on …")
    within a second (C2). The last key of a community that requires signed identities stays
    (S1): add its new key first, or switch the community to reject.

    Refused (exit 2) while the key verified a token within the community's retirement window
    (`community set --retirement-window-seconds`, default 24 h, L3), unless --force.

    \b
    Example:
      identity-worker keys remove acme acme_2025
    """
    cid = _community_id(community_id)

    async def remove(conn: asyncpg.Connection) -> tuple[list[Change], KeyInUse | None]:
        use = await check_retirement(conn, cid, kid) if force else None
        return await repo.remove_key(conn, cid, kid, force=force), use

    changes, use = _run(database_url, remove)
    _print_changes(changes)
    if use is not None:
        click.echo(f"forced: {KeyStillInUse(cid, kid, use).use_line}")


# ---------------------------------------------------------------- fields


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
    field = _valid(CustomFieldSpec, "custom field", data)
    _write(database_url, community_id, lambda conn, cid: repo.add_field(conn, cid, field))


_list_command(
    fields_group,
    "custom fields",
    repo.list_fields,
    ("KEY", "LABEL", "REGEX", "CREATED"),
    lambda r: (r.key, r.label, r.regex if r.regex is not None else "-", _when(r.created_at)),
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
    _write(database_url, community_id, lambda conn, cid: repo.remove_field(conn, cid, key))


# ---------------------------------------------------------------- mappings


@click.group("mappings")
def mappings_group() -> None:
    """Add, list and remove a community's extra-value mappings (applied in order, M2)."""


def _mapping(source: str, target: str) -> MappingSpec:
    return _valid(MappingSpec, "mapping", {"from": source, "to": target})


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
    _write(database_url, community_id, lambda conn, cid: repo.add_mapping(conn, cid, mapping))


_list_command(
    mappings_group,
    "mappings",
    repo.list_mappings,
    ("#", "FROM", "TO", "CREATED"),
    lambda r: (r.position, r.source, r.target, _when(r.created_at)),
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
    _write(database_url, community_id, lambda conn, cid: repo.remove_mapping(conn, cid, mapping))


# ---------------------------------------------------------------- config


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
      identity-worker config apply communities.yaml --dry-run
      identity-worker config apply communities.yaml
      identity-worker config export --include-secrets > backup.yaml   # then, elsewhere:
      identity-worker config apply backup.yaml --prune
    """
    text = _read_text(file, "configuration file")
    try:
        refuse_withheld_secrets(text)
        config = parse_yaml(text)
    except ConfigError as exc:
        fail(f"{file}: " + "; ".join(exc.problems))

    async def action(conn: asyncpg.Connection) -> list[Change]:
        changes = await repo.apply_config(conn, config, prune=prune)
        if dry_run:
            raise _DryRun(changes)
        return changes

    try:
        changes = _run(database_url, action)
    except _DryRun as dry:
        changes = dry.changes
    _print_changes(changes)
    counts = {op: sum(1 for c in changes if c.op == op) for op in "+~-"}
    click.echo(
        f"{'dry run, nothing written: would apply' if dry_run else 'applied'}: "
        f"{counts['+']} added, {counts['~']} changed, {counts['-']} removed"
    )


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
    cid = _community_id(community_id) if community_id is not None else None
    config = _run(database_url, lambda conn: repo.export_config(conn, cid), write=False)
    text = dump_config(config, include_secrets=include_secrets)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        write_private(output, text)  # may hold secrets: 0600 whatever the file was before
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror}")


def register(root: click.Group) -> None:
    """Add the store administration commands to the root command."""
    for group in (db_group, community_group, keys_group, fields_group, mappings_group, config_group):
        group.epilog = EXIT_CODES
        for command in group.commands.values():
            command.epilog = EXIT_CODES
        root.add_command(group)
