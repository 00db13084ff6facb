"""The worker over secured listeners: the same end-to-end and key-rotation tests as
tests/broker, with the worker, its admin client and the test's own clients all speaking SASL_SSL
(SCRAM-SHA-512) or mutual TLS, and PostgreSQL over verify-full TLS with a client certificate
(the store, its LISTEN connection and the admin commands). `topics create` over both listeners.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.broker.test_end_to_end import (
    test_every_outcome_and_reason_reaches_its_topic_with_key_headers_and_order as end_to_end,
)
from tests.broker.test_key_rotation import (
    test_removing_a_key_turns_its_tokens_into_unknown_kid_within_a_second as key_rotation,
)
from tests.support.kafka import worker_env
from tests.support.secure import SecureStack
from tests.support.worker import CLI, Store, new_topics, start_worker, wait_ready
from worker.kafka.topics import existing_topics
from worker.settings import load_topic_names

pytestmark = pytest.mark.integration
LISTENERS = ["sasl_ssl", "ssl"]


#: tests/broker's flows, each run again over every secured listener.
FLOWS = {"end_to_end": end_to_end, "key_rotation": key_rotation}


@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize("listener", LISTENERS)
async def test_broker_flows_over_a_secured_listener(
    flow: str,
    listener: str,
    secure_stack: SecureStack,
    secure_store: Store,
    unique_topic: Callable[[str], str],
    tmp_path: Path,
) -> None:
    await FLOWS[flow](getattr(secure_stack, listener), secure_store, unique_topic, tmp_path)


@pytest.mark.parametrize("listener", LISTENERS)
async def test_topics_create_over_a_secured_listener(
    listener: str, secure_stack: SecureStack, unique_topic: Callable[[str], str]
) -> None:
    bootstrap = getattr(secure_stack, listener)
    prefix = unique_topic(f"tls-topics-{listener}")
    names = {flag: f"{prefix}.{flag}" for flag in ("input", "enriched", "rejected", "dlq")}
    flags = [arg for flag, name in names.items() for arg in (f"--{flag}-topic", name)]
    env = {**os.environ, **worker_env(bootstrap)}
    result = subprocess.run(
        [*CLI, "topics", "create", "--partitions", "2", *flags], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("created ") == 4, result.stdout
    # Seen from the broker's plain listener: they exist, with 2 partitions each.
    found = await existing_topics(
        load_topic_names(bootstrap_servers=secure_stack.plain), list(names.values())
    )
    assert {name: facts.partitions for name, facts in found.items()} == {name: 2 for name in names.values()}


async def test_no_secret_reaches_logs_metrics_or_help(
    secure_stack: SecureStack, secure_store: Store, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    """The SASL password and the client key's password appear nowhere the worker
    writes, even at debug level; `--help` shows no environment value."""
    secrets = [
        (secure_stack.tls / "sasl.password").read_text().strip(),
        (secure_stack.tls / "kafka-client.key.password").read_text().strip(),
    ]
    bootstrap = secure_stack.sasl_ssl
    topics = await new_topics(bootstrap, unique_topic("tls-secrets"), 1)
    worker = start_worker(tmp_path, "secrets", bootstrap, secure_store.url, topics, log_level="debug")
    try:
        await wait_ready(worker)
        status, metrics = await asyncio.to_thread(worker.http, "/metrics")
    finally:
        assert worker.stop() == 0, worker.tail()
    assert status == 200
    helps = subprocess.run(
        [*CLI, "run", "--help"],
        env={**os.environ, "KAFKA_SASL_PASSWORD": secrets[0], "KAFKA_SSL_KEY_PASSWORD": secrets[1]},
        capture_output=True,
        text=True,
    ).stdout
    logs = worker.log.read_text()
    assert '"level": "debug"' in logs
    for secret in secrets:
        assert secret not in logs and secret not in metrics and secret not in helps
