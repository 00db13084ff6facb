"""The security headers of every answer (DESIGN §10, A9): one middleware, outermost.

Every answer — console pages, API answers, refusals, 404s, static files, the API docs page,
and the 500 of an unexpected failure — carries:
- `Cache-Control: no-store`: Back or a shared cache never shows a signed-out admin's page;
- `X-Content-Type-Options: nosniff`: an answer is read as the type it declares;
- `Content-Security-Policy` with `frame-ancestors 'none'`, and `X-Frame-Options: DENY` for
  older browsers: no page can be framed (clickjacking a "Remove anyway"); everything else
  comes from the service itself (`default-src 'self'`, no inline script), so nothing the
  console needs is fetched from another site;
- `Referrer-Policy: same-origin`: a community's URL never leaves in a Referer (not
  `no-referrer`: with it, browsers send `Origin: null` on the console's own form posts,
  which the sign-in's Origin check must refuse, A8).
`AdminApp` applies it around the whole application, the framework's error handling included.
"""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worker.admin.asgi import HttpMiddleware

#: Swagger UI draws its icons from data: URIs; nothing else needs more than 'self'.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Final[tuple[tuple[bytes, bytes], ...]] = (
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"referrer-policy", b"same-origin"),
)
_NAMES: Final = frozenset(name for name, _ in SECURITY_HEADERS)


class SecurityHeaders(HttpMiddleware):
    """Set `SECURITY_HEADERS` on every HTTP answer, replacing any a route set itself."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _NAMES]
                message = {**message, "headers": kept + list(SECURITY_HEADERS)}
            await send(message)

        await self.app(scope, receive, with_headers)


class AdminApp(FastAPI):
    """FastAPI with `SecurityHeaders` outside everything, the server-error handler included
    (a middleware added the usual way sits inside it and misses its 500)."""

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(super().build_middleware_stack())
