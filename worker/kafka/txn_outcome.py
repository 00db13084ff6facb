"""The coordinator's decision on a transaction whose `EndTxn(commit)` answer was lost (K2, K8).

A commit that failed after its `EndTxn(commit)` was sent may have committed or not; only the
transaction coordinator knows, and only until the next `InitProducerId` of our transactional id
replaces that knowledge with a new epoch (state `Empty`). So the renewed producer asks before it
initialises (`OutputProducer.start`): DescribeTransactions (65, version 0, KIP-664: aiokafka has
no call for it; the Java Admin's `describeTransactions`) to the transaction coordinator.

- `PrepareCommit` / `CompleteCommit` with the failed transaction's producer id and epoch: COMMIT.
  Certain because aiokafka adds a partition (AddPartitionsToTxn / AddOffsetsToTxn) before it
  sends anything there, and an add moves the coordinator's state to `Ongoing` for *this*
  transaction; from `Ongoing` only `EndTxn` or an abort leaves it. Should nothing of the failed
  transaction have been added, nothing of it can dangle either, and the decision is never used.
- `PrepareAbort` / `CompleteAbort` (epoch the same, or one more when the coordinator fenced it on
  timeout): ABORT.
- `Ongoing` with that epoch: not decided yet — a retry of our `EndTxn(commit)` may still be in the
  coordinator's queue. We send `EndTxn(abort)` for it, as the old producer could have (the
  `InitProducerId` that follows would abort it anyway, K8), and describe again: whichever
  `EndTxn` the coordinator took first is then its decision, and we read it, not assume it.
- anything else (another producer id, `Empty`, `Dead`, the id unknown or not to be described):
  no decision (None); `worker.kafka.transactions` then relies on the
  group's committed offsets or refuses.

Retriable answers (the coordinator loading or moving, `CONCURRENT_TRANSACTIONS`) are asked again
after `RETRY_SECONDS`; the caller bounds the whole (an `OutputProducer` timeout) and retries on its
backoff when the broker does not answer.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

import structlog
from aiokafka.client import CoordinationType
from aiokafka.protocol.api import Request
from aiokafka.protocol.transaction import EndTxnRequest
from aiokafka.protocol.types import CompactArray, CompactString, Int16, Int32, Int64

from worker.kafka.txn_requests import TOPIC_PARTITIONS, FlexibleRequest, flexible, flexible_response, tagged

COMMITTED: Final = frozenset({"PrepareCommit", "CompleteCommit"})
ABORTED: Final = frozenset({"PrepareAbort", "CompleteAbort"})
#: COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR, CONCURRENT_TRANSACTIONS.
RETRIABLE: Final = frozenset({14, 15, 16, 51})
RETRY_SECONDS: Final = 0.2
log = structlog.get_logger(__name__)


DescribeTransactionsResponse_v0 = flexible_response(
    "DescribeTransactionsResponse_v0",
    65,
    0,
    ("throttle_time_ms", Int32),
    (
        "transaction_states",
        tagged(
            ("error_code", Int16),
            ("transactional_id", CompactString("utf-8")),
            ("transaction_state", CompactString("utf-8")),
            ("transaction_timeout_ms", Int32),
            ("transaction_start_time_ms", Int64),
            ("producer_id", Int64),
            ("producer_epoch", Int16),  # int16 on the wire (Kafka 4.4)
            ("topics", TOPIC_PARTITIONS),
        ),
    ),
)


class DescribeTransactionsRequest_v0(FlexibleRequest):
    RESPONSE_TYPE = DescribeTransactionsResponse_v0
    SCHEMA = flexible(("transactional_ids", CompactArray(CompactString("utf-8"))))


class DescribeTransactions(Request[DescribeTransactionsRequest_v0]):  # type: ignore[misc]
    API_KEY = 65

    def __init__(self, transactional_id: str) -> None:
        self.transactional_id = transactional_id

    def build(
        self, request_struct_class: type[DescribeTransactionsRequest_v0]
    ) -> DescribeTransactionsRequest_v0:
        return request_struct_class([self.transactional_id], {})


async def describe(client: Any, transactional_id: str) -> tuple[int, str, int, int]:
    """(error code, state, producer id, producer epoch) of `transactional_id` at its coordinator."""
    node = await client.coordinator_lookup(CoordinationType.TRANSACTION, transactional_id)
    response = await client.send(node, DescribeTransactions(transactional_id))
    code, _id, state, _timeout, _started, producer_id, epoch, _topics, _ = response.transaction_states[0]
    return code, state, producer_id, epoch


async def coordinator_outcome(client: Any, transactional_id: str, producer_id: int, epoch: int) -> str | None:
    """The coordinator's decision on the transaction producer (`producer_id`, `epoch`) was
    running: "commit", "abort", or None when there is none to be had (see the module).

    Raises a retriable aiokafka error when the coordinator cannot be reached (the caller retries);
    loops while the coordinator is deciding (the caller bounds it)."""
    abort_sent = False
    while True:
        code, state, pid, current = await describe(client, transactional_id)
        if code in RETRIABLE or state == "PrepareEpochFence":
            await asyncio.sleep(RETRY_SECONDS)  # loading, moving, or fencing it on timeout
            continue
        if code or pid != producer_id:
            return None  # unknown id, not allowed, or another producer since: nothing certain
        if state in COMMITTED and current == epoch:
            return "commit"
        if state in ABORTED and current in (epoch, epoch + 1):
            return "abort"
        if state != "Ongoing" or current != epoch:
            return None
        if not abort_sent:
            node = await client.coordinator_lookup(CoordinationType.TRANSACTION, transactional_id)
            await client.send(node, EndTxnRequest(transactional_id, producer_id, epoch, False))
            abort_sent = True  # whatever it answered: the state is read again, not assumed
            continue
        await asyncio.sleep(RETRY_SECONDS)
