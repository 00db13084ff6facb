"""A member's start (K10: fail fast): the topics checked, then the clients joined, each retried.

Kafka that does not answer yet is retried on the start-up policy (`RetryPolicy.for_startup`)
until `startup_timeout_seconds`; a fatal fault (not authorized, a codec missing…) ends the
start at once. What no retry can fix is one `StartupError` line for the operator: a topic
missing, an output topic that leaves no room for an output (K9, K10).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from worker.backoff import RetryPolicy, retry_until
from worker.kafka.topics import TopicFacts, existing_topics
from worker.runtime.faults import FatalFault, Reporter
from worker.runtime.routing import unusable_output
from worker.settings import Settings

T = TypeVar("T")


class StartupError(Exception):
    """The worker cannot start (missing topic, broker never answered): one line for the operator."""


class Startup:
    """One start: its deadline, its stop event (K6 beats it), the faults reported as they come."""

    def __init__(
        self, settings: Settings, report: Reporter, stop: asyncio.Event, *, request_timeout: float
    ) -> None:
        self.settings = settings
        self.report = report
        self.stop = stop
        self.request_timeout = request_timeout  # seconds per request
        self.retry = RetryPolicy.from_settings(settings).for_startup()
        self.deadline = time.monotonic() + settings.startup_timeout_seconds

    async def retry_kafka(self, what: str, step: Callable[[], Awaitable[T]]) -> T:
        """`step()` retried on infrastructure faults until the deadline; a fatal one ends it at once."""

        def on_fault(exc: Exception, delay: float) -> None:
            try:
                self.report("kafka", exc, what)
            except FatalFault as fatal:
                raise StartupError(str(fatal)) from None

        def gave_up(exc: Exception) -> StartupError:
            return StartupError(
                f"{what}: Kafka at {self.settings.bootstrap_servers} did not answer within "
                f"{self.settings.startup_timeout_seconds:g} s ({type(exc).__name__})"
            )

        return await retry_until(
            step, self.retry, deadline=self.deadline, on_fault=on_fault, gave_up=gave_up, stop=self.stop
        )

    async def topics(self) -> dict[str, TopicFacts]:
        """What every topic of the worker is (partitions, record size, compaction); StartupError
        when one is missing or an output topic leaves no room for an output."""
        s = self.settings

        async def read() -> dict[str, TopicFacts]:
            return await asyncio.wait_for(existing_topics(s, s.all()), self.request_timeout)

        facts = await self.retry_kafka("Kafka does not answer yet", read)
        missing = [name for name in s.all() if name not in facts]
        if s.input_topic in missing:
            raise StartupError(
                f"input topic {s.input_topic} does not exist on {s.bootstrap_servers} "
                "(create it with `identity-worker topics create`)"
            )
        if missing:
            raise StartupError(
                f"output topic(s) {', '.join(missing)} do not exist "
                "(create them with `identity-worker topics create`)"
            )
        problem = unusable_output(s, facts)  # K9/K10: no room for an output is a misconfiguration
        if problem is not None:
            raise StartupError(problem)
        return facts
