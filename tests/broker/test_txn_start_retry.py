"""The early retry of a transaction's first AddPartitionsToTxn (K4; worker.kafka.txn_start_retry).

Fails loudly when aiokafka changes under the mirrored code; checks the retry's bound on the
handler's own decision, and on a real broker that back-to-back transactions commit with it and
that it is one producer's, not the process's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib.metadata import version
from types import SimpleNamespace

import aiokafka.producer.sender as upstream
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.structs import TopicPartition

from tests.support.kafka import create_topics, visible
from worker.kafka import txn_start_retry
from worker.kafka.txn_start_retry import EARLY_SECONDS, EARLY_TRIES, EarlyRetryHandler

pytestmark = pytest.mark.integration
CONCURRENT_TRANSACTIONS = 51


def test_the_mirrored_aiokafka_is_the_installed_one() -> None:
    assert version("aiokafka") == txn_start_retry.MIRRORS, "re-read upstream's sender, then update MIRRORS"
    assert txn_start_retry.upstream_fingerprint() == txn_start_retry.UPSTREAM_SHA256, (
        "aiokafka's AddPartitionsToTxnHandler.handle_response or Sender._do_add_partitions_to_txn "
        "changed: re-read them against worker/kafka/txn_start_retry.py"
    )


def _handler(tries: list[int], *, added: set[TopicPartition]) -> EarlyRetryHandler:
    manager = SimpleNamespace(txn_partitions=added, partition_added=added.add)
    sender = SimpleNamespace(_txn_manager=manager, _retry_backoff=0.1)
    return EarlyRetryHandler(sender, [TopicPartition("out", 0)], tries)


def _answer(code: int) -> SimpleNamespace:
    return SimpleNamespace(errors=[("out", [(0, code)])])


def test_a_first_add_answered_concurrent_transactions_is_retried_early_a_bounded_number_of_times() -> None:
    tries = [0]
    backoffs = [
        _handler(tries, added=set()).handle_response(_answer(CONCURRENT_TRANSACTIONS)) for _ in range(12)
    ]
    assert backoffs == [EARLY_SECONDS] * EARLY_TRIES + [upstream.BACKOFF_OVERRIDE] * 2
    assert _handler(tries, added=set()).handle_response(_answer(0)) is None
    assert tries == [0], "a success starts the count again"
    # Not the first add of the transaction: upstream's own backoff, untouched.
    later = _handler(tries, added={TopicPartition("out", 1)})
    assert later.handle_response(_answer(CONCURRENT_TRANSACTIONS)) == 0.1


async def test_back_to_back_transactions_commit_with_the_early_retry_of_one_producer_only(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    topic = unique_topic("k4-txn-start") + ".out"
    await create_topics(kafka_bootstrap, {topic: 1})
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=f"{topic}-txn", linger_ms=0
    )
    other = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=f"{topic}-other")
    await producer.start()
    await other.start()
    try:
        txn_start_retry.install(producer)
        assert "_do_add_partitions_to_txn" in vars(producer._sender)
        assert "_do_add_partitions_to_txn" not in vars(other._sender), "one producer's, not the process's"
        started = time.monotonic()
        for i in range(20):  # each begun right after the previous commit: CONCURRENT_TRANSACTIONS
            await producer.begin_transaction()
            await producer.send_and_wait(topic, b"output-%d" % i, partition=0)
            await producer.commit_transaction()
        per_transaction = (time.monotonic() - started) / 20
    finally:
        await producer.stop()
        await other.stop()
    assert await visible(kafka_bootstrap, TopicPartition(topic, 0)) == (20, 40)
    print(f"\n20 back-to-back transactions: {per_transaction * 1000:.1f} ms each")
