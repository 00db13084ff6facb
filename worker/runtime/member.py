"""One consumer-group member: the batch/transaction lifecycle (K1–K8), owned here and nowhere else.

Loop, one batch at a time:

1. **Collect** (K4): `getmany` until `batch_size` records or `batch_linger_ms` after the
   first record, or until SIGTERM (K6: stop fetching) or a revocation.
2. **Decide** under the batch lock: each record through `Decider` in partition order (K3).
   A `ConfigUnavailable` (store down, community not cached) stops that partition at that
   record: it waits (K8), the records before it are still published.
3. **Commit** (K2): exactly_once — one transaction holding the outputs and the next input
   offsets; at_least_once — outputs acknowledged, then offsets committed.
4. **Recover** after any infrastructure fault (K8): abort, replace the producer (same
   transactional id: `InitProducerId` fences the old one and completes its transaction),
   read the group's committed offsets and seek every partition there, then retry with
   capped backoff. Nothing is skipped: the rewind happens before any further commit.

Rebalance (K5): `on_partitions_revoked` bumps the generation (a batch collected before it is
dropped: its records are fetched again from the committed offsets) and takes the batch lock,
so it returns only once the in-flight batch has committed or aborted; then it settles the
last transaction (`_settle`: the offsets are visible before the partitions move). An output
is therefore never committed without its offset, nor an offset without its output.

aiokafka limits (0.14): transactional requests are protocol version 0 — `TxnOffsetCommit`
carries no group generation or member id (no KIP-447 fencing), so the broker cannot refuse
a commit from a member the group has already expelled. Mitigations here: the batch lock
above; a check of the coordinator's generation right before `commit_transaction`
(`MemberExpelled` → abort); a session timeout far longer than a batch takes; a short
transaction timeout so a SIGKILLed member's open transaction is aborted by the broker soon.
The member's transactional id is unique per process (two live members never fence each
other); a crashed member's open transaction is therefore ended by the timeout, not by a
successor. OffsetFetch is version 3, without `require_stable`: a new owner could read the
offsets of a transaction whose markers are still being written, hence `_settle` on
revocation and on shutdown. `seek_to_committed` skips offset 0 and "no commit"; `_rewind`
seeks itself. Listener exceptions are swallowed by aiokafka, so the listener never raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import IllegalStateError, KafkaError
from aiokafka.structs import TopicPartition

from worker.core.config import ConfigUnavailable
from worker.core.pipeline import Source
from worker.kafka.clients import make_consumer, make_producer
from worker.kafka.topics import existing_topics
from worker.ops.health import Health
from worker.ops.logging import get_logger
from worker.ops.metrics import Metrics
from worker.runtime.backoff import Backoff
from worker.runtime.commit import (
    AcknowledgedCommitter,
    Decided,
    MemberExpelled,
    Routing,
    TransactionalCommitter,
    next_offsets,
    unusable_output,
)
from worker.runtime.decide import Decider
from worker.settings import Guarantee, Settings

T = TypeVar("T")

# Faults of the infrastructure (K8): retried, never a verdict. Decided by type, not text.
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    KafkaError,
    TimeoutError,
    OSError,
    MemberExpelled,
)


# While a transaction is in flight, a started batch checks this often whether it may close.
IDLE_POLL = 0.005
# The decide loop lets the event loop run this often (records), so the in-flight commit advances.
YIELD_EVERY = 50

# The health probe answers within this: /readyz turns 503 a few seconds into an outage.
PROBE_TIMEOUT = 3.0


class StartupError(Exception):
    """The worker cannot start (missing topic, broker never answered): one line for the operator."""


Batch = dict[TopicPartition, list[Any]]


class Member:
    def __init__(self, settings: Settings, decider: Decider, metrics: Metrics, health: Health) -> None:
        self.settings = settings
        self.decider = decider
        self.metrics = metrics
        self.health = health
        self.transactional_id = (
            settings.transactional_id() if settings.guarantee is Guarantee.EXACTLY_ONCE else None
        )
        self.processed = 0  # records committed by this member (progress line)
        self.committed: dict[TopicPartition, int] = {}  # next offset per partition (lag)
        self.clean = True  # False when the last batch could not commit before exit
        self._consumer: Any = None
        self._producer: Any = None
        self._committer: TransactionalCommitter | AcknowledgedCommitter | None = None
        self._lock = asyncio.Lock()
        self._generation = 0
        self._needs_rewind = False
        self._replace_producer = False
        self._unsettled = False  # a transaction committed since the last `_settle`
        self._kafka_backoff = Backoff(
            settings.retry_backoff_initial_ms / 1000, settings.retry_backoff_max_ms / 1000
        )
        self._store_backoff = Backoff(
            settings.retry_backoff_initial_ms / 1000, settings.retry_backoff_max_ms / 1000
        )
        self._op_timeout = settings.request_timeout_ms / 1000 + 5
        # Past the transaction timeout the broker aborts the transaction anyway (and fences us).
        self._commit_timeout = settings.transaction_timeout_ms / 1000
        self._log = get_logger("identity-worker.runtime")

    # ------------------------------------------------------------------ start and stop

    async def start(self, stop: asyncio.Event) -> None:
        """Check the topics (fail fast), then join the group. Waits for Kafka up to the start-up timeout."""
        s = self.settings
        deadline = time.monotonic() + s.startup_timeout_seconds
        backoff = Backoff(s.retry_backoff_initial_ms / 1000, min(5.0, s.retry_backoff_max_ms / 1000))
        while True:
            try:
                counts = await asyncio.wait_for(existing_topics(s, s.all()), self._op_timeout)
                break
            except INFRASTRUCTURE_ERRORS as exc:
                self._infra_fault("kafka", exc, "Kafka does not answer yet")
                if time.monotonic() > deadline or stop.is_set():
                    raise StartupError(
                        f"Kafka at {s.bootstrap_servers} did not answer within "
                        f"{s.startup_timeout_seconds:g} s ({type(exc).__name__})"
                    ) from None
                await backoff.sleep(stop)
        missing = [name for name in s.all() if name not in counts]
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
        problem = unusable_output(s, counts)  # K9/K10: no room for an output is a misconfiguration
        if problem is not None:
            raise StartupError(problem)
        routing = Routing(s, counts)
        self.health.outputs_problem = lambda: routing.problem
        if s.guarantee is Guarantee.EXACTLY_ONCE:
            self._committer = TransactionalCommitter(s.group_id, routing, self._is_member)
        else:
            self._committer = AcknowledgedCommitter(routing)
        self._consumer = make_consumer(s, listener=_Listener(self))
        await self._retry_until(stop, deadline, "joining Kafka", self._start_clients)
        self.health.kafka_ok()
        self._log.info(
            "member started",
            group_id=s.group_id,
            input_topic=s.input_topic,
            guarantee=s.guarantee.value,
            transactional_id=self.transactional_id,
        )

    async def _start_clients(self) -> None:
        if self._producer is None:
            await self._new_producer()
        await asyncio.wait_for(self._consumer.start(), self._op_timeout)

    async def _swap_producer(self) -> None:
        old, self._producer = self._producer, None
        if old is not None:
            await _discard(old)
        await self._new_producer()

    async def _settle(self) -> None:
        """Return only once our last committed transaction is complete, offsets included (K5).

        `commit_transaction` returns when the broker has logged the decision; the markers
        that make the offsets visible follow asynchronously, and aiokafka's OffsetFetch
        (version 3, no `require_stable`) would show the next owner the previous offsets in
        that gap — a duplicate. A fresh producer with our transactional id is answered
        only after the previous transaction has completed, so swapping the producer before
        giving partitions away closes the gap. Rebalances are rare; this costs one round trip.
        """
        if self.settings.guarantee is not Guarantee.EXACTLY_ONCE or not self._unsettled:
            return
        await self._swap_producer()
        self._unsettled = False

    async def _new_producer(self) -> None:
        """Start a producer; exactly_once: `InitProducerId` with our id fences the previous one."""
        producer = make_producer(self.settings, transactional_id=self.transactional_id)
        try:
            await asyncio.wait_for(producer.start(), self._op_timeout)
        except BaseException:
            await _quietly(producer.stop(), 5)
            raise
        self._producer = producer

    async def _retry_until(
        self, stop: asyncio.Event, deadline: float, what: str, step: Callable[[], Awaitable[None]]
    ) -> None:
        backoff = Backoff(self._kafka_backoff.initial, min(5.0, self._kafka_backoff.maximum))
        while True:
            try:
                await step()
                return
            except INFRASTRUCTURE_ERRORS as exc:
                self._infra_fault("kafka", exc, what)
                if time.monotonic() > deadline or stop.is_set():
                    raise StartupError(f"{what} failed: {type(exc).__name__}: {exc}"[:300]) from None
                await backoff.sleep(stop)

    async def close(self) -> None:
        """Settle the last transaction, leave the group (no revocation callback on stop), close."""
        if self._producer is not None:
            await _quietly(self._settle(), self._op_timeout)
        if self._consumer is not None:
            await _quietly(self._consumer.stop(), self._op_timeout)
        if self._producer is not None:
            await _quietly(self._producer.stop(), self._op_timeout)
        self._log.info("member stopped", processed=self.processed, clean=self.clean)

    # ---------------------------------------------------------------------- main loop

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` (K6): stop fetching, finish and commit the current batch, return.

        Pipelined: while batch n's transaction is in flight (`inflight`), batch n+1 is
        collected and decided; its transaction begins only once n's has ended, so one
        producer never holds two transactions and each partition's outputs stay in order (K3).
        """
        inflight: asyncio.Task[None] | None = None
        try:
            while not stop.is_set():
                if self._needs_rewind:
                    await _finish(inflight)
                    inflight = None
                    await self._rewind(stop)
                    continue
                try:
                    batch, generation = await self._collect(stop, inflight)
                except INFRASTRUCTURE_ERRORS as exc:
                    self._infra_fault("kafka", exc, "fetch failed")
                    self._needs_rewind = True
                    await self._kafka_backoff.sleep(stop)
                    continue
                if not batch:
                    continue
                started = time.perf_counter()
                decided, unavailable = await self._decide(batch)
                await _finish(inflight)  # the previous transaction ends before this one begins
                inflight = None
                if generation != self._generation or self._needs_rewind:
                    # Revoked or failed meanwhile. Records fetched after the new assignment have
                    # already moved the consumer past them: seek back to the committed offsets, or
                    # the next commit would skip this batch (K1, K5).
                    self._needs_rewind = True
                    continue
                if decided:
                    inflight = asyncio.create_task(self._commit(decided, generation, started, stop))
                if unavailable is not None:
                    await self._wait_for_store(unavailable, stop)
                else:
                    self._store_backoff.reset()
        finally:
            await _finish(inflight)

    async def _collect(self, stop: asyncio.Event, inflight: asyncio.Task[None] | None) -> tuple[Batch, int]:
        """K4: up to batch_size records, closing batch_linger_ms after the first one.

        A batch also closes as soon as there is nothing in flight to wait for: under light load
        a record does not sit out the linger (delay), under backlog the batch fills while the
        previous transaction commits (throughput).
        """
        size = self.settings.batch_size
        linger = self.settings.batch_linger_ms / 1000
        generation = self._generation
        batch: Batch = {}
        count = 0
        closes_at: float | None = None
        while count < size and not stop.is_set() and generation == self._generation:
            if closes_at is None:
                wait = 0.2
            elif inflight is None or inflight.done():
                break
            else:
                wait = min(IDLE_POLL, max(0.0, closes_at - time.monotonic()))
            got = await self._consumer.getmany(timeout_ms=int(wait * 1000), max_records=size - count)
            for tp, records in got.items():
                batch.setdefault(tp, []).extend(records)
                count += len(records)
            if count and closes_at is None:
                closes_at = time.monotonic() + linger
            if closes_at is not None and time.monotonic() >= closes_at:
                break
            if not count:
                return batch, generation  # idle: let the caller look at `stop`
        return batch, generation

    async def _decide(self, batch: Batch) -> tuple[list[Decided], ConfigUnavailable | None]:
        """Each record through the `Decider`, in partition order (K3).

        A `ConfigUnavailable` (store down, community not cached) stops that partition at that
        record: the records before it are still published, it and the rest wait (K8), and the
        last such error is returned. Every `YIELD_EVERY` records the loop lets the in-flight
        transaction's I/O advance.
        """
        decided: list[Decided] = []
        waiting: dict[TopicPartition, int] = {}  # partition → first record that must wait
        decider = self.decider
        first_verdict, needs_recheck = decider.first_verdict, decider.needs_recheck
        unavailable: ConfigUnavailable | None = None
        for tp, records in batch.items():
            for record in records:
                source = Source(record.topic, record.partition, record.offset)
                try:
                    output = first_verdict(record.value, source)
                    if needs_recheck(output):
                        output = await decider.recheck(output, record.value, source)
                except ConfigUnavailable as exc:  # V2/C3/K8: no verdict; this partition waits here
                    waiting[tp] = record.offset
                    unavailable = exc
                    break
                decided.append(Decided(record, output))
                if len(decided) % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
        for tp, offset in waiting.items():
            with contextlib.suppress(IllegalStateError):
                self._consumer.seek(tp, offset)
        return decided, unavailable

    async def _wait_for_store(self, error: ConfigUnavailable, stop: asyncio.Event) -> None:
        self._infra_fault("store", error, "configuration unavailable; records wait")
        await self._store_backoff.sleep(stop)

    async def _commit(
        self, decided: list[Decided], generation: int, started: float, stop: asyncio.Event
    ) -> None:
        """One batch's transaction, under the batch lock that revocation waits for (K5)."""
        async with self._lock:
            if generation != self._generation or self._needs_rewind:
                self._needs_rewind = True  # revoked while it was being decided: redo from the offsets
                return
            try:
                assert self._committer is not None
                await asyncio.wait_for(
                    self._committer.commit(self._producer, self._consumer, decided), self._commit_timeout
                )
            except INFRASTRUCTURE_ERRORS as exc:
                await self._failed_commit(exc, stop)
                return
            self._committed(decided, started)

    def _committed(self, decided: list[Decided], started: float) -> None:
        self.health.kafka_ok()
        self._kafka_backoff.reset()
        verdicts = Counter((item.output.outcome, item.output.reason) for item in decided)
        self.metrics.count_events(
            {(outcome.value, reason.value if reason else ""): n for (outcome, reason), n in verdicts.items()}
        )
        self.committed.update(next_offsets(decided))
        self.metrics.batch_size.observe(len(decided))
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.metrics.observe_delays([item.record.timestamp for item in decided])  # issue 16: delay panel
        self.metrics.transactions.labels("committed").inc()
        self._unsettled = True
        self.processed += len(decided)

    async def _failed_commit(self, exc: BaseException, stop: asyncio.Event) -> None:
        """K8: abort what can be aborted; the batch is redone from the committed offsets."""
        self._infra_fault("kafka", exc, "batch not committed; it will be redone")
        self.metrics.transactions.labels("aborted").inc()
        if self.settings.guarantee is Guarantee.EXACTLY_ONCE:
            # Whatever state the transaction is in, a fresh producer with the same id ends it.
            self._replace_producer = True
        self._needs_rewind = True
        self.clean = False
        await self._kafka_backoff.sleep(stop)

    async def _rewind(self, stop: asyncio.Event) -> None:
        """Replace the producer if needed, then seek every owned partition to its committed offset."""
        try:
            async with self._lock:
                if self._replace_producer:
                    await self._swap_producer()
                    self._replace_producer = False
                for tp in list(self._consumer.assignment()):
                    offset = await asyncio.wait_for(self._consumer.committed(tp), self._op_timeout)
                    with contextlib.suppress(IllegalStateError):
                        if offset is None:
                            await self._consumer.seek_to_beginning(tp)
                        else:
                            self._consumer.seek(tp, offset)
                self._needs_rewind = False
            self.health.kafka_ok()
            self._kafka_backoff.reset()
            self.clean = True
            self._log.info("resumed from the committed offsets")
        except INFRASTRUCTURE_ERRORS as exc:
            self._infra_fault("kafka", exc, "recovery failed; retrying")
            await self._kafka_backoff.sleep(stop)

    # --------------------------------------------------------------- K5, health, lag

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        self._generation += 1
        self.metrics.rebalances.inc()
        async with self._lock:  # waits for the in-flight batch to commit or abort (K5)
            try:
                await asyncio.wait_for(self._settle(), self._op_timeout)
            except INFRASTRUCTURE_ERRORS as exc:
                self._infra_fault("kafka", exc, "could not settle the last transaction")
                self._replace_producer = self._needs_rewind = True
            for tp in revoked:
                self.committed.pop(tp, None)
                with contextlib.suppress(KeyError):
                    self.metrics.consumer_lag.remove(tp.topic, str(tp.partition))
        self._log.info("partitions revoked", partitions=sorted(tp.partition for tp in revoked))

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        self.metrics.assigned_partitions.set(len(assigned))
        self._log.info("partitions assigned", partitions=sorted(tp.partition for tp in assigned))

    def _is_member(self) -> bool:
        """False once the coordinator has reset our generation (expelled). aiokafka internals."""
        coordinator = getattr(self._consumer, "_coordinator", None)
        generation = getattr(coordinator, "generation", 0)
        return not isinstance(generation, int) or generation >= 0

    def _infra_fault(self, component: str, exc: BaseException, what: str) -> None:
        error = type(exc).__name__
        self.metrics.infrastructure_retries.labels(component, error).inc()
        if component == "kafka":
            self.health.kafka_failed(f"{what}: {error}")
        self._log.warning(what, component=component, error_type=error, error=str(exc)[:300])

    async def sample_lag(self) -> int | None:
        """Records not yet committed on the owned partitions; also a Kafka liveness probe."""
        if self._consumer is None:
            return None
        owned = list(self._consumer.assignment())
        if not owned:
            return 0
        try:
            ends = await asyncio.wait_for(self._consumer.end_offsets(owned), PROBE_TIMEOUT)
        except INFRASTRUCTURE_ERRORS as exc:
            self._infra_fault("kafka", exc, "Kafka does not answer")
            return None
        if not self._needs_rewind:
            self.health.kafka_ok()
        total = 0
        for tp, end in ends.items():
            position = self.committed.get(tp)
            if position is None:
                try:
                    position = await asyncio.wait_for(self._consumer.committed(tp), self._op_timeout)
                except INFRASTRUCTURE_ERRORS:
                    continue
                position = position or 0
                self.committed.setdefault(tp, position)
            lag = max(0, end - position)
            self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)
            total += lag
        return total


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, member: Member) -> None:
        self.member = member

    async def on_partitions_revoked(self, revoked: Any) -> None:
        try:
            await self.member.on_revoked(set(revoked))
        except Exception as exc:  # aiokafka would swallow it; say it ourselves
            self.member._log.error("revocation handling failed", error_type=type(exc).__name__)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        try:
            await self.member.on_assigned(set(assigned))
        except Exception as exc:
            self.member._log.error("assignment handling failed", error_type=type(exc).__name__)


async def _finish(task: asyncio.Task[None] | None) -> None:
    """Wait for a batch's commit task; its failures are already handled inside it."""
    if task is not None:
        await task


async def _discard(producer: Any) -> None:
    """Stop a producer we are replacing; if `stop` hangs, drop its sender and sockets.

    aiokafka's `stop` flushes, and a batch whose produce keeps failing is retried forever
    under idempotence, so `stop` can wait forever; an abandoned sender would keep retrying.
    Cancelling the sender task without awaiting it avoids its wait on the transaction task.
    """
    try:
        await asyncio.wait_for(producer.stop(), 5)
    except Exception:
        sender = getattr(getattr(producer, "_sender", None), "sender_task", None)
        if sender is not None:
            sender.cancel()
        await _quietly(producer.client.close(), 5)


async def _quietly(awaitable: Awaitable[T], timeout: float) -> None:
    """Best effort (closing clients during shutdown or recovery): bounded, errors ignored."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(awaitable, timeout)
