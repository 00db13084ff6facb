"""Settings of the Kafka worker (DESIGN §7): flags override the environment, which overrides defaults.

The environment uses the names operators already know — `KAFKA_BOOTSTRAP_SERVERS` and
`DATABASE_URL` — and `IDENTITY_WORKER_<FIELD>` for everything else (`IDENTITY_WORKER_GUARANTEE`,
`IDENTITY_WORKER_METRICS_PORT`, …). `database_url` is a `SecretStr`: it may hold a password and
is never printed or logged whole (`redacted_dsn`).

Kafka security (TLS, SASL) is `worker.security_settings.KafkaSecurity` (docs/security.md).
"""

from __future__ import annotations

import enum
import re
import socket
from pathlib import Path
from typing import Any, TypeVar

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.backoff import DEFAULT_INITIAL_MS, DEFAULT_MAX_MS
from worker.core.contracts import COMMUNITY_ID_PATTERN
from worker.core.pipeline import DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_TOKEN_BYTES, Limits
from worker.core.redaction import redact_dsn
from worker.core.tokencache import DEFAULT_MAX_ENTRIES
from worker.security_settings import ENV_PREFIX, KafkaSecurity

DEFAULT_KAFKA_BATCH_BYTES = 512 * 1024
_COMMUNITY_ID = re.compile(COMMUNITY_ID_PATTERN)


class Guarantee(enum.StrEnum):
    """K2: how outputs and input offsets are committed."""

    EXACTLY_ONCE = "exactly_once"
    AT_LEAST_ONCE = "at_least_once"


class TopicNames(BaseSettings):
    """The four topics of DESIGN §2 (shared by `topics create` and `run`)."""

    # Each setting's docstring is its meaning: `run --help` and docs/settings.md read it.
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", use_attribute_docstrings=True)

    input_topic: str = Field("identity.raw", min_length=1, max_length=249)
    """Topic of raw identity events (DESIGN §2.1)."""
    enriched_topic: str = Field("identity.enriched", min_length=1, max_length=249)
    """Topic of enriched identities (DESIGN §2.2)."""
    rejected_topic: str = Field("identity.rejected", min_length=1, max_length=249)
    """Topic of rejections (DESIGN §2.3)."""
    dlq_topic: str = Field("identity.dlq", min_length=1, max_length=249)
    """Topic of dead letters: processing bugs only (DESIGN §2.4)."""

    def all(self) -> list[str]:
        return [self.input_topic, self.enriched_topic, self.rejected_topic, self.dlq_topic]

    def outputs(self) -> list[str]:
        return [self.enriched_topic, self.rejected_topic, self.dlq_topic]


class KafkaSettings(TopicNames, KafkaSecurity):
    bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        validation_alias=AliasChoices(
            "bootstrap_servers", "KAFKA_BOOTSTRAP_SERVERS", f"{ENV_PREFIX}BOOTSTRAP_SERVERS"
        ),
        min_length=1,
    )
    """Kafka brokers, host:port[,host:port…]."""
    client_id: str = "identity-worker"
    """Kafka client id of every client the worker makes."""
    request_timeout_ms: int = Field(15_000, ge=1000, le=300_000)
    """Kafka request timeout, milliseconds."""


