"""Fixtures for the verification-core tests; the helpers they use live in `tests.support.core`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support.core import NOW, RECEIVED_AT, base_communities, event, validate_output
from worker.core.config import Community
from worker.core.pipeline import Limits, process_event

Runner = Callable[..., dict[str, Any]]


@pytest.fixture
def communities() -> dict[str, Community]:
    return base_communities()


@pytest.fixture
def run(communities: dict[str, Community]) -> Runner:
    """Process one value with the base configuration; returns the validated output record."""

    def _run(
        value: bytes | None,
        *,
        now: float = NOW,
        lookup: dict[str, Community] | None = None,
        limits: Limits | None = None,
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if limits is not None:
            kwargs["limits"] = limits
        output = process_event(value, lookup=lookup or communities, now=now, **kwargs)
        return validate_output(output)

    return _run


@pytest.fixture
def verdict(run: Runner) -> Callable[..., str]:
    """`verdict(token, **kw)`: 'accepted' or the rejection reason of a signed event for acme."""

    def _verdict(token: str, *, now: float = NOW, received_at: str = RECEIVED_AT, **kw: Any) -> str:
        record = run(event(token, received_at=received_at, **kw), now=now)
        return "accepted" if record["outcome"] == "enriched" else record["reason"]

    return _verdict
