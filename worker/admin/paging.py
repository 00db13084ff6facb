"""Pages of the API's listings (DESIGN §12, T5): the query every list route takes, the answer's shape.

Every list route (communities, keys, custom fields, mappings, the audit trail, API tokens) takes `limit`
(default 100, at most 500), `after` (the `next` of the page before) and `prefix` (the
listing's id starts with it), and answers `{"items": [...], "next": "…" | null}`: the page's
rows in the listing's order, and the cursor of the next page (null on the last). A cursor is
keyset (worker/store/pages.py): rows added or removed meanwhile never make a page repeat or
skip another. Before pages, these routes answered a bare JSON array of every row; see
docs/api.md for the change. The one answer that stays a bare array, a community's health
(`/communities/{id}/health`), is a summary with a row per outcome and reason: bounded by
those, whatever the store's size.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, Self, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, Field

from worker.store.pages import DEFAULT_LIMIT, MAX_LIMIT, MAX_PREFIX_CHARS, Page, PageRequest

T = TypeVar("T")


class ApiPage(BaseModel, Generic[T]):
    """One page of a listing. Each listing names its own (`CommunityPage`, …: the OpenAPI
    document's names)."""

    items: list[T] = Field(description="At most `limit` rows, in the listing's order.")
    next: str | None = Field(
        description="Pass it as `after` for the next page; null when this page is the last."
    )

    @classmethod
    def of(cls, page: Page[Any]) -> Self:
        return cls(items=page.items, next=page.next)


def page_request(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many rows.")] = DEFAULT_LIMIT,
    after: Annotated[
        str | None,
        Query(max_length=1024, description="The `next` cursor of the page before (omit for the first page)."),
    ] = None,
    prefix: Annotated[
        str | None,
        Query(max_length=MAX_PREFIX_CHARS, description="Only rows whose listing id starts with this."),
    ] = None,
) -> PageRequest:
    return PageRequest(limit, after, prefix)


PageQuery = Annotated[PageRequest, Depends(page_request)]
