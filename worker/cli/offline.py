"""Offline commands: `process` (JSON lines through the pipeline) and `token sign|verify`."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import click
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from worker.cli.common import fail, fail_store
from worker.core.community import Community
from worker.core.config import ConfigError
from worker.core.debugger import TokenDebug, debug_token
from worker.core.keys import (
    HMAC_SECRET,
    RSA_MIN_BITS,
    RSA_PUBLIC_KEY,
    InvalidKey,
    check_hmac_secret,
    check_kid,
    sign_token,
)
from worker.core.pipeline import DEFAULT_LIMITS, Limits, process_event
from worker.core.records import dead_letter
from worker.core.times import rfc3339_seconds
from worker.core.tokencache import TokenCache
from worker.exitcodes import EXIT_REJECTED
from worker.store.yaml_io import load_config_file


def register(root: click.Group) -> None:
    root.add_command(process)
    root.add_command(token)


class Rfc3339(click.ParamType[float]):
    """A click type for `--now` / `--received-at`: epoch seconds from an RFC 3339 time."""

    name = "RFC3339"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        try:
            return rfc3339_seconds(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


RFC3339 = Rfc3339()


def config_source_options(command: Callable[..., None]) -> Callable[..., None]:
    """--config FILE or --database-url URL: where `process` and `token verify` read communities."""
    command = click.option(
        "--database-url",
        metavar="URL",
        help="Read the configuration from PostgreSQL instead (`token verify`: default $DATABASE_URL "
        "unless --config).",
    )(command)
    return click.option(
        "--config",
        "config",
        metavar="FILE",
        help="Configuration YAML (e.g. examples/communities.yaml).",
    )(command)


def limit_options(command: Callable[..., None]) -> Callable[..., None]:
    """--max-event-bytes (V1) and --max-token-bytes (V4), defaulting to the limits `run` applies."""
    for name, default in reversed(
        [
            ("--max-event-bytes", DEFAULT_LIMITS.max_event_bytes),
            ("--max-token-bytes", DEFAULT_LIMITS.max_token_bytes),
        ]
    ):
        command = click.option(name, type=click.IntRange(1), default=default, show_default=True)(command)
    return command


def _load_communities(config: str | None, database_url: str | None) -> dict[str, Community]:
    if (config is None) == (database_url is None):
        fail("give exactly one of --config FILE or --database-url URL")
    if config is not None:
        try:
            return load_config_file(config)
        except ConfigError as exc:
            fail(
                f"{config}: {exc.problems[0]}"
                + (f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else "")
            )
    assert database_url is not None
    from worker.store.db import StoreError  # the store is only needed here
    from worker.store.loading import load_all_from_url

    try:
        return asyncio.run(load_all_from_url(database_url))
    except StoreError as exc:
        fail_store(exc)


def _lines(stream: BinaryIO) -> Iterator[bytes]:
    for line in stream:
        if line.endswith(b"\n"):
            line = line[:-1]
            if line.endswith(b"\r"):
                line = line[:-1]
        yield line


@click.command()
@config_source_options
@click.option("--now", type=RFC3339, help="Fixed processing clock (RFC 3339); default: the real clock.")
@limit_options
@click.option("--line-buffered", is_flag=True, help="Flush after every output line (for co-processes).")
def process(
    config: str | None,
    database_url: str | None,
    now: float | None,
    max_event_bytes: int,
    max_token_bytes: int,
    line_buffered: bool,
) -> None:
    """Verify raw identity events offline: JSON lines on stdin, one output record per line on stdout.

    Each input line is one raw event (DESIGN §2.1). Each output line is exactly one record, in
    input order: an enriched identity, a rejection with its reason, or (for a bug) a dead
    letter. A line that is not UTF-8 or not JSON is a malformed_event. Memory stays constant
    however long the input.

    \b
    Example:
      identity-worker process --config examples/communities.yaml --now 2026-11-24T10:00:00Z \\
          < events.jsonl > results.jsonl
    """
    communities = _load_communities(config, database_url)
    limits = Limits(max_event_bytes, max_token_bytes)
    cache = TokenCache()
    out = sys.stdout.buffer
    flush_each = line_buffered or sys.stdin.isatty()
    for line in _lines(sys.stdin.buffer):
        clock = now if now is not None else time.time()
        try:
            output = process_event(line, lookup=communities, now=clock, limits=limits, token_cache=cache)
        except Exception as exc:  # a bug: the event still gets its one record (DESIGN §2.4)
            output = dead_letter(line, exc, now=clock, source=None, attempts=1)
        out.write(output.to_json() + b"\n")
        if flush_each:
            out.flush()
    out.flush()


@click.group()
def token() -> None:
    """Make and check tokens when integrating a website."""


@token.command("sign")
@click.option("--kid", required=True, help="Key ID the community knows the key by.")
@click.option(
    "--hmac-secret",
    envvar="IDENTITY_WORKER_HMAC_SECRET",
    help=f"24 characters of 0-9a-f ({HMAC_SECRET.alg}). Also read from IDENTITY_WORKER_HMAC_SECRET, "
    "which keeps it out of the process list.",
)
@click.option(
    "--rsa-private-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"PEM file of an RSA private key ({RSA_PUBLIC_KEY.alg}).",
)
@click.option("--claims", default="{}", help='JSON object of claims, e.g. \'{"uuid": "v-1"}\'.')
@click.option("--ttl", type=click.IntRange(1), default=7200, show_default=True, help="Seconds until exp.")
@click.option("--now", type=RFC3339, help="Issue time (RFC 3339); default: the real clock.")
def sign(
    kid: str, hmac_secret: str | None, rsa_private_key: Path | None, claims: str, ttl: int, now: float | None
) -> None:
    """Print a signed identity token (typ JWT, kid, iat and exp set) for testing an integration.

    \b
    Example:
      identity-worker token sign --kid acme_2026 --hmac-secret 0123456789abcdef01234567 \\
          --claims '{"uuid": "v-42", "firstname": "Ada", "extra_values": {"customer_id": "C123456"}}'
    """
    try:
        check_kid(kid)
    except InvalidKey as exc:
        fail(f"--kid: {exc}")
    if (hmac_secret is None) == (rsa_private_key is None):
        fail("give exactly one of --hmac-secret or --rsa-private-key")
    try:
        payload = json.loads(claims)
    except ValueError:
        fail("--claims must be a JSON object")
    if not isinstance(payload, dict):
        fail("--claims must be a JSON object")
    issued = int(now if now is not None else time.time())
    payload = {**payload, "iat": payload.get("iat", issued), "exp": payload.get("exp", issued + ttl)}
    if hmac_secret is not None:
        try:
            key: Any = check_hmac_secret(hmac_secret)
        except InvalidKey as exc:
            fail(f"--hmac-secret: {exc}")
        click.echo(sign_token(payload, key, HMAC_SECRET.alg, kid))
        return
    assert rsa_private_key is not None
    click.echo(sign_token(payload, _read_private_key(rsa_private_key), RSA_PUBLIC_KEY.alg, kid))


def _read_private_key(path: Path) -> RSAPrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        fail(f"--rsa-private-key: cannot read {path}: {exc.strerror}")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        fail(f"--rsa-private-key: {path} is not an unencrypted PEM private key")
    if not isinstance(key, RSAPrivateKey):
        fail(f"--rsa-private-key: {path} is not an RSA key")
    if key.key_size < RSA_MIN_BITS:
        fail(f"--rsa-private-key: {key.key_size} bits; at least {RSA_MIN_BITS} required")
    return key


@token.command("verify")
@config_source_options
@click.option("--community", required=True, help="Community ID the token is presented to.")
@click.option("--now", type=RFC3339, help="Processing clock (RFC 3339); default: the real clock.")
@click.option("--received-at", type=RFC3339, help="When the gateway received it; default: --now.")
@limit_options
@click.argument("token_text", metavar="TOKEN")
def verify(
    config: str | None,
    database_url: str | None,
    community: str,
    now: float | None,
    received_at: float | None,
    max_event_bytes: int,
    max_token_bytes: int,
    token_text: str,
) -> None:
    """Explain, rule by rule (DESIGN §3), why TOKEN passes or fails for a community.

    The verdict is the one `process` and `run` give for a raw event carrying exactly this text
    (nothing is trimmed: a stray space or newline is part of the token), from the same code
    path; the lines are the rules that path ran, up to the one that decided (each rule code is
    defined in docs/rules.md). Put `--` before a TOKEN that starts with `-`.

    Before the rules: the header and payload decoded, and exp/nbf/iat in UTC and relative to
    the clock. After them: what agents would see (identity_group, custom_fields,
    mapping_skipped: the published record when accepted, else what the mappings would give
    once the token is fixed), then notes on the usual mistakes (L4: secret hex-decoded,
    standard base64, exp in milliseconds, too short a validity, a removed key, whitespace or
    a `Bearer ` prefix around the token). The last line is the verdict.

    Exit status 0 when the token is accepted, 1 when it is rejected, 2 for bad arguments.

    \b
    Example:
      identity-worker token verify --config examples/communities.yaml --community acme "$TOKEN"
    """
    if config is None and database_url is None:  # like `report` and `config export`
        database_url = os.environ.get("DATABASE_URL") or None
    communities = _load_communities(config, database_url)
    if communities.get(community) is None:
        fail(f"--community: {community!r} is not in the configuration")
    clock = now if now is not None else time.time()
    received = received_at if received_at is not None else clock
    limits = Limits(max_event_bytes, max_token_bytes)
    debug = debug_token(token_text, communities[community], received_at=received, now=clock, limits=limits)
    _print_debug(debug)
    explanation = debug.explanation
    if explanation.accepted:
        click.echo("accepted")
        return
    kind = "dead letter" if explanation.output.reason is None else "rejected"
    click.echo(f"{kind}: {explanation.verdict}")
    sys.exit(EXIT_REJECTED)


def _print_debug(debug: TokenDebug) -> None:
    """The decoded token and its dates, the rules run (docs/rules.md), the preview, the notes;
    the verdict line comes last (scripts read it)."""
    for name, part in (("header", debug.header), ("payload", debug.payload)):
        click.echo(
            f"{name:<8}{json.dumps(part, ensure_ascii=False) if part is not None else '(not readable)'}"
        )
    for when in debug.times:
        click.echo(f"{when.claim:<8}{when.value} = {when.utc} ({when.relative})")
    steps = debug.explanation.steps
    width = max((len(f"{s.rule} {s.title}") for s in steps), default=0) + 2
    for step in steps:
        click.echo(
            f"{'pass' if step.passed else 'FAIL'}  {f'{step.rule} {step.title}':<{width}} {step.detail}"
        )
    preview = debug.preview
    if preview is not None:
        what = "published" if preview.published else "if accepted"
        click.echo(
            f"agents  ({what}) identity_group {json.dumps(preview.identity_group, ensure_ascii=False)}"
        )
        click.echo(f"agents  ({what}) custom_fields {json.dumps(preview.custom_fields, ensure_ascii=False)}")
        click.echo(f"agents  ({what}) mapping_skipped {json.dumps(preview.mapping_skipped)}")
    for note in debug.notes:
        click.echo(f"note  {note}")
