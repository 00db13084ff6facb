"""Connecting to the configuration store, and errors that are safe to print (DESIGN §5, §7).

PostgreSQL's own messages are never shown as they are: the detail of a constraint
violation quotes the failing row, secret included, and a connection error may quote the
URL, password included. Every failure becomes a `StoreError` whose message was written
here, naming the constraint or the kind of fault, never a value.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import asyncpg

from worker.core.keys import ALGORITHMS, KEY_KINDS, listed
from worker.tlscheck import certificate_problem

#: The channel the triggers notify with a community id, or `*` for "reload everything" (C1).
NOTIFY_CHANNEL: Final = "identity_config"
#: A payload meaning every community may have changed (a TRUNCATE).
NOTIFY_ALL: Final = "*"
DEFAULT_CONNECT_TIMEOUT: Final = 10.0
DATABASE_URL_ENV: Final = "DATABASE_URL"
MIGRATE_HINT: Final = "run `identity-worker db migrate`"


class StoreError(Exception):
    """A store failure whose message is safe to print: no secret, no password, no row.

    What a command exits with is the command's to say (`worker.cli.common.fail_store`): an
    `InputError` is the caller's mistake, every other kind is the environment's.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StoreUnavailable(StoreError):
    """PostgreSQL cannot be reached or the connection was lost (K8: retry, never a verdict)."""


class StoreMisconfigured(StoreError):
    """Fatal (K10): the URL's credentials or TLS settings cannot work (a refused login, an
    untrusted server certificate, a host name the certificate does not hold). Not retried."""


class SchemaMissing(StoreError):
    """The database has not been migrated (or is behind this release)."""


class InputError(StoreError):
    """The request itself is wrong: an unknown id, a duplicate, a value the store refuses."""


class NotFound(InputError):
    """An unknown community, key, custom field or mapping."""


class Conflict(InputError):
    """It already exists, or something else still depends on it."""


#: Each CHECK/foreign-key constraint of the migrations, as the rule it enforces (DESIGN §1).
CONSTRAINT_RULES: Final[dict[str, str]] = {
    "communities_id_format": "community id must match ^[A-Za-z0-9_-]{1,64}$",
    "communities_signed_identities_values": "signed_identities must be 'require' or 'reject'",
    "communities_min_validity_seconds_range": "min_validity_seconds must be between 0 and 31622400",
    "communities_leeway_seconds_range": "leeway_seconds must be between 0 and 3600",
    "communities_max_validity_seconds_range": (
        "max_validity_seconds must be unset or between 1 and 316224000, and at least min_validity_seconds"
    ),
    "communities_retirement_window_seconds_range": "retirement_window_seconds must be between 0 and 2592000",
    "jwt_keys_kid_format": "kid must match ^[a-z0-9_]+$ and be at most 64 characters",
    "jwt_keys_alg_values": f"alg must be {listed(ALGORITHMS)}",
    "jwt_keys_hmac_secret_format": "hmac_secret must be exactly 24 characters of 0-9a-f",
    "jwt_keys_rsa_public_key_format": "rsa_public_key must be one PEM RSA public key of at least 2048 bits",
    "jwt_keys_alg_matches_key": ", ".join(  # "HS256 needs an hmac_secret only, RS256 an rsa_public_key only"
        f"{kind.alg}{' needs' if n == 0 else ''} an {kind.name} only" for n, kind in enumerate(KEY_KINDS)
    ),
    "jwt_keys_pkey": "a key with this kid already exists in the community",
    "custom_fields_key_format": "custom field key must match ^[a-z0-9_]{1,64}$",
    "custom_fields_label_length": "custom field label must be 1-255 characters",
    "custom_fields_regex_length": "custom field regex must be at most 1024 characters",
    "custom_fields_pkey": "a custom field with this key already exists in the community",
    "mappings_position_range": "mapping position must be >= 0",
    "mappings_source_format": "mapping from must be 'uuid' or 'extra_values.<key>'",
    "mappings_target_format": "mapping to must be 'identity_group.<field>' or 'custom_fields.<key>'",
    "mappings_custom_field_declared": "a mapping to custom_fields.<key> needs that custom field declared",
    "communities_pkey": "a community with this id already exists",
    "mappings_pkey": "two mappings of a community cannot share a position",
    "jwt_keys_community_id_fkey": "the community does not exist",
    "custom_fields_community_id_fkey": "the community does not exist",
    "mappings_community_id_fkey": "the community does not exist",
    # 0002: a constraint trigger, checked at commit (S1)
    "communities_require_key": (
        "a community that requires signed identities needs at least one JWT key (S1): "
        "add a key first, or switch it to reject"
    ),
}


def database_url(given: str | None) -> str:
    """The URL from the flag, else from DATABASE_URL; an InputError when neither is set."""
    url = given or os.environ.get(DATABASE_URL_ENV)
    if not url:
        raise InputError(f"no database: give --database-url or set {DATABASE_URL_ENV}")
    return url


