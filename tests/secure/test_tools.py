"""The tools beside the worker connect the way it does: `make demo`'s script and the
benchmark's Kafka side read the same security variables, here over the secured listeners."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import stack
from tests.support.kafka import Bootstrap, worker_env
from tests.support.secure import SecureStack

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def demo_database(secure_stack: SecureStack) -> Iterator[str]:
    """The demo loads its own communities: a database of its own."""
    url = stack.create_database(secure_stack.database_url)
    yield url
    stack.drop_database(secure_stack.database_url, url)


def test_demo_runs_over_mutual_tls_and_postgres_tls(secure_stack: SecureStack, demo_database: str) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")},
        **worker_env(secure_stack.ssl),
        "DATABASE_URL": demo_database,
    }
    result = subprocess.run(
        [sys.executable, "-m", "worker.devtools.demo"], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "demo: all 9 events answered; worker exited with 0" in result.stderr


@pytest.mark.parametrize("listener", ["sasl_ssl", "ssl"])
async def test_bench_kafka_side_runs_over_a_secured_listener(
    listener: str,
    secure_stack: SecureStack,
    unique_topic: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    from kbench import kafka_io

    bootstrap: Bootstrap = getattr(secure_stack, listener)
    for name, value in bootstrap.env.items():  # the bench reads the worker's variables
        monkeypatch.setenv(name, value)
    topic = unique_topic(f"tls-bench-{listener}")
    await kafka_io.create_topics(str(bootstrap), [topic], 2)
    values = [b'{"n": %d}' % i for i in range(200)]
    await kafka_io.produce_backlog(str(bootstrap), topic, values)
    collector = kafka_io.Collector(str(bootstrap), [topic])
    await collector.start()
    try:
        collected = await collector.until(len(values), timeout=60)
    finally:
        await collector.stop()
    assert sorted(collected.received) == list(range(len(values)))
