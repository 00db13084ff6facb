"""One consumer-group member: the batch/transaction lifecycle (K1–K8), owned here and nowhere else.

Loop, one `Checkpoint` (worker.runtime.checkpoint) at a time:

1. **Collect** (K4): `getmany` until `batch_size` records or `batch_linger_ms` after the
   first record, or until SIGTERM (K6: stop fetching) or a revocation.
   Records come through `worker.kafka.fetched`: one the client cannot decode is an
   `UnreadableRecord` (K9), never an exception. A fetch fault is classified
   (`worker.runtime.faults`, K10): fatal stops the worker; infrastructure keeps the records
   collected so far (nothing was consumed past them: no rewind) and backs off.
2. **Decide**: `Decider.decide` gives each record its one output in partition order (K1,
   K3) and returns the partitions that must wait (`ConfigUnavailable`: store down, community
   not cached or unusable); `Partitions.after_decide` pauses each at its waiting record,
   retried on its own backoff; the records before it are still published and the other
   partitions go on (K9).
3. **Commit** (K2): exactly_once — one transaction holding the outputs and the next input
   offsets; at_least_once — outputs acknowledged, then offsets committed. The offsets are
   the consumer's positions, past control records and aborted batches (K11: a drained group
   shows lag 0), also when a fetch returned only those.
4. **Recover** (K8): `Recovery` (worker.runtime.recovery) holds what is left to redo after a
   fault — a new producer (same transactional id: it ends the open transaction), the
   coordinator's offsets, a seek of every partition — and `_rewind` does it before any
   further commit (nothing skipped), retried on the retry policy, its backoff slept outside
   the batch lock. The offsets are the member's own last commit; only after a commit whose
   outcome is unknown are they read from the group coordinator, once the new producer has
   settled that transaction (a read right after a commit may return the previous offset for
   a few ms: a duplicate).

Rebalance (K5): `on_revoked` bumps the generation (a batch collected before it is dropped: its
records are fetched again from the committed offsets) and takes the batch lock, so it returns
only once the in-flight batch has committed or aborted; then it settles the last transaction
(`OutputProducer.settle`: the offsets are visible before the partitions move). An output is
therefore never committed without its offset, nor an offset without its output.

aiokafka limits (0.14): `TxnOffsetCommit` is version 0, without the group generation (no
KIP-447 fencing), so the broker cannot refuse a commit from a member the group has expelled.
Mitigations: the batch lock above; the coordinator's generation checked right before
`commit_transaction` (`InputConsumer.in_group`, `MemberExpelled` → abort); a session timeout
far longer than a batch takes; a short transaction timeout, so a SIGKILLed member's open
transaction (its transactional id is unique per process) is soon aborted by the broker.
OffsetFetch has no `require_stable`: hence the settle on revocation and on shutdown, and a
rewind to the offsets the member committed itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import structlog
from aiokafka.structs import TopicPartition

from worker.backoff import RetryPolicy
from worker.kafka.consumer import InputConsumer
from worker.kafka.producer import OutputProducer, quietly
from worker.kafka.transactions import DanglingCheck
from worker.ops.health import Health
from worker.ops.metrics import Metrics
from worker.ops.tracing import traced
from worker.runtime.checkpoint import Checkpoint
from worker.runtime.commit import AcknowledgedCommitter, Routing, TransactionalCommitter
from worker.runtime.decide import Decided, Decider
from worker.runtime.faults import FatalFault, Fault, Reporter, classify, hint
from worker.runtime.partitions import Partitions
from worker.runtime.recovery import Recovery, Redo
from worker.runtime.startup import Startup, StartupError
from worker.runtime.waits import Waits
from worker.settings import Guarantee, Settings

log = structlog.get_logger(__name__)

# While a transaction is in flight, a started batch checks this often whether it may close.
IDLE_POLL = 0.005
# The health probe answers within this: /readyz turns 503 a few seconds into an outage.
PROBE_TIMEOUT = 3.0


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
        self.recovery = Recovery(transactional=self.transactional_id is not None)
        self._op_timeout = settings.request_timeout_ms / 1000 + 5
        # Past the transaction timeout the broker aborts the transaction anyway (and fences us).
        self._commit_timeout = settings.transaction_timeout_ms / 1000
        self._consumer: InputConsumer | None = None
        self._producer = OutputProducer(
            settings, transactional_id=self.transactional_id, timeout=self._op_timeout
        )
        self._committer: TransactionalCommitter | AcknowledgedCommitter | None = None
        self._lock = asyncio.Lock()
        self._generation = 0
        self.retry = RetryPolicy.from_settings(settings)
        self._kafka_backoff = self.retry.backoff()
        waits = Waits(self.retry)
        self.partitions = Partitions(waits, metrics)
        self.committed = self.partitions.committed  # next offset per owned partition (lag, rewind)
        self._fault = Reporter(metrics, health)  # every fault the member meets (K10)
        health.waiting = lambda: waits.describe(time.monotonic())
        #: Called with each committed batch (L1: key usage and health counts, issue 15).
        self.on_committed: Callable[[list[Decided]], None] | None = None
        # K2, K8 (issue 27): after a failed commit, no transaction of ours left open by the broker.
        self._dangling = DanglingCheck(
            settings.group_id,
            settings.bootstrap_servers,
            lambda topic, partition: metrics.dangling_transactions.labels(topic, str(partition)).inc(),
        )

    @property
    def consumer(self) -> InputConsumer:
        """The consumer, once `start` made it."""
        assert self._consumer is not None, "start() first"
        return self._consumer

    @property
    def clean(self) -> bool:
        """False when the last batch could not commit before exit (it is redone, not lost)."""
        return self.recovery.clean

    # ------------------------------------------------------------------ start and stop

    async def start(self, stop: asyncio.Event) -> None:
        """Check the topics (fail fast), then join the group. Waits for Kafka up to the start-up timeout."""
        s = self.settings
        startup = Startup(s, self._fault, stop, request_timeout=self._op_timeout)
        routing = Routing(s, await startup.topics())
        self.health.outputs_problem = lambda: routing.problem
        if s.guarantee is Guarantee.EXACTLY_ONCE:
            self._committer = TransactionalCommitter(s.group_id, routing, self._in_group)
        else:
            self._committer = AcknowledgedCommitter(routing)
        self._committer = traced(self._committer, s.group_id)  # spans per event and commit when on
        try:
            self._consumer = InputConsumer(s, on_revoked=self.on_revoked, on_assigned=self.on_assigned)
            self._consumer.on_reset(self._input_skipped)  # K8: skipped input is never silent
        except Exception as exc:
            if classify(exc) is not Fault.FATAL:
                raise
            raise StartupError(f"cannot read {s.input_topic}: {type(exc).__name__}: {hint(exc)}") from None
        await startup.retry_kafka("joining Kafka", self._start_clients)
        self.health.kafka_ok()
        log.info(
            "member started",
            group_id=s.group_id,
            input_topic=s.input_topic,
            guarantee=s.guarantee.value,
            transactional_id=self.transactional_id,
        )

    async def _start_clients(self) -> None:
        await self._producer.start()
        await asyncio.wait_for(self.consumer.start(), self._op_timeout)

    async def close(self) -> None:
        """Settle the last transaction, leave the group (no revocation callback on stop), close."""
        if self._producer.started and self.health.fatal is None:
            await quietly(self._producer.settle(), self._op_timeout)
        if self._consumer is not None:
            await quietly(self._consumer.stop(), self._op_timeout)
        await self._producer.stop()
        log.info("member stopped", processed=self.processed, clean=self.clean)

    # ---------------------------------------------------------------------- main loop

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` (K6): stop fetching, finish and commit the current batch, return.

        Pipelined: while batch n's transaction is in flight (`inflight`), batch n+1 is
        collected and decided; its transaction begins only once n's has ended, so one
        producer never holds two transactions and each partition's outputs stay in order (K3).
        Raises `FatalFault` on a fatal misconfiguration (K10), after the batch in flight ended.
        """
        inflight: asyncio.Task[None] | None = None
        consumer, partitions = self.consumer, self.partitions
        try:
            while not stop.is_set():
                if self.recovery.pending:
                    await _finish(inflight)
                    inflight = None
                    await self._rewind(stop)
                    continue
                partitions.resume_due(consumer)
                batch = await self._collect(stop, inflight)
                batch.started = time.perf_counter()
                if batch.records:
                    batch.decided, waiting = await self.decider.decide(batch.records)
                    partitions.after_decide(consumer, batch.records, waiting)
                batch.offsets = partitions.offsets(consumer, batch.decided)
                if batch.commits:
                    await _finish(inflight)  # the previous transaction ends before this one begins
                    inflight = None
                    if batch.generation != self._generation or self.recovery.pending:
                        # Revoked or failed meanwhile. Records fetched after the new assignment have
                        # already moved the consumer past them: seek back to the committed offsets, or
                        # the next commit would skip this batch (K1, K5).
                        self.recovery.need(Redo.REWIND)
                        continue
                    inflight = asyncio.create_task(self._commit(batch, stop))
                if batch.fetch_fault and not batch.records:
                    # Nothing fetched at all: back off. A fault of one partition (aiokafka raises
                    # it only when no other partition has records ready) holds up nobody else.
                    await self._kafka_backoff.sleep(stop)
        finally:
            await _finish(inflight)

    async def _collect(self, stop: asyncio.Event, inflight: asyncio.Task[None] | None) -> Checkpoint:
        """K4: up to batch_size records, closing batch_linger_ms after the first one.

        A batch also closes as soon as there is nothing in flight to wait for: under light load
        a record does not sit out the linger (delay), under backlog the batch fills while the
        previous transaction commits (throughput). A fetch fault ends the batch with what was
        collected (the consumer's positions never pass a record not returned) and marks it
        `fetch_fault`: the caller backs off. A fatal one raises `FatalFault`.
        """
        size = self.settings.batch_size
        linger = self.settings.batch_linger_ms / 1000
        batch = Checkpoint(self._generation)
        closes_at: float | None = None
        consumer = self.consumer
        while batch.count < size and not stop.is_set() and batch.generation == self._generation:
            if closes_at is None:
                wait = 0.2
            elif inflight is None or inflight.done():
                break
            else:
                wait = min(IDLE_POLL, max(0.0, closes_at - time.monotonic()))
            try:
                got = await consumer.getmany(timeout_ms=int(wait * 1000), max_records=size - batch.count)
            except Exception as exc:
                self._fault("kafka", exc, "fetch failed")
                batch.fetch_fault = True
                return batch
            batch.add(got)
            if batch.count and closes_at is None:
                closes_at = time.monotonic() + linger
            if closes_at is not None and time.monotonic() >= closes_at:
                break
            if not batch.count:
                break  # idle: let the caller look at `stop`, the waits and the control records
        return batch

    async def _commit(self, batch: Checkpoint, stop: asyncio.Event) -> None:
        """One batch's transaction, under the batch lock that revocation waits for (K5).

        A failed commit's backoff is slept after the lock is released, so a rebalance never
        waits for it.
        """
        async with self._lock:
            if batch.generation != self._generation or self.recovery.pending:
                self.recovery.need(Redo.REWIND)  # revoked while it was being decided: redo from the offsets
                return
            try:
                assert self._committer is not None
                await asyncio.wait_for(
                    self._committer.commit(self._producer, self.consumer, batch.decided, batch.offsets),
                    self._commit_timeout,
                )
            except Exception as exc:
                failed: Exception | None = exc
                # K8: whatever state the transaction is in, a fresh producer with the same id ends
                # it; it may have committed after all: the coordinator is asked once it is settled.
                self.metrics.transactions.labels("aborted").inc()
                self.recovery.commit_failed(batch.offsets)
            else:
                failed = None
                self._committed(batch)
        if failed is not None:
            self._fault("kafka", failed, "commit failed")
            await self._kafka_backoff.sleep(stop)

    def _committed(self, batch: Checkpoint) -> None:
        self.recovery.committed()
        self.health.kafka_ok()
        self._kafka_backoff.reset()
        self.committed.update(batch.offsets)
        self.metrics.transactions.labels("committed").inc()
        if not batch.decided:
            return  # offsets only: past control records (K11)
        batch.observe(self.metrics)
        if self.on_committed is not None:
            self.on_committed(batch.decided)
        self.processed += len(batch.decided)

    async def _rewind(self, stop: asyncio.Event) -> None:
        """What `Recovery` says is left: a new producer, then every owned partition sought back
        to its committed offset (`Partitions.rewind`; the coordinator's only after a failed commit)."""
        try:
            async with self._lock:
                recovery = self.recovery
                if recovery.renew_producer:
                    await self._producer.renew()
                    recovery.producer_renewed()
                if recovery.ask_coordinator and self.transactional_id is not None:
                    await self._close_dangling()  # before anything is produced again (issue 27)
                await self.partitions.rewind(
                    self.consumer, ask_coordinator=recovery.ask_coordinator, timeout=self._op_timeout
                )
                recovery.done()
            self.metrics.rewinds.inc()
            log.info("resumed from the committed offsets")
        except Exception as exc:
            self._fault("kafka", exc, "recovery failed; retrying")
            await self._kafka_backoff.sleep(stop)

    async def _close_dangling(self) -> None:
        """The failed commit's transaction is ended: none of ours may be left open (transactions.py)."""
        assert self._committer is not None
        counts = self._committer.routing.partition_counts
        outputs = [TopicPartition(topic, p) for topic, n in counts.items() for p in range(n)]
        await asyncio.wait_for(
            self._dangling.settle(
                self._producer.client,
                self._producer.producer_id,
                outputs,
                self.recovery.failed,
                self._producer.history,
                self.consumer.committed,
            ),
            self._op_timeout,
        )

    def _input_skipped(self, tp: TopicPartition, lost: int, position: int) -> None:
        """K8: the client reset a position it had (out of range): skipped input is never silent."""
        if position > lost:
            self.metrics.input_skipped.labels(tp.topic, str(tp.partition)).inc(position - lost)
            log.warning(
                "input skipped: records deleted before they were read",
                topic=tp.topic,
                partition=tp.partition,
                first_offset=lost,
                last_offset=position - 1,
                records=position - lost,
            )
        else:
            log.warning(
                "input position reset backwards: records read again",
                topic=tp.topic,
                partition=tp.partition,
                from_offset=lost,
                to_offset=position,
            )

    # --------------------------------------------------------------- K5, health, lag

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        self._generation += 1
        self.metrics.rebalances.inc()
        async with self._lock:  # waits for the in-flight batch to commit or abort (K5)
            try:
                await asyncio.wait_for(self._producer.settle(), self._op_timeout)
            except Exception as exc:
                with contextlib.suppress(FatalFault):  # raised again by the next request
                    self._fault("kafka", exc, "could not settle the last transaction")
                self.recovery.need(Redo.RENEW)
            self.partitions.forget(revoked)
        log.info("partitions revoked", partitions=sorted(tp.partition for tp in revoked))

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        self.metrics.assigned_partitions.set(len(assigned))
        log.info("partitions assigned", partitions=sorted(tp.partition for tp in assigned))

    def _in_group(self) -> bool:
        return self._consumer is not None and self._consumer.in_group()

    async def sample_lag(self) -> int | None:
        """Records not yet committed on the owned partitions; also a Kafka liveness probe."""
        if self._consumer is None:
            return None
        owned = self._consumer.assignment()
        if not owned:
            return 0
        try:
            ends = await asyncio.wait_for(self._consumer.end_offsets(owned), PROBE_TIMEOUT)
        except Exception as exc:
            with contextlib.suppress(FatalFault):  # the main loop meets it too and stops
                self._fault("kafka", exc, "Kafka does not answer")
            return None
        if self.recovery.healthy:
            self.health.kafka_ok()
        return await self.partitions.lag(self._consumer, ends, timeout=self._op_timeout)


async def _finish(task: asyncio.Task[None] | None) -> None:
    """Wait for a batch's commit task; its failures are already handled inside it."""
    if task is not None:
        await task
