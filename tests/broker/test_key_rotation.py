"""Key rotation while running (C2, C4): removing a key in PostgreSQL changes verdicts within 1 s.

The key is removed with the admin command, as an operator would; the running worker's
cache follows the notification and drops the community's verified tokens.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.worker import (
    OTHER_SECRET,
    Outputs,
    Store,
    cli,
    new_topics,
    produce,
    raw_event,
    sign,
    start_worker,
    wait_ready,
)

pytestmark = pytest.mark.integration


async def test_removing_a_key_turns_its_tokens_into_unknown_kid_within_a_second(
    kafka_bootstrap: str, store: Store, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    topics = await new_topics(kafka_bootstrap, unique_topic("k5-rotation"), 1)
    token = sign({"uuid": "rotated", "exp": int(time.time()) + 7200}, OTHER_SECRET, kid="hs_2")
    worker = start_worker(
        tmp_path,
        "rotation",
        bootstrap=kafka_bootstrap,
        database_url=store.url,
        topics=topics,
        group=topics.raw,
        batch_linger_ms="10",
    )
    sent: list[tuple[float, int]] = []  # (monotonic send time, offset)

    async def send(name: str) -> None:
        value = raw_event(name, store.acme, time.time(), signed_identity=token)
        [(_, offset)] = await produce(kafka_bootstrap, topics.raw, [(None, value, None)])
        sent.append((time.monotonic(), offset))

    try:
        async with Outputs(kafka_bootstrap, topics) as outputs:
            await wait_ready(worker)
            for i in range(3):  # accepted, and now in the verified-token cache (C4)
                await send(f"before-{i}")
            await outputs.wait_for(3, 60)
            # --force: the key verified tokens a moment ago, which L3 would refuse (issue 15).
            await asyncio.to_thread(cli, "keys", "remove", store.acme, "hs_2", "--force", env=store.env())
            removed = time.monotonic()
            while time.monotonic() < removed + 2.0:
                await send(f"after-{len(sent)}")
                await asyncio.sleep(0.05)
            await outputs.wait_for(len(sent), 60)
    finally:
        assert worker.stop() == 0, worker.tail()
    delay = outputs.first_refusal_after_removal(sent, removed)
    print(f"\nkey rotation: first unknown_kid for an event sent {delay:+.3f} s after removal")
