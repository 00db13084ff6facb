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
from worker.security_settings import KafkaSecurity
from worker.settings import Guarantee, SettingsError, load_settings, load_topic_names, setting_help


def _topic_options(command: Any) -> Any:
    for name in reversed(["input_topic", "enriched_topic", "rejected_topic", "dlq_topic"]):
        command = click.option(f"--{name.replace('_', '-')}", help=setting_help(name))(command)
    for name in reversed(KAFKA_SECURITY_FLAGS):
        command = click.option(f"--{name.replace('_', '-')}", help=setting_help(name))(command)
    return click.option("--bootstrap-servers", help=setting_help("bootstrap_servers"))(command)


# docs/security.md: Kafka's client property names (`ssl.ca.location` → --kafka-ssl-ca-location,
# KAFKA_SSL_CA_LOCATION or IDENTITY_WORKER_KAFKA_SSL_CA_LOCATION). Secrets have no flag (a command
# line is visible to every user of the machine): KAFKA_SASL_PASSWORD / KAFKA_SSL_KEY_PASSWORD or a file.
KAFKA_SECURITY_FLAGS: list[str] = [
    name for name in KafkaSecurity.model_fields if not name.endswith(("_password", "_key_password"))
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


#: `run`'s flags beside the topics and Kafka security: each one setting of `Settings`, its help
#: from the model (meaning, env, default: worker.settings.setting_help); docs/settings.md lists
#: every setting, flags or not.
RUN_FLAGS: list[tuple[str, str, Any]] = [
    ("--database-url", "database_url", None),
    ("--config", "config_file", click.Path(exists=True, dir_okay=False, path_type=Path)),
    ("--group-id", "group_id", None),
    ("--guarantee", "guarantee", click.Choice([g.value for g in Guarantee])),
    ("--batch-size", "batch_size", int),
    ("--batch-linger-ms", "batch_linger_ms", int),
    ("--max-event-bytes", "max_event_bytes", int),
    ("--max-token-bytes", "max_token_bytes", int),
    ("--token-cache-size", "token_cache_size", int),
    ("--transaction-timeout-ms", "transaction_timeout_ms", int),
    ("--metrics-port", "metrics_port", int),
    ("--metrics-host", "metrics_host", None),
    ("--processes", "processes", int),
    ("--log-level", "log_level", None),
    ("--progress-interval", "progress_interval_seconds", float),
]


def _run_options(command: Any) -> Any:
    for flag, name, kind in reversed(RUN_FLAGS):
        command = click.option(flag, name, type=kind, help=setting_help(name))(command)
    return command


@click.command("run", epilog="Every setting, with or without a flag: docs/settings.md.")
@_topic_options
@_run_options
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
