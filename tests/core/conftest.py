"""Fixtures for the verification-core tests; the helpers they use live in `tests.support.core`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support.core import NOW, RECEIVED_AT, Runner, base_communities, event, validate_output
from worker.core.community import Community
from worker.core.pipeline import Limits, process_event
from worker.core.tokencache import TokenCache


@pytest.fixture
def communities() -> dict[str, Community]:
    return base_communities()


@pytest.fixture
def run(communities: dict[str, Community]) -> Runner:
    """Process one value with the base configuration (or `lookup`), through `token_cache` when
    given (C4); returns the validated output record."""

    def _run(
        value: bytes | None,
        *,
        now: float = NOW,
        lookup: dict[str, Community] | None = None,
        limits: Limits | None = None,
        token_cache: TokenCache | None = None,
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if limits is not None:
            kwargs["limits"] = limits
        output = process_event(
            value, lookup=lookup or communities, now=now, token_cache=token_cache, **kwargs
        )
        return validate_output(output)

    return _run


@pytest.fixture
def verdict(run: Runner) -> Callable[..., str]:
    """`verdict(token, **kw)`: 'accepted' or the rejection reason of a signed event for acme."""

    def _verdict(token: str, *, now: float = NOW, received_at: str = RECEIVED_AT, **kw: Any) -> str:
        record = run(event(token, received_at=received_at, **kw), now=now)
        return "accepted" if record["outcome"] == "enriched" else record["reason"]

    return _verdict