class Settings(KafkaSettings):
    """Everything `identity-worker run` needs. Build with `load_settings(**flags)`."""

    database_url: SecretStr | None = Field(
        None, validation_alias=AliasChoices("database_url", "DATABASE_URL", f"{ENV_PREFIX}DATABASE_URL")
    )
    """PostgreSQL URL of the configuration store; never logged whole."""
    config_file: Path | None = None
    """YAML configuration instead of PostgreSQL (DESIGN §5; no LISTEN/NOTIFY)."""
    group_id: str = Field("identity-worker", min_length=1, max_length=249)
    """Kafka consumer group shared by every worker process (K7)."""
    guarantee: Guarantee = Guarantee.EXACTLY_ONCE
    """exactly_once (transactions) or at_least_once (K2)."""
    # K4: a batch closes at batch_size records, batch_linger_ms after its first record, or as soon as
    # no transaction is in flight (runtime/collect.py). 2000: under backlog a batch takes longer to
    # decide than its predecessor takes to commit, so the commit latency is hidden (bench: +15-20 %
    # ev/s over 500, p99 at half of max unchanged); under light load batches stay small.
    batch_size: int = Field(2000, ge=1, le=100_000)
    """Most records per batch; a batch closes early when no transaction is in flight (K4)."""
    batch_linger_ms: int = Field(100, ge=0, le=60_000)
    """A batch closes this many milliseconds after its first record (K4)."""
    max_event_bytes: int = Field(DEFAULT_MAX_EVENT_BYTES, ge=64, le=16 * 1024 * 1024)
    """Largest raw event value, bytes (V1)."""
    max_token_bytes: int = Field(DEFAULT_MAX_TOKEN_BYTES, ge=64, le=1024 * 1024)
    """Largest token, bytes (V4)."""
    token_cache_size: int = Field(DEFAULT_MAX_ENTRIES, ge=1, le=10_000_000)
    """Entries of the verified-token cache (C4)."""
    config_refresh_seconds: float = Field(60.0, gt=0, le=86_400)
    """Safety-net refresh of the configuration from PostgreSQL, seconds (C1)."""
    # K2/K5: a short transaction timeout bounds how long a SIGKILLed member's open transaction
    # holds back read_committed readers (the broker aborts it after this).
    transaction_timeout_ms: int = Field(10_000, ge=1000, le=900_000)
    """Kafka transaction timeout, milliseconds: bounds how long a killed member's open transaction holds
    back read_committed readers (K2, K5)."""
    transactional_id_prefix: str = Field("identity-worker", min_length=1, max_length=120)
    """Prefix of each member's transactional id (K2)."""
    session_timeout_ms: int = Field(10_000, ge=1000, le=300_000)
    """Consumer group session timeout, milliseconds."""
    heartbeat_interval_ms: int = Field(3_000, ge=100, le=100_000)
    """Consumer heartbeat interval, milliseconds (at most a third of the session timeout)."""
    max_poll_interval_ms: int = Field(300_000, ge=1000)
    """Longest time between polls before the member leaves the group, milliseconds."""
    # K8: capped exponential backoff of infrastructure retries.
    retry_backoff_initial_ms: int = Field(DEFAULT_INITIAL_MS, ge=1, le=60_000)
    """First wait of an infrastructure retry, milliseconds (K8)."""
    retry_backoff_max_ms: int = Field(DEFAULT_MAX_MS, ge=1, le=600_000)
    """Longest wait of an infrastructure retry (capped exponential backoff), milliseconds (K8)."""
    # aiokafka's own request retries (produce, AddOffsetsToTxn, EndTxn…). Short, because the
    # common retry is CONCURRENT_TRANSACTIONS right after a commit, which clears in milliseconds:
    # every retry sleeps this long inside a batch's delay (docs/performance.md). aiokafka has no
    # exponential backoff; its retry warnings are rate-limited in the log (worker.ops.logging).
    kafka_retry_backoff_ms: int = Field(20, ge=1, le=10_000)
    """Wait between the Kafka client's own request retries, milliseconds."""
    # Largest record batch the producer builds per output partition. aiokafka sends a partition's
    # next batch only once its previous one has left, one round trip later; a batch of 2000
    # outputs over 4 partitions (~350 KB each) fits in one at 512 KiB, so no commit waits on a
    # second (bench: the worker busy 0.82-0.90 -> 0.97-0.98 of a core on repeated tokens). aiokafka
    # does not check a batch against max_request_size: batches to an output topic whose
    # max.message.bytes is smaller are closed earlier (worker.runtime.checkpoint, K9), and the
    # setting is capped under the broker's default (1 MB).
    kafka_batch_bytes: int = Field(DEFAULT_KAFKA_BATCH_BYTES, ge=16 * 1024, le=1_000_000)
    """Largest record batch the producer builds per output partition, bytes."""
    # Bugs: attempts of the per-event processor before a dead letter (DESIGN §2.4).
    max_processing_attempts: int = Field(3, ge=1, le=100)
    """Attempts at an event that raises an unexpected error before its dead letter (DESIGN §2.4)."""
    # K6: after SIGTERM the current batch gets this long to commit; then the process exits.
    shutdown_timeout_seconds: float = Field(30.0, gt=0, le=3600)
    """After SIGTERM, how long the current batch has to commit, seconds (K6)."""
    # Start-up waits this long for Kafka before failing with one line.
    startup_timeout_seconds: float = Field(60.0, gt=0, le=3600)
    """How long start-up waits for Kafka before failing with one line, seconds."""
    # L1, L5: key usage and integration health counts are written to the store every this many
    # seconds, one statement per flush; at most this many buckets wait during a store outage.
    # Off: no counts (a store the worker may only read; A/B measurements). `keys list` then
    # shows no use and `keys remove` never refuses on this worker's account.
    usage_counting: bool = True
    """Count key usage and integration health in PostgreSQL (L1, L5); false: no counts."""
    usage_flush_seconds: float = Field(5.0, gt=0, le=3600)
    """Usage and health counts are written to PostgreSQL every this many seconds (L1)."""
    usage_max_pending: int = Field(100_000, ge=100, le=10_000_000)
    """Most count buckets kept waiting during a PostgreSQL outage; beyond, counted as dropped (L1)."""
    # Communities whose events also get a community-labelled metric (comma-separated ids). Only
    # these: a label per community on every event series would be unbounded cardinality (L5).
    metrics_communities: str = ""
    """Comma-separated community ids that also get community-labelled metrics (bounded cardinality)."""
    metrics_host: str = "127.0.0.1"
    """Address of the /metrics /healthz /readyz endpoint."""
    metrics_port: int = Field(9108, ge=0, le=65_535)
    """Port of the /metrics /healthz /readyz endpoint; 0 disables it (--processes N: one port per member
    from this one)."""
    progress_interval_seconds: float = Field(5.0, ge=0)
    """Seconds between progress log lines (events/s, lag); 0 disables them."""
    processes: int = Field(1, ge=1, le=256)
    """Worker processes on this machine, one consumer group (K7)."""
    member_index: int = Field(0, ge=0)
    """Set by --processes for each child (its metrics port); not set by hand."""
    log_level: str = "info"
    """debug, info, warning, error or critical."""

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.lower()
        if level not in {"debug", "info", "warning", "error", "critical"}:
            raise ValueError("must be one of debug, info, warning, error, critical")
        return level

    @field_validator("metrics_communities")
    @classmethod
    def _community_ids(cls, value: str) -> str:
        for community_id in _split_ids(value):
            if not _COMMUNITY_ID.fullmatch(community_id):
                raise ValueError(f"{community_id!r} is not a community id ({COMMUNITY_ID_PATTERN})")
        return value

    @property
    def metrics_community_ids(self) -> frozenset[str]:
        return frozenset(_split_ids(self.metrics_communities))

    @model_validator(mode="after")
    def _coherent(self) -> Settings:
        if self.retry_backoff_max_ms < self.retry_backoff_initial_ms:
            raise ValueError("retry_backoff_max_ms must be at least retry_backoff_initial_ms")
        if self.heartbeat_interval_ms * 3 > self.session_timeout_ms:
            raise ValueError("heartbeat_interval_ms must be at most a third of session_timeout_ms")
        if self.input_topic in self.outputs():
            raise ValueError("the input topic must differ from the output topics")
        return self

    @property
    def limits(self) -> Limits:
        return Limits(max_event_bytes=self.max_event_bytes, max_token_bytes=self.max_token_bytes)

    def dsn(self) -> str | None:
        return self.database_url.get_secret_value() if self.database_url else None

    def redacted_dsn(self) -> str | None:
        dsn = self.dsn()
        return redact_dsn(dsn) if dsn else None

    def transactional_id(self) -> str:
        """K2/K5: unique per member, so two live members never fence each other."""
        import os
        import secrets

        host = socket.gethostname()[:60]
        return (
            f"{self.transactional_id_prefix}.{self.group_id}.{host}.{self.member_index}."
            f"{os.getpid()}.{secrets.token_hex(4)}"
        )

    def for_member(self, index: int) -> Settings:
        """K7: the settings of child `index` of `--processes N`: one process, its own metrics port."""
        port = self.metrics_port + index if self.metrics_port else 0
        return self.model_copy(update={"processes": 1, "member_index": index, "metrics_port": port})


