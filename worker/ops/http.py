"""A tiny HTTP/1.1 server on the worker's event loop: /metrics, /healthz, /readyz.

On the event loop on purpose: when the loop is stuck, /healthz stops answering, which is
what a liveness probe should see.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from worker.ops.health import Health
from worker.ops.metrics import Metrics

# Longest request or header line read (bytes), and most header lines: probes send a few short
# ones. Past them the client gets 414 / 431 and the server goes on (asyncio's readline raises).
MAX_LINE_BYTES = 8192
MAX_HEADER_LINES = 100


class _TooLong(Exception):
    """A request line or header line longer than MAX_LINE_BYTES."""


async def _line(reader: asyncio.StreamReader) -> bytes:
    """One line within 5 s; raises _TooLong past MAX_LINE_BYTES (what remains is not read)."""
    try:
        return await asyncio.wait_for(reader.readline(), 5)
    except ValueError:  # asyncio.LimitOverrunError, re-raised by readline as ValueError
        raise _TooLong from None


async def _skip_headers(reader: asyncio.StreamReader) -> bool:
    """Read the header lines up to the blank one; False when one is too long or too many."""
    for _ in range(MAX_HEADER_LINES):
        try:
            if await _line(reader) in (b"\r\n", b"\n", b""):
                return True
        except _TooLong:
            return False
    return False


async def _discard(reader: asyncio.StreamReader) -> None:
    """Read (and drop) what the client is still sending, briefly: closing a socket with unread
    input resets the connection, and the client could lose the answer it was sent."""
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(1):
            for _ in range(256):
                if not await reader.read(65536):
                    break


async def _answer(writer: asyncio.StreamWriter, status: str, content_type: str, body: bytes) -> None:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode("latin-1") + body)
    await writer.drain()


async def _refuse(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: str, body: bytes
) -> None:
    """Answer a request too large to read, then drop what the client still sends."""
    await _answer(writer, status, "text/plain", body)
    await _discard(reader)


@dataclass(eq=False)  # a server is itself, not its settings
class OpsServer:
    """Serves `metrics` and `health` on host:port (port 0: any free one, known after `start`)."""

    metrics: Metrics
    health: Health
    host: str
    port: int
    _server: asyncio.Server | None = field(default=None, init=False, repr=False)

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=MAX_LINE_BYTES)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                request = await _line(reader)
            except _TooLong:
                await _refuse(reader, writer, "414 URI Too Long", b"request line too long\n")
                return
            if not await _skip_headers(reader):
                await _refuse(reader, writer, "431 Request Header Fields Too Large", b"headers too large\n")
                return
            parts = request.decode("latin-1").split()
            path = parts[1].split("?", 1)[0] if len(parts) >= 2 else ""
            status, content_type, body = self._route(parts[0] if parts else "", path)
            await _answer(writer, status, content_type, body)
        except (TimeoutError, ConnectionError, UnicodeDecodeError):
            pass
        finally:
            writer.close()

    def _route(self, method: str, path: str) -> tuple[str, str, bytes]:
        if method not in ("GET", "HEAD"):
            return "405 Method Not Allowed", "text/plain", b"method not allowed\n"
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, generate_latest(self.metrics.registry)
        if path == "/healthz":
            return "200 OK", "application/json", b'{"status":"alive"}\n'
        if path == "/readyz":
            problems = self.health.problems()
            body: dict[str, Any] = {"status": "ready" if not problems else "not ready", "problems": problems}
            status = "200 OK" if not problems else "503 Service Unavailable"
            return status, "application/json", json.dumps(body).encode() + b"\n"
        return "404 Not Found", "text/plain", b"not found: try /metrics, /healthz or /readyz\n"
