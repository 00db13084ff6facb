"""`--processes N` (K7) and the at_least_once guarantee (K2), through the real broker."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.worker import (
    Outputs,
    Store,
    Topics,
    WorkerProcess,
    new_topics,
    produce,
    start_worker,
    stream_values,
    wait_ready,
)

pytestmark = pytest.mark.integration


def committed_events(metrics: str) -> int:
    return int(
        sum(float(v) for v in re.findall(r"^identity_worker_events_total\{[^}]*\} (\S+)$", metrics, re.M))
    )


async def started(
    bootstrap: str,
    store: Store,
    unique_topic: Callable[[str], str],
    tmp: Path,
    partitions: int,
    **options: str,
) -> tuple[Topics, list[bytes], WorkerProcess]:
    """Fresh topics of `partitions`, 1 000 events a partition to send, a worker started on them
    with `options` (`--processes`, `--guarantee`)."""
    topics = await new_topics(bootstrap, unique_topic("k5-" + "-".join(options.values())), partitions)
    values = stream_values(store.acme, 1000 * partitions, time.time())
    return topics, values, start_worker(tmp, "first", bootstrap, store.url, topics, **options)


async def test_processes_run_members_of_one_group_each_with_its_metrics_port(
    kafka_bootstrap: str, store: Store, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    topics, values, parent = await started(kafka_bootstrap, store, unique_topic, tmp_path, 4, processes="2")
    second = WorkerProcess(parent.process, parent.log, parent.metrics_port + 1)
    try:
        await wait_ready(parent)
        await wait_ready(second)
        await asyncio.sleep(2)  # both joined: the group splits the 4 partitions
        inputs = await produce(kafka_bootstrap, topics.raw, [(None, v, None) for v in values])
        async with Outputs(kafka_bootstrap, topics) as outputs:
            await outputs.wait_for(len(values), 90)
            await outputs.settle(1.0)
        counts = [
            committed_events((await asyncio.to_thread(w.http, "/metrics"))[1]) for w in (parent, second)
        ]
    finally:
        code = parent.stop()
    assert code == 0, parent.tail()
    assert outputs.check_exactly_once(inputs) == (0, 0)
    assert sum(counts) == len(values) and all(counts), counts


async def test_at_least_once_publishes_every_output_before_committing_offsets(
    kafka_bootstrap: str, store: Store, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    topics, values, worker = await started(
        kafka_bootstrap, store, unique_topic, tmp_path, 2, guarantee="at_least_once"
    )
    try:
        await wait_ready(worker)
        inputs = await produce(kafka_bootstrap, topics.raw, [(None, v, None) for v in values])
        async with Outputs(kafka_bootstrap, topics) as outputs:
            await outputs.wait_for(len(values), 90)
    finally:
        assert worker.stop() == 0, worker.tail()
    lost, _ = outputs.check_exactly_once(inputs)
    assert lost == 0
    # A restarted member starts after the committed offsets: nothing is redone after a clean stop.
    again = start_worker(tmp_path, "alo-again", kafka_bootstrap, store.url, topics, guarantee="at_least_once")
    try:
        await wait_ready(again)
        await asyncio.sleep(3)
        async with Outputs(kafka_bootstrap, topics) as outputs:
            await outputs.settle(1.0)
    finally:
        assert again.stop() == 0, again.tail()
    assert outputs.check_exactly_once(inputs) == (0, 0)
