"""One consumer-group member: the loop, rebalances and recovery (K1–K8), owned here and nowhere else.

Loop, one `Checkpoint` (worker.runtime.checkpoint) at a time:

1. **Collect** (K4, `worker.runtime.collect`): up to `batch_size` records, closing
   `batch_linger_ms` after the first one. A fetch fault is classified (`worker.runtime.faults`,
   K10): fatal stops the worker; infrastructure keeps the records collected so far (no rewind)
   and backs off.
2. **Decide**: `Decider.decide` gives each record its one output in partition order (K1, K3)
   and says which partitions must wait (`ConfigUnavailable`); `Partitions.after_decide` holds
   each at its waiting record, retried on its own backoff, while the others go on (K9).
3. **Commit** (K2): `Checkpoint.commit` owns publishing, delivery and the commit protocol;
   the offsets are the consumer's positions, past control records (K11). The member then
   counts the batch (metrics, key usage: L1, L5) or, on failure, starts a recovery.
4. **Recover** (K8): `Recovery` (worker.runtime.recovery) says what is left to redo — a new
   producer (same transactional id: it ends the open transaction), no dangling transaction of
   ours (`worker.kafka.transactions`), the coordinator's offsets, a seek of every partition —
   and `_rewind` does it before any further commit, its backoff slept outside the batch lock.
   The offsets are the member's own last commit; only after a commit whose outcome is unknown
   are they read from the coordinator, once the new producer has settled that transaction.

Rebalance (K5): `on_revoked` bumps the generation (a checkpoint collected before it is dropped:
its records are fetched again) and takes the batch lock, so it returns only once the in-flight
checkpoint has committed or aborted; then it settles the last transaction (the offsets are
visible before the partitions move). No output is committed without its offset, nor the reverse.

aiokafka 0.14's `TxnOffsetCommit` is version 0, without the group generation (no KIP-447
fencing). Mitigations: the batch lock; the generation checked right before
`commit_transaction` (`MemberExpelled` → abort); a session timeout far longer than a batch; a
short transaction timeout (a SIGKILLed member's transaction is soon aborted by the broker); the
settle on revocation and shutdown and the rewind to our own offsets, so a stale OffsetFetch
answer cannot matter (`worker.kafka.offsets` reads only clean ones).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from functools import partial

import structlog
from aiokafka.structs import TopicPartition

from worker.backoff import RetryPolicy
from worker.kafka import fetcher_fork
from worker.kafka.confirmed import confirmed_aborted
from worker.kafka.consumer import InputConsumer
from worker.kafka.producer import OutputProducer, quietly
from worker.kafka.transactions import DanglingCheck
from worker.ops.metrics import Metrics
from worker.ops.probes import Health
from worker.ops.tracing import commit_tracer
from worker.runtime.checkpoint import Checkpoint
from worker.runtime.collect import Collector, Generation
from worker.runtime.decide import Decider
from worker.runtime.faults import FatalFault, Fault, Reporter, classify, hint
from worker.runtime.partitions import Partitions
from worker.runtime.recovery import Recovery, Redo
from worker.runtime.routing import Routing
from worker.runtime.startup import Startup, StartupError
from worker.runtime.usage_recorder import UsageRecorder
from worker.runtime.waits import Waits
from worker.settings import Guarantee, Settings

log = structlog.get_logger(__name__)

# The health probe answers within this: /readyz turns 503 a few seconds into an outage.
PROBE_TIMEOUT = 3.0


Usage = UsageRecorder | None  # what counts each committed batch's outputs (L1, L5); None: nothing


class Member:
    def __init__(
        self,
        settings: Settings,
        decider: Decider,
        metrics: Metrics,
        usage: Usage,
        store_degraded: Callable[[], bool],
    ) -> None:
        """`store_degraded`: whether the configuration source serves its last loaded communities
        (C3), for /readyz (`health`, built here with everything it reads)."""
        self.settings = settings
        self.decider = decider
        self.metrics = metrics
        exactly_once = settings.guarantee is Guarantee.EXACTLY_ONCE
        self.transactional_id = settings.transactional_id() if exactly_once else None
        # exactly_once commits the offsets inside the transaction, for this group (K2).
        self._transaction_group = settings.group_id if exactly_once else None
        self.usage = usage
        self.processed = 0  # records committed by this member (progress line)
        self.recovery = Recovery(transactional=self.transactional_id is not None)
        self._op_timeout = settings.request_timeout_ms / 1000 + 5
        # Past the transaction timeout the broker aborts the transaction anyway (and fences us).
        self._commit_timeout = settings.transaction_timeout_ms / 1000
        self._consumer: InputConsumer | None = None
        self._producer = OutputProducer(
            settings, transactional_id=self.transactional_id, timeout=self._op_timeout
        )
        self._routing: Routing | None = None
        self._tracing = commit_tracer(settings.group_id)  # spans per event and commit; None when off
        self._lock = asyncio.Lock()
        self._generation = Generation()
        self._collector: Collector | None = None
        self.retry = RetryPolicy.from_settings(settings)
        self._kafka_backoff = self.retry.backoff()
        self._waits = Waits(self.retry)
        self.partitions = Partitions(self._waits, metrics)
        self.committed = self.partitions.committed  # next offset per owned partition (lag, rewind)
        self.health = Health(store_degraded, self._waiting, self._outputs_problem)
        self._fault = Reporter(metrics, self.health)  # every fault the member meets (K10)
        # K2, K8: after a failed commit, no transaction of ours left open by the broker.
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
    def collector(self) -> Collector:
        """What collects each checkpoint's records (K4), once `start` made the consumer."""
        assert self._collector is not None, "start() first"
        return self._collector

    # ------------------------------------------------------------------ start and stop

    async def start(self, stop: asyncio.Event) -> None:
        """Check the topics (fail fast), then join the group. Waits for Kafka up to the start-up timeout."""
        s = self.settings
        startup = Startup(s, self._fault, stop, request_timeout=self._op_timeout)
        self._routing = Routing(s, await startup.topics())
        try:
            fetcher_fork.install()  # K9: before any consumer, no record can raise out of getmany
            self._consumer = InputConsumer(s, on_revoked=self.on_revoked, on_assigned=self.on_assigned)
            self._consumer.on_reset(self.partitions.input_skipped)  # K8: skipped input is never silent
            self._collector = Collector(self._consumer, s, self._generation, self._fault)
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
        log.info("member stopped", processed=self.processed, clean=self.recovery.clean)

    # ---------------------------------------------------------------------- main loop

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` (K6): stop fetching, finish and commit the current checkpoint, return.

        Pipelined: while checkpoint n's transaction is in flight (`inflight`), checkpoint n+1 is
        collected and decided; its transaction begins only once n's has ended, so one
        producer never holds two transactions and each partition's outputs stay in order (K3).
        Raises `FatalFault` on a fatal misconfiguration (K10), after the checkpoint in flight ended.
        """
        inflight: asyncio.Task[None] | None = None
        consumer, partitions, collector = self.consumer, self.partitions, self.collector
        try:
            while not stop.is_set():
                if self.recovery.pending:
                    await _finish(inflight)
                    inflight = None
                    await self._rewind(stop)
                    continue
                partitions.resume_due(consumer)
                checkpoint = await collector.collect(stop, inflight)
                checkpoint.started = time.perf_counter()
                if checkpoint.records:
                    checkpoint.decided, waiting = await self.decider.decide(checkpoint.records)
                    partitions.after_decide(consumer, checkpoint.records, waiting)
                checkpoint.offsets = partitions.offsets(consumer, checkpoint.decided)
                if checkpoint.commits:
                    await _finish(inflight)  # the previous transaction ends before this one begins
                    inflight = None
                    if collector.revoked(checkpoint) or self.recovery.pending:
                        # Revoked or failed meanwhile. Records fetched after the new assignment have
                        # already moved the consumer past them: seek back to the committed offsets, or
                        # the next commit would skip this checkpoint (K1, K5).
                        self.recovery.need(Redo.REWIND)
                        continue
                    inflight = asyncio.create_task(self._commit(checkpoint, stop))
                if checkpoint.fetch_fault and not checkpoint.records:
                    # Nothing fetched at all: back off. A fault of one partition (aiokafka raises
                    # it only when no other partition has records ready) holds up nobody else.
                    await self._kafka_backoff.sleep(stop)
        finally:
            await _finish(inflight)

    async def _commit(self, checkpoint: Checkpoint, stop: asyncio.Event) -> None:
        """One batch's transaction, under the batch lock that revocation waits for (K5).

        A failed commit's backoff is slept after the lock is released, so a rebalance never
        waits for it.
        """
        async with self._lock:
            if self.collector.revoked(checkpoint) or self.recovery.pending:
                self.recovery.need(Redo.REWIND)  # revoked while it was being decided: redo from the offsets
                return
            try:
                assert self._routing is not None, "start() first"
                commit = checkpoint.commit(
                    self._producer, self.consumer, self._routing, group_id=self._transaction_group
                )
                if self._tracing is not None:
                    commit = self._tracing.around(checkpoint.decided, commit)
                await asyncio.wait_for(commit, self._commit_timeout)
            except Exception as exc:
                failed: Exception | None = exc
                # K8: whatever state the transaction is in, a fresh producer with the same id ends
                # it; it may have committed after all: the coordinator is asked once it is settled.
                self.metrics.transactions.labels("aborted").inc()
                self.recovery.commit_failed(checkpoint.offsets)
            else:
                failed = None
                self._committed(checkpoint)
        if failed is not None:
            self._fault("kafka", failed, "commit failed")
            await self._kafka_backoff.sleep(stop)

    def _committed(self, checkpoint: Checkpoint) -> None:
        self.recovery.committed()
        self.health.kafka_ok()
        self._kafka_backoff.reset()
        self.committed.update(checkpoint.offsets)
        self.metrics.transactions.labels("committed").inc()
        if not checkpoint.decided:
            return  # offsets only: past control records (K11)
        checkpoint.observe(self.metrics)
        if self.usage is not None:
            self.usage.count([item.output for item in checkpoint.decided], time.time())
        self.processed += len(checkpoint.decided)

    async def _rewind(self, stop: asyncio.Event) -> None:
        """What `Recovery` says is left: a new producer, then every owned partition sought back
        to its committed offset (`Partitions.rewind`; the coordinator's only after a failed commit)."""
        try:
            async with self._lock:
                recovery = self.recovery
                if recovery.renew_producer:
                    await self._producer.renew()
                    recovery.producer_renewed()
                transactional = recovery.ask_coordinator and self.transactional_id is not None
                aborted = partial(confirmed_aborted, self._producer.history, self.settings, self._op_timeout)
                if transactional:
                    await self._close_dangling()  # before anything is produced again (K2)
                await self.partitions.rewind(
                    self.consumer,
                    ask_coordinator=recovery.ask_coordinator,
                    timeout=self._op_timeout,
                    confirmed_aborted=aborted if transactional else None,
                )
                recovery.done()
            self.metrics.rewinds.inc()
            log.info("resumed from the committed offsets")
        except Exception as exc:
            self._fault("kafka", exc, "recovery failed; retrying")
            await self._kafka_backoff.sleep(stop)

    async def _close_dangling(self) -> None:
        """The failed commit's transaction is ended: none of ours may be left open (K2, K8)."""
        assert self._routing is not None, "start() first"
        producer, outputs = self._producer, self._routing.output_partitions()
        settle = self._dangling.settle(
            producer.client,
            producer.producer_id,
            outputs,
            self.recovery.failed,
            producer.history,
            self.consumer.committed,
        )
        await asyncio.wait_for(settle, self._op_timeout)

    # --------------------------------------------------------------- K5, health, lag

    def _waiting(self) -> list[str]:
        """The partitions held at a record that must wait, one line each (K9; /readyz)."""
        return self._waits.describe(time.monotonic())

    def _outputs_problem(self) -> str | None:
        """Why outputs cannot be written, from the output topics as last read (K9; /readyz)."""
        return None if self._routing is None else self._routing.problem

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        self._generation.current += 1
        self.metrics.rebalances.inc()
        async with self._lock:  # waits for the in-flight checkpoint to commit or abort (K5)
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
