"""One consumer-group member: the batch/transaction lifecycle (K1–K8), owned here and nowhere else.

Loop, one batch at a time:

1. **Collect** (K4): `getmany` until `batch_size` records or `batch_linger_ms` after the
   first record, or until SIGTERM (K6: stop fetching) or a revocation.
   Records come through `worker.kafka.fetched`: one the client cannot decode is an
   `UnreadableRecord` (K9), never an exception. A fetch fault is classified
   (`worker.runtime.faults`, K10): fatal stops the worker; infrastructure keeps the records
   collected so far (nothing was consumed past them: no rewind) and backs off.
2. **Decide**: each record through `Decider` in partition order (K3); an unreadable record
   gets its `malformed_event`. A `ConfigUnavailable` (store down, community not cached or
   unusable) holds that partition at that record (`Waits`: paused, retried on its own
   backoff); the records before it are still published and the other partitions go on (K9).
3. **Commit** (K2): exactly_once — one transaction holding the outputs and the next input
   offsets; at_least_once — outputs acknowledged, then offsets committed. The offsets are
   the consumer's positions, past control records and aborted batches (K11: a drained group
   shows lag 0), also when a fetch returned only those.
4. **Recover** after an infrastructure fault in a commit (K8): replace the producer (same
   transactional id: `InitProducerId` fences the old one and completes its transaction),
   seek every partition to its committed offset, retry with capped backoff (slept outside
   the batch lock). The offsets come from the worker's own last successful commit; only
   after a commit whose outcome is unknown are they read from the group coordinator, once
   the new producer has settled that transaction (a read right after a commit may return
   the previous offset for a few ms: a duplicate). Nothing is skipped: the rewind happens
   before any further commit.

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
revocation and on shutdown, and `_rewind` prefers the offsets it committed itself.
`seek_to_committed` skips offset 0 and "no commit"; `_rewind` seeks itself. Listener
exceptions are swallowed by aiokafka, so the listener never raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import IllegalStateError
from aiokafka.structs import TopicPartition

from worker.core.config import ConfigUnavailable
from worker.core.contracts import Source
from worker.kafka.clients import make_consumer, make_producer
from worker.kafka.fetched import UnreadableRecord
from worker.kafka.topics import TopicFacts, existing_topics
from worker.ops.health import Health
from worker.ops.logging import get_logger
from worker.ops.metrics import Metrics
from worker.runtime.backoff import Backoff
from worker.runtime.commit import (
    AcknowledgedCommitter,
    Decided,
    Routing,
    TransactionalCommitter,
    unusable_output,
)
from worker.runtime.decide import Decider
from worker.runtime.faults import FatalFault, Fault, classify, hint
from worker.runtime.partitions import Offsets, Partitions
from worker.runtime.waits import Waits
from worker.settings import Guarantee, Settings

T = TypeVar("T")


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
        self.clean = True  # False when the last batch could not commit before exit
        self._consumer: Any = None
        self._producer: Any = None
        self._committer: TransactionalCommitter | AcknowledgedCommitter | None = None
        self._lock = asyncio.Lock()
        self._generation = 0
        self._needs_rewind = False
        self._replace_producer = False
        self._offsets_unknown = False  # a commit failed: the coordinator's offsets are the truth
        self._commit_failing = False  # the last commit failed: not ready until one succeeds
        self._unsettled = False  # a transaction committed since the last `_settle`
        self._kafka_backoff = Backoff(
            settings.retry_backoff_initial_ms / 1000, settings.retry_backoff_max_ms / 1000
        )
        waits = Waits(settings.retry_backoff_initial_ms / 1000, settings.retry_backoff_max_ms / 1000)
        self.partitions = Partitions(waits, metrics)
        self.committed = self.partitions.committed  # next offset per owned partition (lag, rewind)
        self._op_timeout = settings.request_timeout_ms / 1000 + 5
        # Past the transaction timeout the broker aborts the transaction anyway (and fences us).
        self._commit_timeout = settings.transaction_timeout_ms / 1000
        self._log = get_logger("identity-worker.runtime")
        health.waiting = lambda: waits.describe(time.monotonic())
        #: Called with each committed batch (L1: key usage and health counts, issue 15).
        self.on_committed: Callable[[list[Decided]], None] | None = None

    # ------------------------------------------------------------------ start and stop

    async def start(self, stop: asyncio.Event) -> None:
        """Check the topics (fail fast), then join the group. Waits for Kafka up to the start-up timeout."""
        s = self.settings
        deadline = time.monotonic() + s.startup_timeout_seconds
        counts: dict[str, TopicFacts] = {}

        async def check_topics() -> None:
            counts.update(await asyncio.wait_for(existing_topics(s, s.all()), self._op_timeout))

        await self._retry_until(stop, deadline, "Kafka does not answer yet", check_topics)
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
        try:
            self._consumer = make_consumer(s, listener=_Listener(self))
        except Exception as exc:
            if classify(exc) is not Fault.FATAL:
                raise
            raise StartupError(f"cannot read {s.input_topic}: {type(exc).__name__}: {hint(exc)}") from None
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
        """Start-up: retry `step` on infrastructure faults until `deadline`; a fatal one ends it at once."""
        backoff = Backoff(self._kafka_backoff.initial, min(5.0, self._kafka_backoff.maximum))
        while True:
            try:
                await step()
                return
            except Exception as exc:
                try:
                    self._fault("kafka", exc, what)
                except FatalFault as fatal:
                    raise StartupError(str(fatal)) from None
                if time.monotonic() > deadline or stop.is_set():
                    raise StartupError(
                        f"{what}: Kafka at {self.settings.bootstrap_servers} did not answer within "
                        f"{self.settings.startup_timeout_seconds:g} s ({type(exc).__name__})"
                    ) from None
                await backoff.sleep(stop)

    async def close(self) -> None:
        """Settle the last transaction, leave the group (no revocation callback on stop), close."""
        if self._producer is not None and self.health.fatal is None:
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
        Raises `FatalFault` on a fatal misconfiguration (K10), after the batch in flight ended.
        """
        inflight: asyncio.Task[None] | None = None
        try:
            while not stop.is_set():
                if self._needs_rewind:
                    await _finish(inflight)
                    inflight = None
                    await self._rewind(stop)
                    continue
                self.partitions.resume_due(self._consumer)
                batch, generation, fetch_fault = await self._collect(stop, inflight)
                started = time.perf_counter()
                decided = await self._decide(batch) if batch else []
                offsets = self.partitions.offsets(self._consumer, decided)
                if decided or offsets:
                    await _finish(inflight)  # the previous transaction ends before this one begins
                    inflight = None
                    if generation != self._generation or self._needs_rewind:
                        # Revoked or failed meanwhile. Records fetched after the new assignment have
                        # already moved the consumer past them: seek back to the committed offsets, or
                        # the next commit would skip this batch (K1, K5).
                        self._needs_rewind = True
                        continue
                    inflight = asyncio.create_task(self._commit(decided, offsets, generation, started, stop))
                if fetch_fault and not batch:
                    # Nothing fetched at all: back off. A fault of one partition (aiokafka raises
                    # it only when no other partition has records ready) holds up nobody else.
                    await self._kafka_backoff.sleep(stop)
        finally:
            await _finish(inflight)

    async def _collect(
        self, stop: asyncio.Event, inflight: asyncio.Task[None] | None
    ) -> tuple[Batch, int, bool]:
        """K4: up to batch_size records, closing batch_linger_ms after the first one.

        A batch also closes as soon as there is nothing in flight to wait for: under light load
        a record does not sit out the linger (delay), under backlog the batch fills while the
        previous transaction commits (throughput). A fetch fault ends the batch with what was
        collected (the consumer's positions never pass a record not returned): the third value
        says the caller should back off. A fatal one raises `FatalFault`.
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
            try:
                got = await self._consumer.getmany(timeout_ms=int(wait * 1000), max_records=size - count)
            except Exception as exc:
                self._fault("kafka", exc, "fetch failed")
                return batch, generation, True
            for tp, records in got.items():
                batch.setdefault(tp, []).extend(records)
                count += len(records)
            if count and closes_at is None:
                closes_at = time.monotonic() + linger
            if closes_at is not None and time.monotonic() >= closes_at:
                break
            if not count:
                break  # idle: let the caller look at `stop`, the waits and the control records
        return batch, generation, False

    async def _decide(self, batch: Batch) -> list[Decided]:
        """Each record through the `Decider`, in partition order (K3).

        A `ConfigUnavailable` (store down, community not cached or unusable) holds that
        partition at that record (`Partitions.hold`): the records before it are still published, it
        and the rest wait, the other partitions go on (K9). Every `YIELD_EVERY` records the
        loop lets the in-flight transaction's I/O advance.
        """
        decided: list[Decided] = []
        partitions, waits = self.partitions, self.partitions.waits
        decider = self.decider
        first_verdict, needs_recheck = decider.first_verdict, decider.needs_recheck
        for tp, records in batch.items():
            held = False
            for record in records:
                source = Source(record.topic, record.partition, record.offset)
                try:
                    if record.__class__ is UnreadableRecord:
                        output = decider.unreadable(record.value, record.problem, source)
                    else:
                        output = first_verdict(record.value, source)
                        if needs_recheck(output):
                            output = await decider.recheck(output, record.value, source)
                except ConfigUnavailable as exc:  # V2/C3/K8: no verdict; this partition waits here
                    partitions.hold(self._consumer, tp, record.offset, exc)
                    held = True
                    break
                decided.append(Decided(record, output))
                if len(decided) % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
            if not held and tp in waits:
                partitions.release(tp)
        return decided

    async def _commit(
        self, decided: list[Decided], offsets: Offsets, generation: int, started: float, stop: asyncio.Event
    ) -> None:
        """One batch's transaction, under the batch lock that revocation waits for (K5).

        A failed commit's backoff is slept after the lock is released, so a rebalance never
        waits for it.
        """
        async with self._lock:
            if generation != self._generation or self._needs_rewind:
                self._needs_rewind = True  # revoked while it was being decided: redo from the offsets
                return
            try:
                assert self._committer is not None
                await asyncio.wait_for(
                    self._committer.commit(self._producer, self._consumer, decided, offsets),
                    self._commit_timeout,
                )
            except Exception as exc:
                failed: Exception | None = exc
                self._failed_commit(exc)
            else:
                failed = None
                self._committed(decided, offsets, started)
        if failed is not None:
            self._fault("kafka", failed, "commit failed")
            await self._kafka_backoff.sleep(stop)

    def _committed(self, decided: list[Decided], offsets: Offsets, started: float) -> None:
        self._commit_failing = False
        self.health.kafka_ok()
        self._kafka_backoff.reset()
        self.committed.update(offsets)
        self._unsettled = True
        self.metrics.transactions.labels("committed").inc()
        if not decided:
            return  # offsets only: past control records (K11)
        verdicts = Counter((item.output.outcome, item.output.reason) for item in decided)
        self.metrics.count_events(
            {(outcome.value, reason.value if reason else ""): n for (outcome, reason), n in verdicts.items()}
        )
        if self.on_committed is not None:
            self.on_committed(decided)
        self.metrics.batch_size.observe(len(decided))
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.metrics.observe_delays([item.record.timestamp for item in decided])  # issue 16: delay panel
        self.processed += len(decided)

    def _failed_commit(self, exc: BaseException) -> None:
        """K8: the batch is redone from the committed offsets, after a new producer if needed."""
        self.metrics.transactions.labels("aborted").inc()
        if self.settings.guarantee is Guarantee.EXACTLY_ONCE:
            # Whatever state the transaction is in, a fresh producer with the same id ends it.
            self._replace_producer = True
        self._offsets_unknown = True  # it may have committed after all: ask once it is settled
        self._commit_failing = True
        self._needs_rewind = True
        self.clean = False

    async def _rewind(self, stop: asyncio.Event) -> None:
        """Replace the producer if needed, then seek every owned partition to its committed offset.

        The target is the offset this member committed itself (K8, issue 11 item 10): the
        coordinator may still answer the previous one for a few ms after a commit. Only after
        a failed commit, whose outcome is unknown, is the coordinator asked — once the new
        producer has completed or aborted that transaction, so its answer is stable.
        """
        try:
            async with self._lock:
                if self._replace_producer:
                    await self._swap_producer()
                    self._replace_producer = False
                    self._unsettled = False
                ask = self._offsets_unknown
                for tp in list(self._consumer.assignment()):
                    offset = None if ask else self.committed.get(tp)
                    if offset is None:
                        offset = await asyncio.wait_for(self._consumer.committed(tp), self._op_timeout)
                        if offset is not None:
                            self.committed[tp] = offset
                    offset = self.partitions.rewind_target(tp, offset)
                    with contextlib.suppress(IllegalStateError):
                        if offset is None:
                            await self._consumer.seek_to_beginning(tp)
                        else:
                            self._consumer.seek(tp, offset)
                self._offsets_unknown = False
                self._needs_rewind = False
            self.metrics.rewinds.inc()
            self.clean = True
            self._log.info("resumed from the committed offsets")
        except Exception as exc:
            self._fault("kafka", exc, "recovery failed; retrying")
            await self._kafka_backoff.sleep(stop)

    # --------------------------------------------------------------- K5, health, lag

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        self._generation += 1
        self.metrics.rebalances.inc()
        async with self._lock:  # waits for the in-flight batch to commit or abort (K5)
            try:
                await asyncio.wait_for(self._settle(), self._op_timeout)
            except Exception as exc:
                with contextlib.suppress(FatalFault):  # raised again by the next request
                    self._fault("kafka", exc, "could not settle the last transaction")
                self._replace_producer = self._needs_rewind = True
            self.partitions.forget(revoked)
        self._log.info("partitions revoked", partitions=sorted(tp.partition for tp in revoked))

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        self.metrics.assigned_partitions.set(len(assigned))
        self._log.info("partitions assigned", partitions=sorted(tp.partition for tp in assigned))

    def _is_member(self) -> bool:
        """False once the coordinator has reset our generation (expelled). aiokafka internals."""
        coordinator = getattr(self._consumer, "_coordinator", None)
        generation = getattr(coordinator, "generation", 0)
        return not isinstance(generation, int) or generation >= 0

    def _fault(self, component: str, exc: BaseException, what: str) -> None:
        """Every fault the member meets goes through here (K10, worker.runtime.faults).

        Infrastructure: counted, logged, /readyz not ready; the caller retries. Fatal: /readyz
        says why and `FatalFault` is raised. A bug (unclassified) is raised as it is.
        """
        kind = classify(exc)
        if kind is None:
            raise exc
        error = type(exc).__name__
        if kind is Fault.FATAL:
            fatal = exc if isinstance(exc, FatalFault) else FatalFault(what, exc)
            self.health.fatal = str(fatal)
            raise fatal from exc
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
        except Exception as exc:
            with contextlib.suppress(FatalFault):  # the main loop meets it too and stops
                self._fault("kafka", exc, "Kafka does not answer")
            return None
        if not self._needs_rewind and not self._commit_failing:
            self.health.kafka_ok()
        total = 0
        for tp, end in ends.items():
            position = self.committed.get(tp)
            if position is None:
                try:
                    position = await asyncio.wait_for(self._consumer.committed(tp), self._op_timeout)
                except Exception:
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
