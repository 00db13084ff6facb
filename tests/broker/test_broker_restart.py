"""The broker is stopped and restarted mid-stream (K8): no loss, no duplicate, the worker
resumes by itself, and the outage shows in /readyz and the metrics meanwhile.

Uses a private broker (never the shared one, see tests/support/private_stack.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.private_stack import PrivateBroker
from tests.support.worker import Outputs, Store, new_topics, produce, start_worker, stream_values, wait_ready

pytestmark = pytest.mark.integration


@pytest.fixture
def broker(store: Store) -> Iterator[PrivateBroker]:
    broker = PrivateBroker()
    broker.start()
    try:
        yield broker
    finally:
        broker.destroy()


async def _wait_status(worker: object, want: int, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        status, _ = await asyncio.to_thread(worker.http, "/readyz")  # type: ignore[attr-defined]
        if status == want:
            return time.monotonic() - started
        await asyncio.sleep(0.25)
    raise AssertionError(f"/readyz never answered {want} within {timeout} s")


async def test_broker_stopped_and_restarted_mid_stream_loses_nothing_and_resumes(
    broker: PrivateBroker, store: Store, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    bootstrap = broker.bootstrap
    topics = await new_topics(bootstrap, unique_topic("k5-restart"), 3)
    values = stream_values(store.acme, 6000, time.time(), unique_tokens=3000)
    worker = start_worker(
        tmp_path, "restart", bootstrap, store.url, topics, batch_size="100", retry_backoff_max_ms="2000"
    )
    try:
        await wait_ready(worker)
        inputs = await produce(bootstrap, topics.raw, [(None, v, None) for v in values[:2000]])
        async with Outputs(bootstrap, topics) as outputs:
            await outputs.wait_for(2000, 60)
        inputs += await produce(bootstrap, topics.raw, [(None, v, None) for v in values[2000:4000]])
        await asyncio.to_thread(broker.stop)  # mid-stream: the worker is busy with those 2000
        unready_after = await _wait_status(worker, 503, 30)
        _, metrics = await asyncio.to_thread(worker.http, "/metrics")
        await asyncio.sleep(3)
        await asyncio.to_thread(broker.restart)
        restarted = time.monotonic()
        ready_after = await _wait_status(worker, 200, 90)
        inputs += await produce(bootstrap, topics.raw, [(None, v, None) for v in values[4000:]])
        async with Outputs(bootstrap, topics) as outputs:
            await outputs.wait_for(len(values), 120, what="after the restart")
            caught_up = time.monotonic() - restarted
            await outputs.settle(3.0)
        assert worker.process.poll() is None, "the worker resumes by itself, it does not exit"
    finally:
        code = worker.stop()
    lost, duplicated = outputs.check_exactly_once(inputs)
    print(
        f"\nbroker restart: {len(inputs)} inputs, {lost} lost, {duplicated} duplicated; /readyz 503 after "
        f"{unready_after:.1f} s of outage, 200 again {ready_after:.1f} s after the restart; "
        f"caught up {caught_up:.1f} s after the restart"
    )
    assert (lost, duplicated) == (0, 0)
    assert code == 0, worker.tail()
    assert 'identity_worker_infrastructure_retries_total{component="kafka"' in metrics
    assert "identity_worker_kafka_up 0.0" in metrics or "identity_worker_ready 0.0" in metrics
