"""`/communities/{id}/health`: the community's integration health, as `report` shows it (L5)."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Query

from worker.admin import actions
from worker.admin.auth import ApiCaller, Connection
from worker.store.usage import HEALTH_RETENTION_DAYS, HealthRow

router = APIRouter(tags=["health"])

#: Minute buckets are kept HEALTH_RETENTION_DAYS: a longer window would only look complete.
MAX_SINCE_SECONDS: Final = HEALTH_RETENTION_DAYS * 86400

Since = Annotated[
    int, Query(ge=60, le=MAX_SINCE_SECONDS, description="The window, in seconds back from now.")
]


@router.get(
    "/communities/{community_id}/health",
    summary="Events per outcome and reason over the last `since` seconds, with each reason's last detail",
)
async def health(
    conn: Connection, caller: ApiCaller, community_id: str, since: Since = 3600
) -> list[HealthRow]:
    """Minute buckets: the minute the window starts in counts whole (L5)."""
    return await actions.health(conn, community_id, since)
