"""SIGTERM in the middle of a batch (K6): stop fetching, finish the batch, commit, exit 0 in time.

A second member then drains what was not fetched: every input has exactly one output.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.worker import Outputs, Store, new_topics, produce, start_worker, stream_values, wait_ready

pytestmark = pytest.mark.integration


async def test_sigterm_mid_batch_commits_it_and_exits_0_nothing_lost_or_duplicated(
    kafka_bootstrap: str, store: Store, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    topics = await new_topics(kafka_bootstrap, unique_topic("k5-sigterm"), 2)
    values = stream_values(store.acme, 4000, time.time(), unique_tokens=4000)
    # Batches close at 3000 records or 4 s after their first: SIGTERM lands inside one.
    first = start_worker(
        tmp_path, "first", kafka_bootstrap, store.url, topics, batch_size="3000", batch_linger_ms="4000"
    )
    async with Outputs(kafka_bootstrap, topics) as outputs:
        await wait_ready(first)
        await asyncio.sleep(1.0)  # let it join the group
        inputs = await produce(kafka_bootstrap, topics.raw, [(None, v, None) for v in values[:1000]])
        await asyncio.sleep(1.0)
        signalled = time.monotonic()
        first.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(first.stop, signal.SIGTERM, 30)
        stopped_in = time.monotonic() - signalled
        inputs += await produce(kafka_bootstrap, topics.raw, [(None, v, None) for v in values[1000:]])
        await outputs.settle(1.0)
        answered_by_first = len(outputs.by_source)
        second = start_worker(tmp_path, "second", kafka_bootstrap, store.url, topics)
        try:
            await outputs.wait_for(len(values), 90)
            await outputs.settle(2.0)
        finally:
            assert second.stop() == 0, second.tail()
    assert code == 0, first.tail()
    assert stopped_in < 15, f"shutdown took {stopped_in:.1f} s"
    stopped = [json.loads(line) for line in first.log.read_text().splitlines() if "member stopped" in line]
    assert stopped and stopped[0]["clean"] is True and stopped[0]["processed"] == answered_by_first
    assert answered_by_first == 1000, "the batch in flight was finished and committed"
    assert outputs.check_exactly_once(inputs) == (0, 0)
