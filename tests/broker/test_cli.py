"""`topics create` and `run` fail-fast paths (issue 5, DESIGN §7): one line, non-zero exit."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable

import pytest

from tests.support import stack
from tests.support.worker import CLI, Store, Topics

pytestmark = pytest.mark.integration


def run_cli(*args: str, env: dict[str, str], timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout)


def topic_env(topics: Topics, bootstrap: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, **topics.env(), **extra}


def test_topics_create_creates_the_four_then_reports_them_existing(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    prefix = unique_topic("k5-cli")
    topics = Topics(f"{prefix}.raw", f"{prefix}.enriched", f"{prefix}.rejected", f"{prefix}.dlq")
    env = topic_env(topics, kafka_bootstrap)
    first = run_cli("topics", "create", "--partitions", "2", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        f"created {name} (2 partitions, replication factor 1)"
        for name in (topics.raw, topics.enriched, topics.rejected, topics.dlq)
    ]
    again = run_cli("topics", "create", env=env)
    assert again.returncode == 0
    assert again.stdout.splitlines() == [
        f"exists  {name}" for name in (topics.raw, topics.enriched, topics.rejected, topics.dlq)
    ]


def test_run_fails_fast_when_the_input_topic_does_not_exist(
    kafka_bootstrap: str, store: Store, unique_topic: Callable[[str], str]
) -> None:
    prefix = unique_topic("k5-missing")
    topics = Topics(f"{prefix}.raw", f"{prefix}.enriched", f"{prefix}.rejected", f"{prefix}.dlq")
    result = run_cli("run", env=topic_env(topics, kafka_bootstrap, DATABASE_URL=store.url))
    assert result.returncode == 3
    assert result.stderr.strip().splitlines()[-1] == (
        f"identity-worker: error: input topic {topics.raw} does not exist on {kafka_bootstrap}, or the "
        "principal may not Describe it (create it with `identity-worker topics create`; ACLs: "
        "docs/security.md#acls)"
    )
    assert "Traceback" not in result.stderr


def test_run_fails_fast_when_the_database_schema_is_missing(
    kafka_bootstrap: str, admin_database_url: str, unique_topic: Callable[[str], str]
) -> None:
    empty = stack.create_database(admin_database_url)
    try:
        prefix = unique_topic("k5-noschema")
        topics = Topics(f"{prefix}.raw", f"{prefix}.enriched", f"{prefix}.rejected", f"{prefix}.dlq")
        result = run_cli("run", env=topic_env(topics, kafka_bootstrap, DATABASE_URL=empty))
    finally:
        stack.drop_database(admin_database_url, empty)
    assert result.returncode == 3
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("identity-worker: error: configuration store at ")
    assert "migrate" in last and "Traceback" not in result.stderr


def test_run_refuses_bad_settings_with_one_line(kafka_bootstrap: str) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "IDENTITY_WORKER_BATCH_SIZE": "0"}
    env.pop("DATABASE_URL", None)
    result = run_cli("run", env=env)
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "identity-worker: error: batch_size: Input should be greater than or equal to 1"
    )
