"""Every admin client the worker makes is closed, a failed or cancelled start included (issue 11:
`existing_topics` started its client outside the `try` that closed it). The clients are real
aiokafka clients, pointed at a port nobody listens on or at a server that never answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

import worker.kafka.topics as topics
from tests.support.ports import free_port
from worker.settings import load_topic_names


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The admin clients `worker.kafka.topics` makes (the real ones, kept to look at after)."""
    clients: list[Any] = []
    real = topics.make_admin

    def recording(settings: Any) -> Any:
        clients.append(real(settings))
        return clients[-1]

    monkeypatch.setattr(topics, "make_admin", recording)
    return clients


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never answers (a broker still starting)."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_a_failed_start_closes_the_admin_client(made: list[Any]) -> None:
    settings = load_topic_names(bootstrap_servers=f"127.0.0.1:{free_port()}")
    with pytest.raises(KafkaConnectionError):
        await topics.existing_topics(settings, settings.all())
    assert len(made) == 1 and made[0]._closed


async def test_a_cancelled_start_closes_the_admin_client(made: list[Any], silent_port: int) -> None:
    settings = load_topic_names(bootstrap_servers=f"127.0.0.1:{silent_port}")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(topics.existing_topics(settings, settings.all()), 0.5)
    assert len(made) == 1 and made[0]._closed
    with pytest.raises(topics.TopicError, match="cannot reach Kafka"):
        await topics.create_topics(settings, partitions=1, replication_factor=1, timeout=0.5)
    assert len(made) == 2 and made[1]._closed
