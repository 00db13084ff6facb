"""The configuration service as one ASGI application (DESIGN §10): API, console, limits.

`create_app(database_url)` opens a small asyncpg pool at start-up (after checking the schema
is migrated) and closes it at shutdown. Bodies are limited to `MAX_BODY_BYTES` (A2): a PEM
key of 4096 bits is ~800 bytes, a token a few KiB, so 64 KiB leaves room and stops abuse.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import asyncpg
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worker.admin import api, console, errors
from worker.store.db import connect
from worker.store.migrate import check_schema

MAX_BODY_BYTES: Final = 64 * 1024
POOL_SIZE: Final = 4
TITLE: Final = "identity-worker configuration service"
VERSION: Final = "1"


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
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        response = errors.json_error(errors.ApiError(413, f"the body is larger than {self.limit} bytes"))
        await send({"type": "http.response.start", "status": 413, "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})


class _TooLarge(Exception):
    pass


def create_app(database_url: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        conn = await connect(database_url)
        try:
            await check_schema(conn)
        finally:
            await conn.close()
        app.state.pool = await asyncpg.create_pool(database_url, min_size=1, max_size=POOL_SIZE)
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
    return app
