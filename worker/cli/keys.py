"""`identity-worker keys add|list|remove`: a community's JWT verification keys (DESIGN §7, L2, L3).

Secrets are never printed: a key is shown by kid, algorithm and fingerprint. `key_options`
and `key_from_options` are also how `community add` takes a community's first key (S1).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import asyncpg
import click

from worker.cli.common import fail, read_text
from worker.cli.output import Column, print_changes, when
from worker.cli.store_session import check_community_id, list_command, on_community, run_store, valid, write
from worker.core.config import JwtKeySpec
from worker.core.keys import HMAC_SECRET, RSA_PUBLIC_KEY
from worker.store import listings
from worker.store import repository as repo
from worker.store.lifecycle import KeyInUse, KeyStillInUse, check_retirement
from worker.store.listings import KeyRow
from worker.store.pages import Page, PageRequest
from worker.store.sync import Change
from worker.store.usage import KeyUsage, key_usage


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


def _secret_from_stdin() -> str:
    """`--hmac-secret -`: one line of stdin, or a hidden prompt on a terminal."""
    if sys.stdin.isatty():
        return str(click.prompt("HMAC secret", hide_input=True, err=True)).strip()
    return sys.stdin.readline().strip()


def key_from_options(kid: str, hmac_secret: str | None, rsa_public_key: str | None) -> JwtKeySpec:
    """The key given by --hmac-secret or --rsa-public-key, validated like the YAML loader's."""
    if (hmac_secret is None) == (rsa_public_key is None):
        hmac, rsa = HMAC_SECRET.alg, RSA_PUBLIC_KEY.alg
        fail(f"give exactly one of --hmac-secret ({hmac}) or --rsa-public-key FILE ({rsa})")
    data: dict[str, Any] = {"kid": kid}
    if hmac_secret is not None:
        data["hmac_secret"] = _secret_from_stdin() if hmac_secret == "-" else hmac_secret
    else:
        assert rsa_public_key is not None
        data["rsa_public_key"] = read_text(rsa_public_key, "RSA public key file")
    return valid(JwtKeySpec, "key", data)


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
    cid = check_community_id(community_id)
    key = key_from_options(kid, hmac_secret, rsa_public_key)
    write(database_url, cid, lambda conn, cid: repo.add_key(conn, cid, key))


KeyWithUsage = tuple[KeyRow, KeyUsage | None]


async def _keys_with_usage(
    conn: asyncpg.Connection, community_id: str, page: PageRequest
) -> Page[KeyWithUsage]:
    keys = await listings.list_keys(conn, community_id, page)
    used = await key_usage(conn, community_id)
    return Page([(key, used.get(key.kid)) for key in keys.items], keys.next)


def _last_used(row: KeyWithUsage) -> str:
    used = row[1]
    return when(used.last_verified_at if used is not None else None, missing="never")


KEY_COLUMNS: list[Column[KeyWithUsage]] = [
    Column("KID", lambda r: r[0].kid),
    Column("ALG", lambda r: r[0].alg),
    Column("FINGERPRINT", lambda r: r[0].fingerprint),
    Column("CREATED", lambda r: when(r[0].created_at)),
    Column("LAST_USED", _last_used),
    Column("USES_24H", lambda r: r[1].uses_24h if r[1] is not None else 0),
]

list_command(
    keys_group,
    "keys",
    _keys_with_usage,
    KEY_COLUMNS,
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
    cid = check_community_id(community_id)

    async def remove(conn: asyncpg.Connection) -> tuple[list[Change], KeyInUse | None]:
        use = await check_retirement(conn, cid, kid) if force else None
        return await repo.remove_key(conn, cid, kid, force=force), use

    changes, use = run_store(database_url, remove)
    print_changes(changes)
    if use is not None:
        click.echo(f"forced: {KeyStillInUse(cid, kid, use).use_line}")
