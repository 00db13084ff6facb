"""What the configuration service's own ASGI middlewares share (`bodies.StrictInput`,
`headers.SecurityHeaders`, `app.RequestLog`): each sees HTTP requests only (`http`); anything
else the server sends (the lifespan) passes through to the application untouched.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class HttpMiddleware:
    """A pure ASGI middleware of HTTP requests around `app`; subclasses write `http`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.http(scope, receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One HTTP request (`scope["type"] == "http"`)."""
        raise NotImplementedError
