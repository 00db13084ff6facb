"""A transaction begun right after a commit asks again soon, not after aiokafka's fixed 20 ms (K4).

After `EndTxn(commit)` the coordinator writes the markers; a transaction begun meanwhile has its
first `AddPartitionsToTxn` answered `CONCURRENT_TRANSACTIONS`, and aiokafka then waits a fixed
20 ms (`aiokafka.producer.sender.BACKOFF_OVERRIDE`, not the configurable retry backoff). The
markers take a few ms on a healthy broker, so every batch begun at once after a commit — every
batch at light load, where K4 closes a batch as soon as nothing is in flight — paid the 20 ms.

Mirrors aiokafka 0.14.0 (`MIRRORS`): `Sender._do_add_partitions_to_txn` and the
`CONCURRENT_TRANSACTIONS` branch of `AddPartitionsToTxnHandler.handle_response`. `install(producer)`
gives one producer's sender its own `_do_add_partitions_to_txn` (an attribute of that sender
instance: nothing process-wide), whose handler answers upstream's own decision except there:
the first `EARLY_TRIES` retries of a transaction's first add wait `EARLY_SECONDS` each (as long,
in all, as one upstream wait), the later ones upstream's 20 ms. A long `CONCURRENT_TRANSACTIONS`
(a coordinator completing a transaction after a broker restart) is thus retried as upstream does.

When aiokafka changes, tests/broker/test_txn_start_retry.py fails loudly: the installed version
is not `MIRRORS`, or the upstream source (`upstream_fingerprint`) is not `UPSTREAM_SHA256`.
Re-read upstream's two functions against this module, then update both.
"""

from __future__ import annotations

import hashlib
import inspect
import types
from typing import Any, Final

import aiokafka.producer.sender as _sender
from aiokafka.client import CoordinationType
from aiokafka.errors import ConcurrentTransactions, for_code

#: The aiokafka release this module mirrors (pinned in pyproject.toml).
MIRRORS: Final = "0.14.0"
#: sha256 of the upstream code mirrored here (`upstream_fingerprint`), as in `MIRRORS`.
UPSTREAM_SHA256: Final = "0984ce8283056b6d929abf79e76cc48e251e11b724a61f7e821cdff1ceecf441"
#: Seconds before an early retry; the markers of the previous transaction take a few ms.
EARLY_SECONDS: Final = 0.002
#: Early retries per transaction start (EARLY_TRIES * EARLY_SECONDS = upstream's one wait).
EARLY_TRIES: Final = 10


def upstream_fingerprint() -> str:
    """sha256 of the installed aiokafka's `AddPartitionsToTxnHandler.handle_response` and
    `Sender._do_add_partitions_to_txn` source: what this module mirrors."""
    mirrored = inspect.getsource(_sender.AddPartitionsToTxnHandler.handle_response) + inspect.getsource(
        _sender.Sender._do_add_partitions_to_txn
    )
    return hashlib.sha256(mirrored.encode("utf-8")).hexdigest()


class EarlyRetryHandler(_sender.AddPartitionsToTxnHandler):  # type: ignore[misc]
    """aiokafka's handler; a transaction's first add answered CONCURRENT_TRANSACTIONS is asked
    again after `EARLY_SECONDS`, at most `EARLY_TRIES` times in a row (`tries`: the sender's count)."""

    def __init__(self, sender: Any, topic_partitions: Any, tries: list[int]) -> None:
        super().__init__(sender, topic_partitions)
        self._tries = tries

    def handle_response(self, resp: Any) -> Any:
        first = not self._sender._txn_manager.txn_partitions
        concurrent = any(
            for_code(code) is ConcurrentTransactions
            for _, partitions in resp.errors
            for _, code in partitions
        )
        backoff = super().handle_response(resp)
        if backoff is not None and first and concurrent and self._tries[0] < EARLY_TRIES:
            self._tries[0] += 1
            return EARLY_SECONDS
        if backoff is None:
            self._tries[0] = 0
        return backoff


def install(producer: Any) -> None:
    """Give `producer`'s sender (an AIOKafkaProducer's `_sender`) the early retry."""
    sender = producer._sender
    tries = [0]

    async def _do_add_partitions_to_txn(self: Any, tps: Any) -> Any:
        # As upstream: the coordinator first, then the handler (ours).
        node_id = await self._find_coordinator(
            CoordinationType.TRANSACTION, self._txn_manager.transactional_id
        )
        return await EarlyRetryHandler(self, tps, tries).do(node_id)

    sender._do_add_partitions_to_txn = types.MethodType(_do_add_partitions_to_txn, sender)
