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
    Store,
    cli,
    new_topics,
    refusal_after_key_removal,
    sign,
    start_worker,
)

pytestmark = pytest.mark.integration


async def test_removing_a_key_turns_its_tokens_into_unknown_kid_within_a_second(
    kafka_bootstrap: str, store: Store, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    topics = await new_topics(kafka_bootstrap, unique_topic("k5-rotation"), 1)
    token = sign({"uuid": "rotated", "exp": int(time.time()) + 7200}, OTHER_SECRET, kid="hs_2")
    worker = start_worker(tmp_path, "rotation", kafka_bootstrap, store.url, topics, batch_linger_ms="10")

    async def remove_key() -> None:
        # --force: the key verified tokens a moment ago, which L3 would refuse (issue 15).
        await asyncio.to_thread(cli, "keys", "remove", store.acme, "hs_2", "--force", env=store.env())

    delay = await refusal_after_key_removal(worker, kafka_bootstrap, topics, (store.acme, token), remove_key)
    print(f"\nkey rotation: first unknown_kid for an event sent {delay:+.3f} s after removal")
