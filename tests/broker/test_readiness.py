"""/readyz stays honest through a commit that keeps failing (issue 11, K8).

Every commit is made to fail with a retriable Kafka error (raised at the committer, the
runtime's own boundary: the broker itself keeps answering, as with a partition whose leader
refuses writes while metadata and offsets still work): the producer is replaced and the
partitions rewound, again and again. A rewind (a seek) or an answered probe is no sign that
commits work: the worker must stay not ready until one succeeds — the old runtime flapped
ready/not ready. The backoff between attempts is slept outside the batch lock, so a
rebalance (which takes that lock) never waits for it. Once commits work again everything
comes out, exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from tests.support.worker import (
    Outputs,
    in_process_worker,
    new_topics,
    produce_signed,
)
from worker.runtime.checkpoint import Checkpoint

pytestmark = pytest.mark.integration


async def test_a_commit_that_keeps_failing_keeps_the_worker_not_ready(
    kafka_bootstrap: str,
    unique_topic: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topics = await new_topics(kafka_bootstrap, unique_topic("i11-ready"), 1)
    async with (
        in_process_worker(
            kafka_bootstrap,
            topics,
            retry_backoff_initial_ms="1500",
            retry_backoff_max_ms="3000",
            progress_interval_seconds="0.5",
        ) as member,
        Outputs(kafka_bootstrap, topics) as outputs,
    ):
        commit, failing = Checkpoint.commit, True

        async def commit_while_failing(checkpoint: Checkpoint, *args: Any, **kwargs: Any) -> None:
            if failing:
                raise KafkaConnectionError("the partition leader refuses writes")
            await commit(checkpoint, *args, **kwargs)

        monkeypatch.setattr(Checkpoint, "commit", commit_while_failing)
        inputs = await produce_signed(kafka_bootstrap, topics.raw, "e", 5)
        deadline = time.monotonic() + 20
        while member.metrics.transactions.labels("aborted")._value.get() < 1:
            assert time.monotonic() < deadline, "the commit never failed"
            await asyncio.sleep(0.1)
        samples = []
        marked_ok = 0
        kafka_ok = member.health.kafka_ok

        def counted_kafka_ok() -> None:
            nonlocal marked_ok
            marked_ok += 1
            kafka_ok()

        member.health.kafka_ok = counted_kafka_ok  # type: ignore[method-assign]
        lock_waits: list[float] = []

        async def take_the_batch_lock_as_a_rebalance_does() -> None:
            while True:
                asked = time.monotonic()
                async with member._lock:
                    lock_waits.append(time.monotonic() - asked)
                await asyncio.sleep(0.25)

        rebalances = asyncio.create_task(take_the_batch_lock_as_a_rebalance_does())
        for _ in range(2000):  # 10 s: several commit attempts, rewinds and health probes
            samples.append(member.health.ready())
            await asyncio.sleep(0.005)
        member.health.kafka_ok = kafka_ok  # type: ignore[method-assign]
        rebalances.cancel()
        failures = member.metrics.transactions.labels("aborted")._value.get()
        failing = False
        await outputs.wait_for(5, 30)
        await outputs.settle(1.0)
        recovered = member.health.ready()
    print(
        f"\n{failures:.0f} failed commits; meanwhile Kafka marked ok {marked_ok} times "
        f"and ready in {sum(samples)} of {len(samples)} samples; the batch lock was taken after "
        f"at most {max(lock_waits):.2f} s"
    )
    assert failures >= 3
    assert (marked_ok, sum(samples)) == (0, 0), (
        "a rewind or a probe made the worker ready while commits failed"
    )
    assert max(lock_waits) < 1.0, "the batch lock was held through a backoff (at least 1.2 s)"
    assert recovered
    assert outputs.check_exactly_once(inputs) == (0, 0)
