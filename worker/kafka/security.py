"""Kafka security (docs/security.md): the TLS context and SASL options of every aiokafka client, and
which start-up connection failures are misconfiguration rather than an outage (K10).

- `security_options(settings)`: the keyword arguments to spread into `AIOKafkaConsumer`,
  `AIOKafkaProducer` and `AIOKafkaAdminClient` (`security_protocol`, `ssl_context`,
  `sasl_mechanism`, `sasl_plain_username`, `sasl_plain_password`, `sasl_oauth_token_provider`).
  Secret files are read here, each time a client is built, so a rotated file applies to the
  next client; the OAUTHBEARER token file is re-read whenever it changes.
- `misconfiguration(exc)`: by exception type (and the TLS verification code), never by message
  text, the check a connection failed that retrying cannot fix: an untrusted certificate, a
  host name the certificate does not name, a refused client certificate, refused SASL
  credentials, a mechanism the listener does not offer, a denied authorization. None for
  anything else (an outage: retried, K8).
- `check_bootstrap(settings)`: one connection per bootstrap server, TLS handshake and SASL
  included, raising `KafkaMisconfiguration` with one line (which server, which protocol, which
  check) when it fails for such a reason. aiokafka's own bootstrap logs the cause and raises a
  bare `KafkaConnectionError`, which the runtime would retry until the start-up timeout.

Nothing here ever puts a password, key or token into a message: lines name settings and checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from pathlib import Path
from typing import Any, Final

from aiokafka.abc import AbstractTokenProvider
from aiokafka.conn import collect_hosts, create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    AuthenticationMethodNotSupported,
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    IllegalSaslStateError,
    KafkaConnectionError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.protocol.metadata import MetadataRequest

from worker.security_settings import KafkaSecurity, SaslMechanism, SecurityProtocol
from worker.settings import KafkaSettings, load_topic_names
from worker.tlscheck import certificate_problem

# TLS alerts a broker sends when it refuses (or misses) the client's certificate.
_CLIENT_CERTIFICATE_REFUSED: Final = frozenset(
    {
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "TLSV1_ALERT_UNKNOWN_CA",
        "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
        "SSLV3_ALERT_CERTIFICATE_EXPIRED",
        "TLSV1_ALERT_ACCESS_DENIED",
    }
)
# The peer does not speak TLS at all (a plaintext listener): the protocol setting is wrong.
_NOT_TLS: Final = frozenset({"WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "RECORD_LAYER_FAILURE"})
_SASL_REFUSED: Final = (SaslAuthenticationFailed, AuthenticationFailedError)
_SASL_UNSUPPORTED: Final = (
    UnsupportedSaslMechanismError,
    AuthenticationMethodNotSupported,
    IllegalSaslStateError,
)
_NOT_AUTHORIZED: Final = (
    TopicAuthorizationFailedError,
    GroupAuthorizationFailedError,
    ClusterAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)


class KafkaMisconfiguration(Exception):
    """Fatal (K10): the Kafka security settings cannot work as given. One line, no secret."""


# --------------------------------------------------------------------------- options


def security_options(settings: KafkaSecurity) -> dict[str, Any]:
    """The aiokafka keyword arguments for `settings`; raises KafkaMisconfiguration (a file that
    cannot be read, a key that does not match its certificate or password)."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol.value}
    if protocol.tls:
        options["ssl_context"] = ssl_context(settings)
    if protocol.sasl:
        mechanism = settings.kafka_sasl_mechanism
        assert mechanism is not None  # KafkaSecurity's validator
        options["sasl_mechanism"] = mechanism.value
        if mechanism is SaslMechanism.OAUTHBEARER:
            assert settings.kafka_sasl_oauthbearer_token_file is not None
            options["sasl_oauth_token_provider"] = FileTokenProvider(
                settings.kafka_sasl_oauthbearer_token_file
            )
        else:
            options["sasl_plain_username"] = _secret(settings, "kafka_sasl_username")
            options["sasl_plain_password"] = _secret(settings, "kafka_sasl_password")
    return options


def client_options(bootstrap_servers: str | None = None) -> dict[str, Any]:
    """`bootstrap_servers` (default: the environment's) and the security options the environment
    gives the worker: for the tools beside it (demo, bench), which make their own clients.
    Raises SettingsError or KafkaMisconfiguration."""
    settings = load_topic_names(bootstrap_servers=bootstrap_servers)
    return {"bootstrap_servers": settings.bootstrap_servers, **security_options(settings)}


