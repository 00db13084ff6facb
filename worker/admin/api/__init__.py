"""The admin API under /api/v1 (DESIGN §10, A1): one router per resource.

Every route depends on `auth.api_caller` (set once, on the router built here), so none can
forget the access check; `errors.ERROR_RESPONSES` documents the refusals of each.
"""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter, Depends

from worker.admin.api import audit, communities, fields, health, keys, mappings, token_check, tokens
from worker.admin.auth import api_caller
from worker.admin.errors import ERROR_RESPONSES

PREFIX: Final = "/api/v1"


def router() -> APIRouter:
    api = APIRouter(prefix=PREFIX, dependencies=[Depends(api_caller)], responses=ERROR_RESPONSES)
    for module in (communities, keys, fields, mappings, token_check, health, audit, tokens):
        api.include_router(module.router)
    return api
