"""Crash: two members share a multi-partition topic; one is SIGKILLed mid-stream (K2, K5, K7),
and a third joins while the stream goes on (a rebalance among live members).

Afterwards every input has exactly one committed output: the killed member's open
transaction is aborted (its outputs and offsets vanish together) and the survivor redoes
those records from the committed offsets.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.worker import (
    Outputs,
    Store,
    WorkerProcess,
    new_topics,
    produce,
    start_worker,
    stream_values,
    wait_ready,
)

pytestmark = pytest.mark.integration

EVENTS = 20_000
PARTITIONS = 4


async def test_sigkill_of_one_member_mid_stream_loses_and_duplicates_nothing(
    kafka_bootstrap: str, store: Store, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    topics = await new_topics(kafka_bootstrap, unique_topic("k5-crash"), PARTITIONS)
    values = stream_values(store.acme, EVENTS, time.time(), unique_tokens=5000)

    def member(i: int) -> WorkerProcess:
        return start_worker(tmp_path, f"member-{i}", kafka_bootstrap, store.url, topics, batch_size="200")

    workers = [member(0), member(1)]
    try:
        async with Outputs(kafka_bootstrap, topics) as outputs:
            await asyncio.gather(*(wait_ready(w) for w in workers))
            started = time.monotonic()
            # A stream, not a backlog: the producer keeps sending while the members work.
            chunks = [values[i : i + 1000] for i in range(0, EVENTS, 1000)]
            inputs: list[tuple[int, int]] = []

            async def stream() -> None:
                for chunk in chunks:
                    items = [(f"visitor-{i % 97}".encode(), v, None) for i, v in enumerate(chunk)]
                    inputs.extend(await produce(kafka_bootstrap, topics.raw, items))
                    await asyncio.sleep(0.2)

            producing = asyncio.create_task(stream())
            kill_time = await outputs.wait_for(EVENTS // 3, 120, what="before the kill")
            workers[1].process.send_signal(signal.SIGKILL)
            killed_at = len(outputs.by_source)
            await asyncio.sleep(1.0)
            workers.append(member(2))  # a third member joins mid-stream: a rebalance of live members (K5)
            await producing
            done = await outputs.wait_for(EVENTS, 180, what="after the kill")
            await outputs.settle(3.0)
    finally:
        codes = [w.stop() for w in workers]
    lost, duplicated = outputs.check_exactly_once(inputs)
    elapsed = done - started
    print(
        f"\ncrash test (+1 member joining): {len(inputs)} inputs, "
        f"{sum(outputs.by_source.values())} committed outputs, "
        f"{lost} lost, {duplicated} duplicated; member 1 SIGKILLed after {killed_at} outputs; "
        f"{killed_at / (kill_time - started):.0f} events/s with two members before it, "
        f"{len(inputs) / elapsed:.0f} events/s overall ({elapsed:.1f} s, including the failover)"
    )
    assert len(inputs) == EVENTS
    assert (lost, duplicated) == (0, 0), workers[0].tail()
    assert codes[0] == 0 and codes[2] == 0, workers[0].tail() + workers[2].tail()
    assert codes[1] == -signal.SIGKILL
