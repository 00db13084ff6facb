"""One input record → one output (K1), with the worker's two policies around the pure pipeline.

- `ConfigUnavailable` is not a verdict (V2, C3, K8): it propagates and the record waits.
- Any other exception is a bug: the processor is tried `max_attempts` times, then the record
  becomes a dead letter (DESIGN §2.4) and the worker goes on.
- `unknown_community` is double-checked against the store before it is published (V2): a
  community created a moment ago may not have reached the cache yet. `recheck_community`
  re-reads it and says whether it exists now.

The processor is a parameter, so tests run the real runtime with a processor that raises
for one chosen record (a poison record); production passes `pipeline_processor(...)`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from worker.core.config import CommunityLookup, ConfigUnavailable
from worker.core.contracts import Reason, Source
from worker.core.pipeline import Limits, process_event
from worker.core.records import Output, dead_letter, unreadable_event
from worker.core.redaction import redact
from worker.core.tokencache import TokenCache
from worker.ops.logging import get_logger
from worker.ops.metrics import Metrics

UNKNOWN_RECHECK_TTL = 1.0  # seconds a confirmed-unknown community is trusted (C2's bound)


class Processor(Protocol):
    def __call__(self, value: bytes | None, source: Source, now: float) -> Output: ...


def pipeline_processor(lookup: CommunityLookup, limits: Limits, token_cache: TokenCache | None) -> Processor:
    """The production processor: the pure pipeline bound to the configuration and cache."""

    def process(value: bytes | None, source: Source, now: float) -> Output:
        return process_event(
            value, lookup=lookup, now=now, source=source, limits=limits, token_cache=token_cache
        )

    return process


class Decider:
    def __init__(
        self,
        processor: Processor,
        *,
        metrics: Metrics,
        max_attempts: int,
        recheck_community: Callable[[str], Awaitable[bool]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.processor = processor
        self.metrics = metrics
        self.max_attempts = max_attempts
        self.recheck_community = recheck_community
        self.clock = clock
        self._confirmed_unknown: dict[str, float] = {}
        self._log = get_logger("identity-worker.decide")
        self._observe = metrics.verification_seconds.observe

    def first_verdict(self, value: bytes | None, source: Source) -> Output:
        """The verdict unless `needs_recheck` says `recheck` must confirm it.

        Raises ConfigUnavailable (the record must wait), never anything else. Synchronous, so
        the batch loop pays for a coroutine only on the rare `unknown_community`.
        """
        return self._attempts(value, source)

    def unreadable(self, value: bytes | None, problem: str, source: Source) -> Output:
        """K9: the one output of a record the client could not decode (worker.kafka.fetched)."""
        self.metrics.unreadable_records.inc()
        self._log.warning(
            "record cannot be decoded",
            problem=problem,
            topic=source.topic,
            partition=source.partition,
            offset=source.offset,
        )
        return unreadable_event(value, problem, now=self.clock(), source=source)

    def needs_recheck(self, output: Output) -> bool:
        return output.reason is Reason.UNKNOWN_COMMUNITY and self.recheck_community is not None

    async def recheck(self, output: Output, value: bytes | None, source: Source) -> Output:
        """V2 double check of an `unknown_community` verdict against the store."""
        community_id = output.record.get("community_id")
        if isinstance(community_id, str) and await self._may_exist(community_id):
            return self._attempts(value, source)
        return output

    def _attempts(self, value: bytes | None, source: Source) -> Output:
        error: Exception | None = None
        for attempt in range(1, self.max_attempts + 1):
            started = time.perf_counter()
            try:
                output = self.processor(value, source, self.clock())
            except ConfigUnavailable:
                raise
            except Exception as exc:
                error = exc
                self.metrics.processing_errors.labels(type(exc).__name__).inc()
                self._log.warning(
                    "processing raised",
                    error_type=type(exc).__name__,
                    error=redact(str(exc))[:300],
                    attempt=attempt,
                    topic=source.topic,
                    partition=source.partition,
                    offset=source.offset,
                )
                continue
            self._observe(time.perf_counter() - started)
            return output
        assert error is not None
        self._log.error(
            "dead letter",
            error_type=type(error).__name__,
            attempts=self.max_attempts,
            topic=source.topic,
            partition=source.partition,
            offset=source.offset,
        )
        return dead_letter(value, error, now=self.clock(), source=source, attempts=self.max_attempts)

    async def _may_exist(self, community_id: str) -> bool:
        """V2 double check: re-read the community from the store. True when it now exists.

        A store that cannot answer makes the record wait (ConfigUnavailable), never a verdict.
        """
        now = time.monotonic()
        confirmed = self._confirmed_unknown.get(community_id)
        if confirmed is not None and now - confirmed < UNKNOWN_RECHECK_TTL:
            return False
        assert self.recheck_community is not None
        try:
            found = await self.recheck_community(community_id)
        except ConfigUnavailable:
            raise
        except Exception as exc:  # the store adapter failed: infrastructure, not a verdict (K8)
            raise ConfigUnavailable(
                f"cannot re-check community {community_id}: {type(exc).__name__}"
            ) from exc
        if not found:
            if len(self._confirmed_unknown) > 10_000:
                self._confirmed_unknown.clear()
            self._confirmed_unknown[community_id] = now
            return False
        self._confirmed_unknown.pop(community_id, None)
        return True