def ssl_context(settings: KafkaSecurity) -> ssl.SSLContext:
    """Chain always verified (TLS 1.2+); host name checked unless identification is `none`."""
    where = "KAFKA_SSL_CA_LOCATION"
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.kafka_ssl_ca_location)
        if settings.kafka_ssl_certificate_location is not None:
            where = "KAFKA_SSL_CERTIFICATE_LOCATION / KAFKA_SSL_KEY_LOCATION"
            password = _secret(settings, "kafka_ssl_key_password")
            context.load_cert_chain(
                settings.kafka_ssl_certificate_location,
                settings.kafka_ssl_key_location,
                # A callable: OpenSSL asks only for an encrypted key, never prompts on a tty.
                password=lambda: password or "",
            )
    except (ssl.SSLError, ValueError, OSError) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        raise KafkaMisconfiguration(
            f"Kafka TLS settings: cannot load {where} ({reason}; a PEM file, "
            "and the key's password if it is encrypted, are expected)"
        ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.kafka_ssl_endpoint_identification_algorithm == "none":
        context.check_hostname = False
    return context


def _secret(settings: KafkaSecurity, name: str) -> str | None:
    """The value of setting `name`, from the environment or from the file `name`_file."""
    value = getattr(settings, name)
    if value is not None:
        return str(value.get_secret_value() if hasattr(value, "get_secret_value") else value)
    path: Path | None = getattr(settings, f"{name}_file")
    if path is None:
        return None
    return read_secret_file(path, f"{name}_file".upper())


def read_secret_file(path: Path, setting: str) -> str:
    """A secret file's text without its trailing newline (Kubernetes mounts, `echo >` files)."""
    try:
        text = path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise KafkaMisconfiguration(f"{setting} {path} cannot be read ({type(exc).__name__})") from None
    if not text:
        raise KafkaMisconfiguration(f"{setting} {path} is empty")
    return text


class FileTokenProvider(AbstractTokenProvider):  # type: ignore[misc]  # aiokafka is untyped
    """OAUTHBEARER: the access token in a file, re-read when the file changes (a sidecar or a
    Kubernetes projected token refreshes it; its mtime, size or inode moves)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._token = ""

    async def token(self) -> str:
        try:
            stat = os.stat(self.path)
        except OSError as exc:
            raise KafkaMisconfiguration(
                f"KAFKA_SASL_OAUTHBEARER_TOKEN_FILE {self.path} cannot be read ({type(exc).__name__})"
            ) from None
        stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if stamp != self._stamp:
            self._token = read_secret_file(self.path, "KAFKA_SASL_OAUTHBEARER_TOKEN_FILE")
            self._stamp = stamp
        return self._token


# --------------------------------------------------------------------- classification


def misconfiguration(exc: BaseException, settings: KafkaSecurity | None = None) -> str | None:
    """Which security check `exc` (raised while connecting or authorizing) failed, as a phrase;
    None when it is not a misconfiguration (retry it, K8). By type and TLS codes only (K10)."""
    if isinstance(exc, KafkaMisconfiguration):
        return str(exc)
    if isinstance(exc, KafkaConnectionError) and exc.__cause__ is not None:
        # A TLS 1.3 broker refuses a client certificate after the handshake: aiokafka reports the
        # closed connection, caused by the TLS alert.
        return misconfiguration(exc.__cause__, settings)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return certificate_problem(exc, "the broker", "KAFKA_SSL_CA_LOCATION")
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or ""
        if reason in _CLIENT_CERTIFICATE_REFUSED:
            return (
                f"the broker refused the client certificate ({reason}); check "
                "KAFKA_SSL_CERTIFICATE_LOCATION and that the broker trusts its CA"
            )
        if reason in _NOT_TLS:
            return f"the listener does not speak TLS ({reason}); check KAFKA_SECURITY_PROTOCOL"
        return None
    mechanism = settings.kafka_sasl_mechanism if settings is not None else None
    if isinstance(exc, _SASL_REFUSED):
        if mechanism is SaslMechanism.OAUTHBEARER:
            return "SASL OAUTHBEARER authentication failed: the broker refused the token"
        user = settings.kafka_sasl_username if settings is not None else None
        who = f" of user {user}" if user else ""
        return f"SASL {mechanism or ''} authentication{who} failed: check the username and password".replace(
            "  ", " "
        )
    if isinstance(exc, _SASL_UNSUPPORTED):
        return f"the listener does not accept SASL mechanism {mechanism} ({type(exc).__name__})"
    if isinstance(exc, _NOT_AUTHORIZED):
        return f"the principal is not authorized ({type(exc).__name__}); check the broker's ACLs"
    return None


async def check_bootstrap(settings: KafkaSettings, timeout: float | None = None) -> None:
    """Connect to each bootstrap server once (TLS and SASL included) and raise
    KafkaMisconfiguration, naming the server and the failed check, when the security settings
    are wrong. Returns quietly once one server accepts us, or when none answers (an outage:
    the caller retries). PLAINTEXT has nothing to check: no connection is made."""
    if settings.kafka_security_protocol is SecurityProtocol.PLAINTEXT:
        return
    options = security_options(settings)
    protocol = settings.kafka_security_protocol.value
    limit = timeout if timeout is not None else settings.request_timeout_ms / 1000
    for host, port, _ in collect_hosts(settings.bootstrap_servers, randomize=False):
        try:
            conn = await asyncio.wait_for(
                create_conn(
                    host,
                    port,
                    client_id=f"{settings.client_id}-check",
                    request_timeout_ms=settings.request_timeout_ms,
                    **options,
                ),
                limit,
            )
        except Exception as exc:  # classified below by type; the rest is an outage
            check = misconfiguration(exc, settings)
            if check is not None:
                raise KafkaMisconfiguration(f"Kafka bootstrap {host}:{port} ({protocol}): {check}") from None
            continue
        try:
            if settings.kafka_sasl_mechanism is SaslMechanism.OAUTHBEARER and not await _answers(conn, limit):
                raise KafkaMisconfiguration(
                    f"Kafka bootstrap {host}:{port} ({protocol}): "
                    f"{misconfiguration(SaslAuthenticationFailed(), settings)}"
                )
        finally:
            with contextlib.suppress(Exception):
                conn.close()
        return


async def _answers(conn: Any, timeout: float) -> bool:
    """Whether an authenticated connection answers a Metadata request with its brokers.

    aiokafka 0.14 ignores the broker's OAUTHBEARER error response (KIP-255: a JSON status the
    client must acknowledge) and reports success; the broker, still in SASL authentication,
    then refuses the next request ("Unexpected Kafka request … during SASL authentication")
    with an empty answer or a closed connection."""
    try:
        response = await asyncio.wait_for(conn.send(MetadataRequest([])), timeout)
    except Exception:
        return False
    return bool(response.brokers)
