"""The configuration service as one ASGI application (DESIGN §10): API, console, limits.

`create_app(database_url)` opens a small asyncpg pool at start-up (after checking the schema
is migrated) and closes it at shutdown. Every request passes one door (worker/admin/bodies.py:
bodies limited to `MAX_BODY_BYTES`, A2 — a PEM key of 4096 bits is ~800 bytes, a token a few
KiB, so 64 KiB leaves room and stops abuse —, strict JSON and the text rule, A7) and every
answer gets the security headers (worker/admin/headers.py, A9).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import asyncpg
import structlog
from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from worker.admin import api, console, docs, errors
from worker.admin.asgi import HttpMiddleware
from worker.admin.bodies import StrictInput
from worker.admin.headers import AdminApp
from worker.store.db import connect
from worker.store.migrate import check_schema

log = structlog.get_logger(__name__)

MAX_BODY_BYTES: Final = 64 * 1024
POOL_SIZE: Final = 4
TITLE: Final = "identity-worker configuration service"
VERSION: Final = "1"


class RequestLog(HttpMiddleware):
    """One JSON log line per request: method, path (never the query or a body), status, time.

    The server's own access log is off: this line goes through the project's logging
    (worker/ops/logging.py: JSON, scrubbed), and bodies, which carry secrets, never reach it.
    """

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
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

    app = AdminApp(
        title=TITLE,
        version=VERSION,
        description="Configure communities: handling, JWT keys, custom fields, mappings; check a "
        "token; read the audit trail (DESIGN §10). Authenticate with `Authorization: Bearer <token>`.",
        openapi_url=f"{api.PREFIX}/openapi.json",
        docs_url=None,  # served with its own assets, not a CDN's (A9)
        redoc_url=None,
        lifespan=lifespan,
    )
    errors.install(app, api.PREFIX, console.error_page)
    app.include_router(api.router())
    docs.mount(app, f"{api.PREFIX}/docs", f"{api.PREFIX}/openapi.json", TITLE)
    console.mount(app)
    app.add_middleware(StrictInput, limit=MAX_BODY_BYTES)
    app.add_middleware(RequestLog)
    return app
