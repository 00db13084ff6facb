"""Did the last transaction the coordinator confirmed keep its outputs? (K2, K8)

A confirmed commit (`EndTxn(commit)` answered) is normally final. One broker behaviour makes it
not so: while a broker shuts down its partitions lose their leader before its transaction
coordinator stops, and the coordinator completes a commit whose partitions have no leader
**without writing the markers** (it takes "no leader" for "partition deleted"; the transaction
log says `CompleteCommit` all the same). The confirmed transaction's records then stay open in
the output partitions and its offset commit in `__consumer_offsets`. The next transaction of
ours, begun on the same producer id and epoch, extends that open range; when it fails and is
aborted — by our new producer's `InitProducerId` (K8) or by the coordinator's timeout, whichever
comes first, and before `worker.kafka.transactions.DanglingCheck` can look — its ABORT marker
ends both: the confirmed transaction's outputs and offsets are aborted with it. The group's
offsets then answer the previous commit, and a rewind that kept the member's own (confirmed)
offsets would skip the confirmed batch: its inputs would never be answered.

`outputs_outcome` tells, after such a failure, what became of the confirmed transaction's
outputs: a `read_committed` fetch from the first offset it wrote on each output partition
(`TxnHistory.confirmed_starts`) returns that very record when it was committed, and skips it
when it was aborted. "commit" (every partition), "abort" (every partition: the batch must be
redone from the group's offsets), None (mixed, or not readable yet: an open transaction before
it, the broker not answering; the caller refuses to go on and tries again).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any, Final

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from worker.kafka.security import security_options
from worker.kafka.transactions import DanglingTransaction
from worker.kafka.txn_requests import TxnHistory
from worker.settings import Settings

#: Seconds between fetches while a partition's first record is not known yet.
POLL_MS: Final = 200


async def outputs_outcome(
    settings: Settings, starts: Mapping[TopicPartition, int], timeout: float
) -> str | None:
    """ "commit", "abort" or None for the records a transaction wrote from `starts` (the first
    offset per output partition); `timeout` in seconds bounds the whole. Nothing written: "commit"."""
    if not starts:
        return "commit"
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.client_id}-{settings.member_index}-confirmed",
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        **security_options(settings),
    )
    await asyncio.wait_for(consumer.start(), timeout)
    try:
        return await asyncio.wait_for(_read(consumer, dict(starts), timeout), timeout)
    except TimeoutError:
        return None
    finally:
        await consumer.stop()


async def _read(consumer: Any, starts: dict[TopicPartition, int], timeout: float) -> str | None:
    consumer.assign(list(starts))
    for tp, start in starts.items():
        consumer.seek(tp, start)
    outcomes: dict[TopicPartition, str] = {}
    deadline = time.monotonic() + timeout
    while len(outcomes) < len(starts) and time.monotonic() < deadline:
        left = [tp for tp in starts if tp not in outcomes]
        fetched = await consumer.getmany(*left, timeout_ms=POLL_MS)
        for tp in left:
            records = fetched.get(tp)
            if records:
                # Its first record read_committed is the one it wrote first: committed.
                outcomes[tp] = "commit" if records[0].offset == starts[tp] else "abort"
            elif await consumer.position(tp) > starts[tp]:
                outcomes[tp] = "abort"  # skipped as aborted (control records follow it)
    if len(outcomes) < len(starts):
        return None
    found = set(outcomes.values())
    return found.pop() if len(found) == 1 else None


async def confirmed_aborted(history: TxnHistory, settings: Settings, timeout: float) -> bool:
    """True when the broker aborted the last confirmed commit's outputs (`history`'s
    `confirmed_starts`): the batch must be redone; False when they were committed. Raises
    `DanglingTransaction` when that cannot be told yet (mixed, not readable): never a guess."""
    outcome = await outputs_outcome(settings, history.confirmed_starts or {}, timeout)
    if outcome is None:
        raise DanglingTransaction("the last confirmed commit's outputs are neither readable nor aborted")
    return outcome == "abort"
