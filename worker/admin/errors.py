"""How a refused request is answered (DESIGN §10, A3): JSON `{"error": "…"}`, one clear line.

Every failure the API can meet becomes an `ApiError` with its status here, in one table, so
the API and the console show the same message for the same refusal. Messages come from the
store and the spec models, which never quote a secret (worker/store/db.py,
worker/core/config.py); validation errors are rebuilt from `loc` and `msg` only, never from
the input that was refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException

from worker.admin.models import KNOWN_FIELD_NAMES
from worker.core.config import ConfigError
from worker.core.problems import format_error_items, format_validation_error
from worker.store.db import (
    TRANSIENT_ERRORS,
    Conflict,
    InputError,
    NotFound,
    SchemaMissing,
    StoreError,
    StoreUnavailable,
    translate,
)


class ErrorBody(BaseModel):
    """Every refusal: one line saying what is wrong and, where it helps, what to do."""

    error: str


class ApiError(Exception):
    """A refusal with its HTTP status; `message` is safe to show (no secret, no row)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Unauthorized(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(401, message)


class Forbidden(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(403, message)


#: The store's refusals by class, most specific first (A3: 4xx and nothing written).
_STATUS_BY_ERROR: Final[tuple[tuple[type[StoreError], int], ...]] = (
    (NotFound, 404),
    (Conflict, 409),
    (InputError, 422),
    (StoreUnavailable, 503),
    (SchemaMissing, 503),
)

#: What every route may answer besides its success, for the OpenAPI document.
ERROR_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    status: {"model": ErrorBody, "description": what}
    for status, what in (
        (
            400,
            "The body is not JSON, two Authorization headers were sent, or the path or query holds "
            "text that cannot be stored (NUL, a control character, a lone surrogate).",
        ),
        (401, "No token, an unknown token or a revoked token."),
        (403, "The token's scope does not allow this (a community token on a platform resource)."),
        (404, "No such community (or not this token's), key, custom field or mapping."),
        (409, "It already exists, or something still depends on it."),
        (413, "The body is larger than the service accepts."),
        (
            422,
            "A value breaks a rule of DESIGN §1/§5, a member is given twice, or text cannot be stored "
            "(A7); nothing was written.",
        ),
        (503, "The configuration store cannot be reached."),
    )
}


def from_exception(exc: BaseException) -> ApiError:
    """The ApiError to answer for any exception a route may raise (unknown ones re-raised)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ConfigError):
        return ApiError(422, "refused, the result would be invalid: " + "; ".join(exc.problems))
    if isinstance(exc, (asyncpg.PostgresError, *TRANSIENT_ERRORS)):
        exc = translate(exc)
    if isinstance(exc, StoreError):
        for kind, status in _STATUS_BY_ERROR:
            if isinstance(exc, kind):
                return ApiError(status, exc.message)
        return ApiError(500, exc.message)
    raise exc


def validation_message(items: Iterable[Mapping[str, Any]]) -> ApiError:
    """A request that does not fit its model: 400 when it is not JSON, else 422."""
    items = list(items)
    if any(item.get("type") == "json_invalid" for item in items):
        return ApiError(400, "the request body is not valid JSON")
    # `body.jwt_keys[0].kid` reads better as `jwt_keys[0].kid`; a rule about the whole body (a
    # model's own check, e.g. S1) needs no place; a missing or non-object body stays `body`.
    trimmed = [
        {**item, "loc": tuple(item["loc"][1:]) or (() if item.get("type") == "value_error" else item["loc"])}
        for item in items
    ]
    return ApiError(422, "; ".join(format_error_items(_unknown_summarised(trimmed))))


def _unknown_summarised(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Unknown members counted per object, never named (A12): a secret pasted as a member
    name must not come back in the answer. A member the API knows elsewhere (`id` in a
    PATCH) is named; other problems keep their place and message."""
    unknown: dict[tuple[Any, ...], int] = {}
    kept = []
    for item in items:
        if item.get("type") == "extra_forbidden" and item["loc"][-1] not in KNOWN_FIELD_NAMES:
            parent = tuple(item["loc"][:-1])
            unknown[parent] = unknown.get(parent, 0) + 1
        else:
            kept.append(item)
    for parent, count in unknown.items():
        what = "1 unknown field" if count == 1 else f"{count} unknown fields"
        kept.append({"loc": parent, "msg": f"{what}; see the API's documentation for the accepted ones"})
    return kept


def invalid(exc: ValidationError) -> ApiError:
    """A spec model's refusal of a value (the console validates forms with the API's models)."""
    return ApiError(422, "; ".join(format_validation_error(exc)))


def json_error(error: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return JSONResponse({"error": error.message}, status_code=error.status, headers=headers)


def install(app: FastAPI, api_prefix: str, page: Callable[[Request, ApiError], Response]) -> None:
    """Answer every refusal as `{"error": …}` under `api_prefix` (the framework's own ones
    included), and as the console's `page` elsewhere."""

    def answer(request: Request, error: ApiError) -> Response:
        return json_error(error) if request.url.path.startswith(api_prefix) else page(request, error)

    async def on_api_error(request: Request, exc: Exception) -> Response:
        return answer(request, from_exception(exc))

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return answer(request, validation_message(exc.errors()))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return answer(request, ApiError(exc.status_code, str(exc.detail)))

    for kind in (ApiError, ConfigError, StoreError, asyncpg.PostgresError, *TRANSIENT_ERRORS):
        app.add_exception_handler(kind, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
