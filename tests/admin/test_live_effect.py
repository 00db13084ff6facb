"""A6 (C2): a key removed through the admin API is refused by a running worker within 1 s.

The real worker (`identity-worker run`) reads the service's database and the real broker;
the key is rotated through the API as a customer would (add the new key, then remove the
old one), and every event sent 1 s or more after the removal gets `unknown_kid`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support.admin import SECRET, SECRET_2, Service, hs256
from tests.support.worker import new_topics, refusal_after_key_removal, start_worker

pytestmark = pytest.mark.integration


async def test_a_key_removed_through_the_api_is_refused_within_a_second(
    service: Service, kafka_bootstrap: str, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    topics = await new_topics(kafka_bootstrap, unique_topic("a6-admin"), 1)
    token = hs256(SECRET, "k1", uuid="rotated")
    worker = start_worker(tmp_path, "a6", kafka_bootstrap, service.database_url, topics, batch_linger_ms="10")

    async def remove_key() -> None:
        headers = {"Authorization": f"Bearer {service.tokens['acme']}"}
        async with httpx.AsyncClient(base_url=service.url, headers=headers) as api:
            added = await api.post(
                "/api/v1/communities/acme/keys", json={"kid": "k2", "hmac_secret": SECRET_2}
            )
            assert added.status_code == 201, added.text
            removed = await api.delete("/api/v1/communities/acme/keys/k1")
            assert removed.status_code == 204, removed.text

    delay = await refusal_after_key_removal(worker, kafka_bootstrap, topics, ("acme", token), remove_key)
    print(f"\nA6: first unknown_kid for an event sent {delay:+.3f} s after the API removed the key")
