"""The ops endpoint (DESIGN §7): /metrics, /healthz, /readyz, a Starlette app served by uvicorn.

On the worker's event loop on purpose: when the loop is stuck, /healthz stops answering, which
is what a liveness probe should see (tests/ops/test_http.py). uvicorn runs through its
`startup` / `main_loop` / `shutdown` steps, not `serve`: `serve` would take SIGTERM and SIGINT
from the worker, whose own handlers finish the batch in flight first (K6).

A request line and headers past `MAX_REQUEST_BYTES` still unparsed after one read are refused
by uvicorn's HTTP parser (h11: 400, or a reset while the client still writes); no request
stops the server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from worker.ops.metrics import Metrics
from worker.ops.probes import Health

# The most a request line plus its headers may take (bytes): probes send a few short ones.
MAX_REQUEST_BYTES = 8192
_JSON = "application/json"


def ops_app(metrics: Metrics, health: Health) -> Starlette:
    """/metrics (Prometheus text), /healthz (alive while the loop answers), /readyz (`Health`)."""

    async def scrape(_: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def alive(_: Request) -> Response:
        return Response(b'{"status":"alive"}\n', media_type=_JSON)

    async def ready(_: Request) -> Response:
        problems = health.problems()
        body: dict[str, Any] = {"status": "ready" if not problems else "not ready", "problems": problems}
        return Response(json.dumps(body).encode() + b"\n", 200 if not problems else 503, media_type=_JSON)

    async def not_found(_: Request, __: Exception) -> Response:
        return PlainTextResponse("not found: try /metrics, /healthz or /readyz\n", 404)

    async def not_allowed(_: Request, __: Exception) -> Response:
        return PlainTextResponse("method not allowed\n", 405)

    methods = ["GET", "HEAD"]
    return Starlette(
        routes=[
            Route("/metrics", scrape, methods=methods),
            Route("/healthz", alive, methods=methods),
            Route("/readyz", ready, methods=methods),
        ],
        exception_handlers={404: not_found, 405: not_allowed},
    )


class OpsServer:
    """Serves `metrics` and `health` on host:port (port 0: any free one, known after `start`)."""

    def __init__(self, metrics: Metrics, health: Health, host: str, port: int) -> None:
        self.host = host
        self.port = port
        config = uvicorn.Config(
            ops_app(metrics, health),
            lifespan="off",
            http="h11",
            h11_max_incomplete_event_size=MAX_REQUEST_BYTES,
            log_config=None,
            access_log=False,
            server_header=False,
            date_header=False,
        )
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # no start/stop chatter
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Listen; returns the port. Raises OSError when host:port cannot be bound."""
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        config = self._server.config
        config.load()
        self._server.lifespan = config.lifespan_class(config)  # "off": what `serve` would set
        await self._server.startup(sockets=[sock])
        self.port = int(sock.getsockname()[1])
        self._task = asyncio.create_task(self._server.main_loop(), name="ops-http")
        return self.port

    async def close(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        await self._task
        await self._server.shutdown()
        self._task = None