def address(url: str) -> str:
    """`host:port/database` of a URL, for messages. Not a redaction: it keeps only these three
    parts, so no user, password or parameter can reach a message (`core.redaction.redact_dsn`
    is the one redactor, for where the whole URL is shown)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = parts.port or 5432
    except ValueError:
        return "the given database URL"
    return f"{host}:{port}{parts.path or '/'}"


def describe(exc: BaseException) -> str:
    """A safe, one-line description of a database or network failure (for logs and errors)."""
    if isinstance(exc, asyncpg.PostgresError):
        constraint = getattr(exc, "constraint_name", None)
        what = f"{type(exc).__name__} (SQLSTATE {exc.sqlstate}"
        return f"{what}, constraint {constraint})" if constraint else f"{what})"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    if isinstance(exc, asyncpg.InterfaceError | asyncpg.InternalClientError):
        return f"{type(exc).__name__} (connection lost)"
    return type(exc).__name__


def translate(exc: BaseException, url: str | None = None) -> StoreError:
    """Turn any database-side exception into the StoreError to show (or to log)."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, asyncpg.UndefinedTableError | asyncpg.UndefinedFunctionError):
        return SchemaMissing(f"the configuration schema is missing in this database: {MIGRATE_HINT}")
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        constraint = getattr(exc, "constraint_name", None) or ""
        rule = CONSTRAINT_RULES.get(constraint)
        if isinstance(exc, asyncpg.UniqueViolationError):
            return Conflict(rule or f"refused by the database: {describe(exc)}")
        return InputError(
            f"refused by the database: {rule}" if rule else f"refused by the database: {describe(exc)}"
        )
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return StoreUnavailable(f"database {address(url) if url else ''} does not exist".replace("  ", " "))
    server = address(url) if url else "the given URL"
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError | asyncpg.InvalidPasswordError):
        return StoreMisconfigured(f"PostgreSQL at {server} refused the login ({type(exc).__name__})")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return StoreMisconfigured(
            f"PostgreSQL at {server}: {certificate_problem(exc, 'the server', 'sslrootcert')}"
        )
    where = f" at {address(url)}" if url else ""
    # Still StoreUnavailable (retried as before, K8); the message says what happened.
    if isinstance(exc, _CONNECTION_ERRORS):
        return StoreUnavailable(f"cannot reach PostgreSQL{where}: {describe(exc)}")
    if isinstance(exc, asyncpg.QueryCanceledError):
        return StoreUnavailable(
            f"PostgreSQL{where} canceled the query (a statement timeout?): {describe(exc)}"
        )
    if isinstance(exc, asyncpg.PostgresError):
        return StoreUnavailable(f"PostgreSQL{where} answered with an error: {describe(exc)}")
    return StoreUnavailable(f"unexpected failure talking to PostgreSQL{where}: {describe(exc)}")


#: The connection could not be made, or was lost (the only faults that mean "cannot reach").
_CONNECTION_ERRORS: Final = (
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)
#: What "the store cannot be reached right now" looks like (retried, never a verdict: K8).
TRANSIENT_ERRORS: Final = (*_CONNECTION_ERRORS, asyncpg.InvalidCatalogNameError, asyncpg.QueryCanceledError)


#: libpq's sslmode values, which asyncpg reads the same way.
SSL_MODES: Final = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_NOT_A_URL: Final = "the database URL is not a valid PostgreSQL URL (postgresql://USER@HOST:PORT/DATABASE)"


def check_url(url: str) -> None:
    """Refuse a URL no connection could use, before any attempt (InputError, one line).

    Every connection goes through it (`connect`: `db migrate` and every admin command), and
    `run` calls it before its first attempt, so a typo such as `sslmode=verify-fulll` is one line
    at once instead of retries until the start-up timeout (K8 is for outages, not typos). The
    line names the parameter and, for modes and paths (never secret: see core.redaction), the
    value; never the password.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a port that is not a number)
    except ValueError:
        raise InputError(_NOT_A_URL) from None
    if parts.scheme not in ("postgresql", "postgres") or (not parts.hostname and "host" not in parts.query):
        raise InputError(_NOT_A_URL)
    query = parse_qs(parts.query, keep_blank_values=True)
    for mode in query.get("sslmode", []):
        if mode not in SSL_MODES:
            raise InputError(f"the database URL's sslmode {mode!r} is not one of {', '.join(SSL_MODES)}")
    for name in ("sslrootcert", "sslcert", "sslkey"):
        for path in query.get(name, []):
            if path != "system" and not os.path.isfile(path):
                raise InputError(f"the database URL's {name} {path} is not a file that can be read")


async def connect(url: str, *, timeout: float = DEFAULT_CONNECT_TIMEOUT, **kwargs: Any) -> asyncpg.Connection:
    """Open one connection; every failure becomes a StoreError with a safe message."""
    check_url(url)
    try:
        return await asyncpg.connect(url, timeout=timeout, **kwargs)
    except ssl.SSLCertVerificationError as exc:  # a ValueError too: not "an invalid URL"
        raise translate(exc, url) from None
    except (ValueError, asyncpg.ClientConfigurationError):
        raise InputError(_NOT_A_URL) from None
    except (asyncpg.PostgresError, *TRANSIENT_ERRORS) as exc:
        raise translate(exc, url) from None
