"""The output side of a group member: one producer at a time, renewable (K2, K5, K8).

`OutputProducer` holds the aiokafka producer `make_producer` builds — transactional with the
member's one transactional id under exactly_once, idempotent under at_least_once — behind the
calls the runtime makes, and keeps aiokafka's internals here:

- `renew()`: a new producer replaces the old one. Under exactly_once its `InitProducerId`
  with the same transactional id fences the old one and completes or aborts the transaction
  it left open, whatever state that transaction is in (K8). The old one is stopped, and when
  `stop` hangs (a batch whose produce keeps failing is retried forever under idempotence)
  its sender task is cancelled and its sockets closed (`_discard`: aiokafka internals).
- `settle()`: returns once the last committed transaction is complete, offsets included
  (K5): `commit_transaction` returns when the broker has logged the decision, the markers
  that make the offsets visible follow, and aiokafka's OffsetFetch (version 3, no
  `require_stable`) would show the next owner the previous offsets in that gap. A renewed
  producer is answered only once the previous transaction has completed. One round trip.
- Record batches (`create_batch`, `send_batch`): outputs are appended to one batch per output
  partition (`worker.runtime.checkpoint`), not sent one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any, TypeVar

import structlog
from aiokafka.structs import TopicPartition

from worker.kafka import txn_start_retry
from worker.kafka.clients import make_producer
from worker.kafka.txn_outcome import coordinator_outcome
from worker.kafka.txn_requests import TxnHistory
from worker.settings import Settings

T = TypeVar("T")
log = structlog.get_logger(__name__)
#: Seconds a producer being replaced gets to stop before its sender is cancelled.
DISCARD_SECONDS = 5.0


class OutputProducer:
    def __init__(self, settings: Settings, *, transactional_id: str | None, timeout: float) -> None:
        self.settings = settings
        self.transactional_id = transactional_id
        self.timeout = timeout  # seconds for a start or a stop
        #: A transaction committed since the producer was last renewed (`settle` renews it).
        self.unsettled = False
        #: What the transactions of this member did, for `worker.kafka.transactions` to tell
        #: which transaction a dangling one is and what its coordinator decided (issue 27).
        self.history = TxnHistory()
        self._producer: Any = None

    @property
    def started(self) -> bool:
        return self._producer is not None

    async def start(self) -> None:
        """Start a producer unless one runs; exactly_once: `InitProducerId` fences the previous one.

        When the last transaction's commit answer was lost, its coordinator's decision is asked
        first (`history.outcome`): that InitProducerId ends the coordinator's memory of it."""
        if self._producer is not None:
            return
        producer = make_producer(self.settings, transactional_id=self.transactional_id)
        if self.transactional_id is not None:
            txn_start_retry.install(producer)  # K4: no fixed 20 ms after each commit
        try:
            if self.transactional_id is not None and self.history.undecided:
                await asyncio.wait_for(self._ask_outcome(producer.client), self.timeout)
            await asyncio.wait_for(producer.start(), self.timeout)
        except BaseException:
            await quietly(producer.stop(), DISCARD_SECONDS)
            raise
        self._producer = producer

    async def _ask_outcome(self, client: Any) -> None:
        """`history.outcome` from the transaction coordinator (worker.kafka.txn_outcome)."""
        assert self.transactional_id is not None and self.history.producer is not None
        await client.bootstrap()  # aiokafka's start bootstraps again: one more metadata request
        outcome = await coordinator_outcome(client, self.transactional_id, *self.history.producer)
        self.history.outcome, self.history.asked = outcome, True
        log.info("the failed commit's transaction, as its coordinator decided", outcome=outcome or "unknown")

    async def renew(self) -> None:
        """Replace the producer (same transactional id), ending its open transaction (K8)."""
        old, self._producer = self._producer, None
        if old is not None:
            await _discard(old)
        await self.start()
        self.unsettled = False

    async def settle(self) -> None:
        """Return once the last committed transaction is complete, offsets included (K5)."""
        if self.transactional_id is not None and self.unsettled:
            await self.renew()

    async def stop(self) -> None:
        if self._producer is not None:
            await quietly(self._producer.stop(), self.timeout)

    # -------------------------------------------------------------- transactions (exactly_once)

    async def begin_transaction(self) -> None:
        manager = self._producer._txn_manager
        self.history.begun((int(manager.producer_id), int(manager.producer_epoch)))
        await self._producer.begin_transaction()

    async def send_offsets_to_transaction(self, offsets: dict[TopicPartition, int], group_id: str) -> None:
        self.history.offsets_sent = True
        await self._producer.send_offsets_to_transaction(offsets, group_id)

    async def commit_transaction(self) -> None:
        self.history.commit_sent = True
        await self._producer.commit_transaction()
        self.history.confirmed()
        self.unsettled = True

    # -------------------------------------------------------------- outputs

    def create_batch(self) -> Any:
        """An empty record batch (aiokafka's `BatchBuilder`: `append`, `size`)."""
        return self._producer.create_batch()

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> asyncio.Future[Any]:
        """Enqueue a record batch; the future is done once the broker acknowledged it."""
        future: asyncio.Future[Any] = await self._producer.send_batch(batch, topic, partition=partition)
        if self.transactional_id is not None:
            self.history.targets.add(TopicPartition(topic, partition))
            future.add_done_callback(self.history.appended)  # one per record batch, not per record
        return future

    async def partitions_for(self, topic: str) -> set[int]:
        partitions: set[int] = await self._producer.partitions_for(topic)
        return partitions

    async def flush(self) -> None:
        """Wait until everything enqueued has been sent (acknowledged or failed)."""
        await self._producer.flush()

    @property
    def client(self) -> Any:
        """aiokafka's client of the producer (requests aiokafka has no call for: transactions.py)."""
        return self._producer.client

    @property
    def producer_id(self) -> int:
        """The producer id InitProducerId gave (aiokafka internals); -1 before."""
        manager = getattr(self._producer, "_txn_manager", None)
        return -1 if manager is None or manager.producer_id is None else int(manager.producer_id)

    async def refresh_metadata(self) -> None:
        """Read the topics' partitions again (an output topic changed, K9)."""
        await self._producer.client.force_metadata_update()


async def _discard(producer: Any) -> None:
    """Stop a producer we are replacing; if `stop` hangs, drop its sender and sockets.

    aiokafka's `stop` flushes, and a batch whose produce keeps failing is retried forever
    under idempotence, so `stop` can wait forever; an abandoned sender would keep retrying.
    Cancelling the sender task without awaiting it avoids its wait on the transaction task.
    """
    try:
        await asyncio.wait_for(producer.stop(), DISCARD_SECONDS)
    except Exception:
        sender = getattr(getattr(producer, "_sender", None), "sender_task", None)
        if sender is not None:
            sender.cancel()
        await quietly(producer.client.close(), DISCARD_SECONDS)


async def quietly(awaitable: Awaitable[T], timeout: float) -> None:
    """Best effort (closing clients during shutdown or recovery): bounded, errors ignored."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(awaitable, timeout)
