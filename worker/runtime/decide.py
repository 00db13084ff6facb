"""One input record → one output (K1), with the worker's two policies around the pure pipeline.

`Decider.decide` takes a whole fetched batch and returns what it decided (`Decided`: each
record with its one output, in partition order, K3) and what must wait (`Waiting`).

- `ConfigUnavailable` is not a verdict (V2, C3, K8): it propagates and the record waits.
- Any other exception is a bug: the processor is tried `max_attempts` times, then the record
  becomes a dead letter (DESIGN §2.4) and the worker goes on.
- `unknown_community` is double-checked against the store before it is published (V2): a
  community created a moment ago may not have reached the cache yet. `recheck_community`
  re-reads it and says whether it exists now; the store cache remembers an id it found absent
  (`ConfigCache.refresh_community`, the one negative cache), so a stream of events for one
  unknown community costs the store one read per `negative_ttl`.

The processor is a parameter, so tests run the real runtime with a processor that raises
for one chosen record (a poison record); production passes `pipeline_processor(...)`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import NamedTuple, Protocol

import structlog
from aiokafka.structs import TopicPartition

from worker.core.community import CommunityLookup, ConfigUnavailable
from worker.core.contracts import Source
from worker.core.pipeline import Limits, process_event
from worker.core.reasons import Reason
from worker.core.records import Output, dead_letter, unreadable_event
from worker.core.redaction import redact
from worker.core.tokencache import TokenCache
from worker.kafka.consumer import Record
from worker.kafka.fetched import UnreadableRecord
from worker.ops.metrics import Metrics

log = structlog.get_logger(__name__)

# T1: `decide` lets the event loop run at least this often (seconds of deciding), so the
# in-flight commit, notifications and timers advance whatever the batch's size and whatever
# each record costs (a slow machine, a cold cache: 50 records once took 28 ms under load).
SLICE_SECONDS = 0.005


class Decided(NamedTuple):
    """One input record and its one output (K1).

    A NamedTuple: immutable, and made in half the time of a frozen dataclass (one per record,
    so it counts in the per-event cost, docs/performance.md)."""

    record: Record
    output: Output


class Waiting(NamedTuple):
    """A partition held at a record that gets no verdict now (V2, C3, K9)."""

    offset: int  # the record that waits; it and the rest of its partition are fetched again
    error: ConfigUnavailable


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
        self._observe = metrics.verification_seconds.observe

    async def decide(
        self, batch: Mapping[TopicPartition, list[Record]]
    ) -> tuple[list[Decided], dict[TopicPartition, Waiting]]:
        """Each record of `batch` through the pipeline, in partition order (K3): its one output.

        A `ConfigUnavailable` (store down, community not cached or unusable) holds that
        partition at that record: the records before it are decided, it and the rest of its
        partition are returned as `Waiting`, the other partitions go on (K9). An unreadable
        record gets its `malformed_event` (K9); `unknown_community` is checked again against
        the store first (V2). Every `SLICE_SECONDS` of deciding the event loop runs (T1).
        """
        decided: list[Decided] = []
        waiting: dict[TopicPartition, Waiting] = {}
        append, unreadable = decided.append, self.unreadable
        # The first attempt runs here, not through `_attempts`: a method call and its retry loop
        # less per record (the per-event cost, docs/performance.md); a bug goes to `_attempts`.
        processor, clock, perf, observe = self.processor, self.clock, time.perf_counter, self._observe
        recheck = self.recheck_community is not None
        # One clock read per record: the end of one record's verification starts the next one's
        # (the bookkeeping between two records, ~0.3 µs, counts in the next); a record that
        # took another path (unreadable, a bug, a recheck, waiting) restarts the clock.
        started = perf()
        slice_ends = started + SLICE_SECONDS
        for tp, records in batch.items():
            for record in records:
                source = Source(record.topic, record.partition, record.offset)
                try:
                    if record.__class__ is UnreadableRecord:
                        output = unreadable(record.value, record.problem, source)
                        started = perf()
                    else:
                        try:
                            output = processor(record.value, source, clock())
                        except ConfigUnavailable:
                            raise
                        except Exception as exc:  # a bug: counted as the first attempt
                            output = self._attempts(record.value, source, failed=exc)
                            started = perf()
                        else:
                            ended = perf()
                            observe(ended - started)
                            started = ended
                        if recheck and output.reason is Reason.UNKNOWN_COMMUNITY:
                            output = await self._recheck(output, record.value, source)
                            started = perf()
                except ConfigUnavailable as exc:  # V2/C3/K8: no verdict; this partition waits here
                    waiting[tp] = Waiting(record.offset, exc)
                    started = perf()
                    break
                append(Decided(record, output))
                if started >= slice_ends:
                    await asyncio.sleep(0)
                    started = perf()
                    slice_ends = started + SLICE_SECONDS
        return decided, waiting

    def unreadable(self, value: bytes | None, problem: str, source: Source) -> Output:
        """K9: the one output of a record the client could not decode (worker.kafka.fetched)."""
        self.metrics.unreadable_records.inc()
        log.warning(
            "record cannot be decoded",
            problem=problem,
            topic=source.topic,
            partition=source.partition,
            offset=source.offset,
        )
        return unreadable_event(value, problem, now=self.clock(), source=source)

    async def _recheck(self, output: Output, value: bytes | None, source: Source) -> Output:
        """V2 double check of an `unknown_community` verdict against the store."""
        community_id = output.community_id
        if isinstance(community_id, str) and await self._may_exist(community_id):
            return self._attempts(value, source)
        return output

    def _attempts(self, value: bytes | None, source: Source, failed: Exception | None = None) -> Output:
        """The verdict; a bug tried `max_attempts` times, then a dead letter. Raises only
        ConfigUnavailable (the record must wait). `failed`: the first attempt's exception,
        when the caller made that attempt itself."""
        error: Exception | None = None
        first = 1
        if failed is not None:
            error, first = failed, 2
            self._failed(failed, 1, source)
        for attempt in range(first, self.max_attempts + 1):
            started = time.perf_counter()
            try:
                output = self.processor(value, source, self.clock())
            except ConfigUnavailable:
                raise
            except Exception as exc:
                error = exc
                self._failed(exc, attempt, source)
                continue
            self._observe(time.perf_counter() - started)
            return output
        assert error is not None
        log.error(
            "dead letter",
            error_type=type(error).__name__,
            attempts=self.max_attempts,
            topic=source.topic,
            partition=source.partition,
            offset=source.offset,
        )
        return dead_letter(value, error, now=self.clock(), source=source, attempts=self.max_attempts)

    def _failed(self, error: Exception, attempt: int, source: Source) -> None:
        self.metrics.processing_errors.labels(type(error).__name__).inc()
        log.warning(
            "processing raised",
            error_type=type(error).__name__,
            error=redact(str(error))[:300],
            attempt=attempt,
            topic=source.topic,
            partition=source.partition,
            offset=source.offset,
        )

    async def _may_exist(self, community_id: str) -> bool:
        """V2 double check: re-read the community from the store. True when it now exists.

        A store that cannot answer makes the record wait (ConfigUnavailable), never a verdict.
        """
        assert self.recheck_community is not None
        try:
            return await self.recheck_community(community_id)
        except ConfigUnavailable:
            raise
        except Exception as exc:  # the store adapter failed: infrastructure, not a verdict (K8)
            raise ConfigUnavailable(
                f"cannot re-check community {community_id}: {type(exc).__name__}"
            ) from exc
