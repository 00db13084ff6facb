"""The ops HTTP endpoint (DESIGN §7): it answers a request it will not read with a 4xx and goes
on serving, its routes answer as the probes and Prometheus expect, and a stuck event loop
fails /healthz (the liveness probe's whole point)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import urllib.error
import urllib.request

import pytest

from worker.ops.http import OpsServer
from worker.ops.metrics import Metrics
from worker.ops.probes import Health


def quiet_health() -> Health:
    """A worker's health with nothing degraded, waiting or unwritable."""
    return Health(store_degraded=lambda: False, waiting=list, outputs_problem=lambda: None)


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
        (b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"404"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 100_000 + b"\r\n\r\n", b"200"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 1000 + b"\r\n", b"200"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 2_000_000 + b"\r\n\r\n", None),
    ],
    ids=["long request line", "long header", "many headers", "header past what is read"],
)
async def test_an_oversized_request_never_stops_the_server(
    request_text: bytes, status: bytes | None, caplog: pytest.LogCaptureFixture
) -> None:
    """A request up to what one read takes is answered; past `MAX_REQUEST_BYTES` unread, the
    parser refuses it (400, or a reset while the client still writes); either way no handler
    raises and the next request is answered."""
    server = OpsServer(Metrics(), quiet_health(), "127.0.0.1", 0)
    port = await server.start()
    try:
        with caplog.at_level(logging.ERROR):
            try:
                answer = await exchange(port, request_text)
            except ConnectionResetError:
                answer = b"reset"
        if status is not None:
            assert answer.startswith(b"HTTP/1.1 " + status), answer[:100]
        else:
            assert answer == b"reset" or answer.startswith(b"HTTP/1.1 400"), answer[:100]
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "the handler raised"
        answer = await exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b'{"status":"alive"}\n')
    finally:
        await server.close()


async def test_the_routes_answer_as_probes_and_prometheus_expect() -> None:
    health = quiet_health()
    server = OpsServer(Metrics(), health, "127.0.0.1", 0)
    port = await server.start()

    async def get(path: str, method: str = "GET") -> tuple[bytes, bytes]:
        request = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        head, _, body = (await exchange(port, request)).partition(b"\r\n\r\n")
        return head, body

    try:
        head, body = await get("/readyz")
        assert head.startswith(b"HTTP/1.1 503") and json.loads(body)["problems"][0] == "starting"
        health.started = True
        health.kafka_ok()
        head, body = await get("/readyz")
        assert head.startswith(b"HTTP/1.1 200") and json.loads(body) == {"status": "ready", "problems": []}
        head, body = await get("/metrics")
        assert head.startswith(b"HTTP/1.1 200") and b"identity_worker_" in body
        assert b"content-type: text/plain; version=" in head.lower()
        head, body = await get("/nowhere")
        assert head.startswith(b"HTTP/1.1 404") and body == b"not found: try /metrics, /healthz or /readyz\n"
        head, body = await get("/healthz", "POST")
        assert head.startswith(b"HTTP/1.1 405") and body == b"method not allowed\n"
    finally:
        await server.close()


async def test_a_stuck_event_loop_fails_healthz() -> None:
    """The endpoint runs on the worker's event loop: while the loop is blocked, /healthz gives no
    answer within a probe's timeout; once the loop runs again it answers 200."""
    server = OpsServer(Metrics(), quiet_health(), "127.0.0.1", 0)
    port = await server.start()
    url = f"http://127.0.0.1:{port}/healthz"
    outcome: list[str] = []

    def probe(timeout: float) -> None:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as answer:
                outcome.append(str(answer.status))
        except (TimeoutError, urllib.error.URLError) as exc:
            outcome.append(type(exc).__name__)

    try:
        prober = threading.Thread(target=probe, args=(1.0,))
        prober.start()
        time.sleep(2.5)  # the loop is stuck: nothing on it runs, the ops endpoint included
        await asyncio.to_thread(prober.join)
        assert outcome == ["TimeoutError"], outcome
        await asyncio.to_thread(probe, 5.0)
        assert outcome[-1] == "200"
    finally:
        await server.close()
