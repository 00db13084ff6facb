"""`topics create` and `run`: the Kafka service commands (DESIGN §7). Wiring only.

Every option falls back to the environment (`KAFKA_BOOTSTRAP_SERVERS`, `DATABASE_URL`,
`IDENTITY_WORKER_<OPTION>`), then to the default shown by `--help`.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import click

from worker.cli.common import CliError
from worker.exitcodes import EXIT_FATAL
from worker.settings import Guarantee, SettingsError, load_settings, load_topic_names


def _topic_options(command: Any) -> Any:
    for name, env in reversed(
        [
            ("--input-topic", "INPUT_TOPIC"),
            ("--enriched-topic", "ENRICHED_TOPIC"),
            ("--rejected-topic", "REJECTED_TOPIC"),
            ("--dlq-topic", "DLQ_TOPIC"),
        ]
    ):
        command = click.option(name, help=f"[env IDENTITY_WORKER_{env}]")(command)
    for flag, help_text in reversed(KAFKA_SECURITY_FLAGS):
        env = flag[2:].upper().replace("-", "_")
        command = click.option(flag, help=f"{help_text} [env {env}]")(command)
    return click.option(
        "--bootstrap-servers", help="Kafka brokers host:port[,…] [env KAFKA_BOOTSTRAP_SERVERS]"
    )(command)


# Issue 17: Kafka's client property names (`ssl.ca.location` → --kafka-ssl-ca-location,
# KAFKA_SSL_CA_LOCATION or IDENTITY_WORKER_KAFKA_SSL_CA_LOCATION). Secrets have no flag (a command
# line is visible to every user of the machine): KAFKA_SASL_PASSWORD / KAFKA_SSL_KEY_PASSWORD or a file.
KAFKA_SECURITY_FLAGS: list[tuple[str, str]] = [
    ("--kafka-security-protocol", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL [PLAINTEXT]"),
    ("--kafka-ssl-ca-location", "PEM CA file trusted for the brokers [the system's CAs]"),
    ("--kafka-ssl-certificate-location", "mutual TLS: the client's PEM certificate"),
    ("--kafka-ssl-key-location", "mutual TLS: the client's PEM private key"),
    ("--kafka-ssl-key-password-file", "file holding the key's password (or KAFKA_SSL_KEY_PASSWORD)"),
    (
        "--kafka-ssl-endpoint-identification-algorithm",
        "https: the certificate must name the broker's host; none: skip that check [https]",
    ),
    ("--kafka-sasl-mechanism", "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER"),
    ("--kafka-sasl-username", "SASL user (or --kafka-sasl-username-file)"),
    ("--kafka-sasl-username-file", "file holding the SASL user"),
    ("--kafka-sasl-password-file", "file holding the SASL password (or KAFKA_SASL_PASSWORD)"),
    ("--kafka-sasl-oauthbearer-token-file", "OAUTHBEARER token file, re-read when it changes"),
]


@click.group("topics")
def topics() -> None:
    """Kafka topics of the worker."""


@topics.command("create")
@_topic_options
@click.option("--partitions", type=click.IntRange(1, 10_000), default=6, show_default=True)
@click.option("--replication-factor", type=click.IntRange(1, 100), default=1, show_default=True)
@click.option("--timeout", type=click.FloatRange(1, 600), default=30.0, show_default=True, help="seconds")
def topics_create(partitions: int, replication_factor: int, timeout: float, **names: str | None) -> None:
    """Create identity.raw, identity.enriched, identity.rejected and identity.dlq (names
    configurable); report the ones that already exist."""
    from worker.kafka.security import KafkaMisconfiguration
    from worker.kafka.topics import TopicError, create_topics

    try:
        settings = load_topic_names(**names)
    except SettingsError as exc:
        raise CliError(str(exc)) from None
    try:
        report = asyncio.run(
            create_topics(
                settings, partitions=partitions, replication_factor=replication_factor, timeout=timeout
            )
        )
    except (TopicError, KafkaMisconfiguration) as exc:
        raise CliError(str(exc), EXIT_FATAL) from None
    for name in report.created:
        click.echo(f"created {name} ({partitions} partitions, replication factor {replication_factor})")
    for name in report.existing:
        click.echo(f"exists  {name}")


@click.command("run")
@_topic_options
@click.option("--database-url", help="PostgreSQL DSN of the configuration store [env DATABASE_URL]")
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML configuration instead of the store (no LISTEN/NOTIFY) [env IDENTITY_WORKER_CONFIG_FILE]",
)
@click.option("--group-id", help="consumer group [env IDENTITY_WORKER_GROUP_ID; identity-worker]")
@click.option(
    "--guarantee",
    type=click.Choice([g.value for g in Guarantee]),
    help="K2 [env IDENTITY_WORKER_GUARANTEE; exactly_once]",
)
@click.option(
    "--batch-size",
    type=int,
    help="most records per batch; a batch closes early when no transaction is in flight "
    "[env IDENTITY_WORKER_BATCH_SIZE; 2000]",
)
@click.option("--batch-linger-ms", type=int, help="batch closes this long after its first record [100]")
@click.option("--max-event-bytes", type=int, help="V1 limit [env IDENTITY_WORKER_MAX_EVENT_BYTES; 65536]")
@click.option("--max-token-bytes", type=int, help="V4 limit [env IDENTITY_WORKER_MAX_TOKEN_BYTES; 8192]")
@click.option("--token-cache-size", type=int, help="C4 entries [env IDENTITY_WORKER_TOKEN_CACHE_SIZE; 65536]")
@click.option(
    "--transaction-timeout-ms", type=int, help="[env IDENTITY_WORKER_TRANSACTION_TIMEOUT_MS; 10000]"
)
@click.option("--metrics-port", type=int, help="/metrics /healthz /readyz; 0 = off [9108]")
@click.option("--metrics-host", help="[env IDENTITY_WORKER_METRICS_HOST; 127.0.0.1]")
@click.option("--processes", type=int, help="members on this machine (K7) [env IDENTITY_WORKER_PROCESSES; 1]")
@click.option("--log-level", help="debug|info|warning|error [env IDENTITY_WORKER_LOG_LEVEL; info]")
@click.option("--progress-interval", "progress_interval_seconds", type=float, help="seconds; 0 = off [5]")
def run(**flags: Any) -> None:
    """Consume raw identities, verify them and publish enriched identities, rejections or dead
    letters (exactly once by default). SIGTERM/SIGINT finish the current batch and exit 0;
    a misconfiguration (not authorized, a topic missing, ...) exits 3 with one line, nothing
    committed (docs/fault-model.md)."""
    from worker.runtime.processes import run_one, run_processes

    try:
        settings = load_settings(**flags)
    except SettingsError as exc:
        raise CliError(str(exc)) from None
    if settings.config_file is None and settings.database_url is None:
        raise CliError("set DATABASE_URL (or --database-url), or give --config FILE")
    code = run_processes(settings) if settings.processes > 1 else run_one(settings)
    sys.exit(code)


def register(root: click.Group) -> None:
    """Add `topics create` and `run` to the root command."""
    root.add_command(topics)
    root.add_command(run)
