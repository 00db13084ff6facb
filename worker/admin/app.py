"""The configuration service as one ASGI application (DESIGN §10): API, console, limits.

`create_app(database_url)` opens a small asyncpg pool at start-up (after checking the schema
is migrated) and closes it at shutdown. Bodies are limited to `MAX_BODY_BYTES` (A2): a PEM
key of 4096 bits is ~800 bytes, a token a few KiB, so 64 KiB leaves room and stops abuse.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import asyncpg
import structlog
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worker.admin import api, console, errors
from worker.store.db import connect
from worker.store.migrate import check_schema

log = structlog.get_logger(__name__)

MAX_BODY_BYTES: Final = 64 * 1024
POOL_SIZE: Final = 4
TITLE: Final = "identity-worker configuration service"
VERSION: Final = "1"


class RequestLog:
    """One JSON log line per request: method, path (never the query or a body), status, time.

    The server's own access log is off: this line goes through the project's logging
    (worker/ops/logging.py: JSON, scrubbed), and bodies, which carry secrets, never reach it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the application fails before answering

        async def remember(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, remember)
        finally:
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 1),
            )


class BodyLimit:
    """Refuse a body over `limit` bytes with 413, whether it declares its length or streams."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._too_large(send)
            return
        # Read the whole body first (at most `limit` bytes), then hand it on: the framework
        # turns any error raised while it reads into a 400, which would hide the 413.
        chunks: list[Message] = []
        seen = 0
        while True:
            message = await receive()
            chunks.append(message)
            if message["type"] != "http.request":
                break
            seen += len(message.get("body", b""))
            if seen > self.limit:
                await self._too_large(send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return chunks.pop(0) if chunks else await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        response = errors.json_error(errors.ApiError(413, f"the body is larger than {self.limit} bytes"))
        await send({"type": "http.response.start", "status": 413, "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})


def create_app(database_url: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        conn = await connect(database_url)
        try:
            await check_schema(conn)
        finally:
            await conn.close()
        # min_size 0: no connection floor for asyncpg to restore (with a traceback) in an outage.
        app.state.pool = await asyncpg.create_pool(database_url, min_size=0, max_size=POOL_SIZE)
        try:
            yield
        finally:
            await app.state.pool.close()

    app = FastAPI(
        title=TITLE,
        version=VERSION,
        description="Configure communities: handling, JWT keys, custom fields, mappings; check a "
        "token; read the audit trail (DESIGN §10). Authenticate with `Authorization: Bearer <token>`.",
        openapi_url=f"{api.PREFIX}/openapi.json",
        docs_url=f"{api.PREFIX}/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    errors.install(app, api.PREFIX, console.error_page)
    app.include_router(api.router())
    console.mount(app)
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    app.add_middleware(RequestLog)
    return app