def _split_ids(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class SettingsError(ValueError):
    """Invalid settings, as one line naming each field (never its value: it may be a secret)."""


def _one_line(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "settings"
        problems.append(f"{where}: {error['msg']}")
    return "; ".join(problems)


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def _load(kind: type[SettingsT], overrides: dict[str, Any]) -> SettingsT:
    """Environment + `overrides` (flags; None means "not given")."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return kind(**given)
    except ValidationError as exc:
        raise SettingsError(_one_line(exc)) from None


def load_settings(**overrides: Any) -> Settings:
    return _load(Settings, overrides)


def load_topic_names(**overrides: Any) -> KafkaSettings:
    return _load(KafkaSettings, overrides)


def env_names(name: str) -> list[str]:
    """The environment variables setting `name` of `Settings` is read from, first one first
    (`KAFKA_BOOTSTRAP_SERVERS`, `IDENTITY_WORKER_BOOTSTRAP_SERVERS`; `IDENTITY_WORKER_GROUP_ID`)."""
    alias = Settings.model_fields[name].validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices if choice != name]
    return [f"{ENV_PREFIX}{name.upper()}"]


def default_text(name: str) -> str | None:
    """Setting `name`'s default as text; None when it is unset by default."""
    default = Settings.model_fields[name].default
    if isinstance(default, enum.Enum):
        default = default.value
    return None if default is None or default == "" else str(default)


def setting_help(name: str) -> str:
    """A flag's help from the model (the settings' docstrings), as docs/settings.md has it:
    meaning, first environment variable, default."""
    field = Settings.model_fields[name]
    return f"{field.description} [env {env_names(name)[0]}; default {default_text(name) or 'unset'}]"
