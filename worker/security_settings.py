"""Kafka security settings (docs/security.md), part of every `KafkaSettings` (DESIGN §7).

The names are Kafka's client property names (librdkafka's, which take PEM files), upper-cased:
`security.protocol` is read from `KAFKA_SECURITY_PROTOCOL` or
`IDENTITY_WORKER_KAFKA_SECURITY_PROTOCOL`, `ssl.ca.location` from `KAFKA_SSL_CA_LOCATION`, and so
on. Secrets are `SecretStr` or a `…_FILE` path, read by `worker.kafka.security` (never here).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, cast

from pydantic import AliasChoices, AliasGenerator, FilePath, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The prefix of every setting's environment variable (`IDENTITY_WORKER_GUARANTEE`, …).
ENV_PREFIX = "IDENTITY_WORKER_"


class SecurityProtocol(enum.StrEnum):
    """Kafka's `security.protocol`: how the client talks to every listener it uses."""

    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"

    @property
    def tls(self) -> bool:
        return self in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL)

    @property
    def sasl(self) -> bool:
        return self in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL)


class SaslMechanism(enum.StrEnum):
    """Kafka's `sasl.mechanism` values aiokafka speaks (GSSAPI/Kerberos is not offered)."""

    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"
    OAUTHBEARER = "OAUTHBEARER"


_AliasFor = Callable[[str], AliasChoices]
#: The settings named for a Kafka client property (`kafka_ssl_ca_location`: `ssl.ca.location`).
KAFKA_PROPERTY_SETTINGS = ("kafka_security_", "kafka_ssl_", "kafka_sasl_")


def kafka_property_names(field: str) -> AliasChoices | None:
    """Where a setting named for a Kafka client property is read: the field name,
    `KAFKA_SSL_CA_LOCATION` and `IDENTITY_WORKER_KAFKA_SSL_CA_LOCATION` (the first one set wins).
    None for every other setting, which keeps pydantic-settings' own names."""
    if not field.startswith(KAFKA_PROPERTY_SETTINGS):
        return None
    env = field.upper()
    return AliasChoices(field, env, f"{ENV_PREFIX}{env}")


class KafkaSecurity(BaseSettings):
    """How every Kafka client of the product authenticates and encrypts (docs/security.md).

    Paths only, and secrets as `SecretStr`: the files are read by `worker.kafka.security` each
    time a client is built, so a rotated secret file applies to the next client.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="ignore",
        use_attribute_docstrings=True,  # each setting's docstring: its meaning (docs/settings.md)
        # pydantic takes a None alias ("keep the default") though its hint leaves None out.
        alias_generator=AliasGenerator(validation_alias=cast(_AliasFor, kafka_property_names)),
    )

    kafka_security_protocol: SecurityProtocol = SecurityProtocol.PLAINTEXT
    """PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."""
    # PEM CA bundle trusted for the brokers' certificates; None: the system's CAs.
    kafka_ssl_ca_location: FilePath | None = None
    """PEM CA bundle trusted for the brokers' certificates; unset: the system's CAs."""
    # Mutual TLS: the client's PEM certificate (chain) and private key, the key's password if encrypted.
    kafka_ssl_certificate_location: FilePath | None = None
    """Mutual TLS: the client's PEM certificate (chain)."""
    kafka_ssl_key_location: FilePath | None = None
    """Mutual TLS: the client's PEM private key."""
    kafka_ssl_key_password: SecretStr | None = None
    """The private key's password (a secret: no flag)."""
    kafka_ssl_key_password_file: FilePath | None = None
    """File holding the private key's password."""
    # `https` (default): the broker's certificate must name the host the client connects to;
    # `none` turns that check off (the chain is still verified).
    kafka_ssl_endpoint_identification_algorithm: str = "https"
    """https: the broker's certificate must name its host; none: skip that check (the chain is still
    verified)."""
    kafka_sasl_mechanism: SaslMechanism | None = None
    """PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER."""
    kafka_sasl_username: str | None = None
    """SASL user."""
    kafka_sasl_username_file: FilePath | None = None
    """File holding the SASL user."""
    kafka_sasl_password: SecretStr | None = None
    """SASL password (a secret: no flag)."""
    kafka_sasl_password_file: FilePath | None = None
    """File holding the SASL password."""
    # OAUTHBEARER: a file holding the access token, re-read whenever it changes.
    kafka_sasl_oauthbearer_token_file: FilePath | None = None
    """OAUTHBEARER: file holding the access token, re-read when it changes."""

    @field_validator("kafka_security_protocol", mode="before")
    @classmethod
    def _protocol_upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("kafka_sasl_mechanism", mode="before")
    @classmethod
    def _mechanism_upper(cls, value: Any) -> Any:
        return value.strip().upper().replace("_", "-") if isinstance(value, str) else value

    @field_validator("kafka_ssl_endpoint_identification_algorithm")
    @classmethod
    def _identification(cls, value: str) -> str:
        # Kafka's Java client turns the check off with an empty value; librdkafka with `none`.
        value = value.strip().lower() or "none"
        if value not in ("https", "none"):
            raise ValueError("must be https (check the broker's host name, the default) or none")
        return value

    @model_validator(mode="after")
    def _coherent_security(self) -> KafkaSecurity:
        protocol = self.kafka_security_protocol
        if not protocol.tls:
            tls_set = [name for name in _TLS_FIELDS if getattr(self, name) is not None]
            if tls_set:
                raise ValueError(f"{', '.join(tls_set)} given but kafka_security_protocol is {protocol}")
        if (self.kafka_ssl_certificate_location is None) != (self.kafka_ssl_key_location is None):
            raise ValueError(
                "mutual TLS needs both kafka_ssl_certificate_location and kafka_ssl_key_location"
            )
        _one_of(self, "kafka_ssl_key_password")
        if not protocol.sasl:
            sasl_set = [name for name in _SASL_FIELDS if getattr(self, name) is not None]
            if sasl_set:
                raise ValueError(f"{', '.join(sasl_set)} given but kafka_security_protocol is {protocol}")
            return self
        mechanism = self.kafka_sasl_mechanism
        if mechanism is None:
            raise ValueError(f"kafka_sasl_mechanism is required with {protocol}")
        if mechanism is SaslMechanism.OAUTHBEARER:
            if self.kafka_sasl_oauthbearer_token_file is None:
                raise ValueError("OAUTHBEARER needs kafka_sasl_oauthbearer_token_file")
            return self
        for name in ("kafka_sasl_username", "kafka_sasl_password"):
            if not _one_of(self, name):
                raise ValueError(f"{mechanism} needs {name} (or {name}_file)")
        return self


_TLS_FIELDS = (
    "kafka_ssl_ca_location",
    "kafka_ssl_certificate_location",
    "kafka_ssl_key_location",
    "kafka_ssl_key_password",
    "kafka_ssl_key_password_file",
)
_SASL_FIELDS = (
    "kafka_sasl_mechanism",
    "kafka_sasl_username",
    "kafka_sasl_username_file",
    "kafka_sasl_password",
    "kafka_sasl_password_file",
    "kafka_sasl_oauthbearer_token_file",
)


def _one_of(settings: KafkaSecurity, name: str) -> bool:
    """True when `name` or `name`_file is set; a ValueError when both are."""
    given = getattr(settings, name) is not None
    from_file = getattr(settings, f"{name}_file") is not None
    if given and from_file:
        raise ValueError(f"give {name} or {name}_file, not both")
    return given or from_file
