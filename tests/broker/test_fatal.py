"""A fatal misconfiguration at run time (K10): one clear line, not ready, exit non-zero, nothing
committed — never an infinite retry.

A private broker with an authorizer (the shared one has none) and an ACL, set with the Java
admin client, denying writes to the enriched topic: the worker starts, decides its first
batch, and the broker refuses the outputs with TOPIC_AUTHORIZATION_FAILED. The old runtime
retried that as an infrastructure fault forever.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.java_peer import JavaPeer
from tests.support.private_stack import PrivateBroker
from tests.support.worker import Store, new_topics, produce, start_worker, stream_values

pytestmark = pytest.mark.integration

AUTHORIZER = """authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=true"""


@pytest.fixture
def secured_broker(store: Store) -> Iterator[PrivateBroker]:
    broker = PrivateBroker()
    broker.start()
    try:
        broker.stop()
        broker.add_config(AUTHORIZER)
        broker.restart()
        yield broker
    finally:
        broker.destroy()


async def test_not_authorized_to_write_an_output_stops_the_worker_with_one_line_and_commits_nothing(
    secured_broker: PrivateBroker,
    store: Store,
    java_peer: JavaPeer,
    unique_topic: Callable[[str], str],
    tmp_path: Path,
) -> None:
    bootstrap = secured_broker.bootstrap
    topics = await new_topics(bootstrap, unique_topic("i11-fatal"), 1)
    inputs = await produce(
        bootstrap, topics.raw, [(b"k", v, None) for v in stream_values(store.acme, 5, time.time())]
    )
    java_peer.deny(bootstrap, topics.enriched, "WRITE")
    worker = start_worker(tmp_path, "fatal", bootstrap, store.url, topics)
    started = time.monotonic()
    code = _wait_exit(worker, 60)
    elapsed = time.monotonic() - started
    lines = [json.loads(line) for line in worker.log.read_text().splitlines() if line.startswith("{")]
    fatal = [line for line in lines if str(line.get("event", "")).startswith("fatal:")]
    started = next(i for i, line in enumerate(lines) if line.get("event") == "member started")
    errors = [line["event"] for line in lines[started:] if line.get("level") in ("error", "critical")]
    print(f"\nexit {code} after {elapsed:.1f} s: {fatal[0]['event'] if fatal else worker.tail()}")
    assert code == 3, worker.tail()
    assert len(fatal) == 1 and "TopicAuthorizationFailedError" in fatal[0]["event"], worker.tail()
    assert f"not authorized to Write topic {topics.enriched}" in fatal[0]["event"]
    assert errors == [fatal[0]["event"]], f"one clear line, no other error once started: {errors}"
    lag = java_peer.lag(bootstrap, topics.raw, topics.raw)
    assert lag[0][0] == -1, f"nothing committed: {lag}"
    assert len(inputs) == 5


def _wait_exit(worker: object, timeout: float) -> int:
    process = worker.process  # type: ignore[attr-defined]
    try:
        return int(process.wait(timeout))
    except Exception:
        process.kill()
        process.wait()
        raise AssertionError(f"the worker did not stop within {timeout} s:\n{worker.tail()}") from None  # type: ignore[attr-defined]
