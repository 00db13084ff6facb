"""A6 (C2): a key removed through the admin API is refused by a running worker within 1 s.

The real worker (`identity-worker run`) reads the service's database and the real broker;
the key is rotated through the API as a customer would (add the new key, then remove the
old one), and every event sent 1 s or more after the removal gets `unknown_kid`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support.admin import SECRET, SECRET_2, Service, hs256
from tests.support.worker import Outputs, new_topics, produce, raw_event, start_worker, wait_ready

pytestmark = pytest.mark.integration


async def test_a_key_removed_through_the_api_is_refused_within_a_second(
    service: Service, kafka_bootstrap: str, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    topics = await new_topics(kafka_bootstrap, unique_topic("a6-admin"), 1)
    token = hs256(SECRET, "k1", uuid="rotated")
    worker = start_worker(
        tmp_path,
        "a6",
        bootstrap=kafka_bootstrap,
        database_url=service.database_url,
        topics=topics,
        group=topics.raw,
        batch_linger_ms="10",
    )
    sent: list[tuple[float, int]] = []  # (monotonic send time, offset)

    async def send(name: str) -> None:
        value = raw_event(name, "acme", time.time(), signed_identity=token)
        [(_, offset)] = await produce(kafka_bootstrap, topics.raw, [(None, value, None)])
        sent.append((time.monotonic(), offset))

    headers = {"Authorization": f"Bearer {service.tokens['acme']}"}
    try:
        async with (
            Outputs(kafka_bootstrap, topics) as outputs,
            httpx.AsyncClient(base_url=service.url, headers=headers) as api,
        ):
            await wait_ready(worker)
            for i in range(3):  # accepted, and now in the worker's verified-token cache (C4)
                await send(f"before-{i}")
            await outputs.wait_for(3, 60)
            added = await api.post(
                "/api/v1/communities/acme/keys", json={"kid": "k2", "hmac_secret": SECRET_2}
            )
            assert added.status_code == 201, added.text
            removed_answer = await api.delete("/api/v1/communities/acme/keys/k1")
            removed = time.monotonic()
            assert removed_answer.status_code == 204, removed_answer.text
            while time.monotonic() < removed + 2.0:
                await send(f"after-{len(sent)}")
                await asyncio.sleep(0.05)
            await outputs.wait_for(len(sent), 60)
    finally:
        assert worker.stop() == 0, worker.tail()
    delay = outputs.first_refusal_after_removal(sent, removed)
    print(f"\nA6: first unknown_kid for an event sent {delay:+.3f} s after the API removed the key")
