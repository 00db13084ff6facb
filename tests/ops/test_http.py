"""The ops HTTP server (DESIGN §7) answers a request it will not read with 414 / 431 and goes on
serving (issue 11: an over-long request line raised an unhandled error in the handler)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from worker.ops.health import Health
from worker.ops.http import MAX_HEADER_LINES, OpsServer
from worker.ops.metrics import Metrics


async def exchange(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("request_text", "status"),
    [
        (b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n", b"414"),
        (b"GET /healthz HTTP/1.1\r\nX-Big: " + b"b" * 100_000 + b"\r\n\r\n", b"431"),
        (b"GET /healthz HTTP/1.1\r\n" + b"X: y\r\n" * (MAX_HEADER_LINES + 1) + b"\r\n", b"431"),
    ],
    ids=["long request line", "long header", "too many headers"],
)
async def test_an_oversized_request_gets_an_answer_and_the_server_goes_on(
    request_text: bytes, status: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    server = OpsServer(Metrics(), Health(), "127.0.0.1", 0)
    port = await server.start()
    try:
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            answer = await exchange(port, request_text)
        assert answer.startswith(b"HTTP/1.1 " + status), answer[:100]
        assert not [r for r in caplog.records if r.name == "asyncio"], "the handler raised"
        answer = await exchange(port, b"GET /healthz HTTP/1.1\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b'{"status":"alive"}\n')
    finally:
        await server.close()
