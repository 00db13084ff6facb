"""A failed commit's decision read from its transaction coordinator before the renewed producer's
InitProducerId erases it (K2, K8; worker.kafka.txn_outcome).

`make chaos` met it as a refusal: the broker frozen then killed after our `EndTxn(commit)` was
sent, its answer lost, the transaction's offsets left dangling on the group's `__consumer_offsets`
partition — the group's committed offsets could not say whether it committed. The coordinator
can, until the next InitProducerId of our transactional id. Here the two cases are made on a
real broker: the commit reached the coordinator (its answer ignored), and it did not (the
transaction still open): the renewed producer must say "commit", resp. "abort" — the latter by
ending it with `EndTxn(abort)` itself, so that what it reads is the coordinator's decision.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiokafka.structs import TopicPartition

from tests.support.kafka import create_topics, visible
from worker.kafka.producer import OutputProducer
from worker.kafka.txn_outcome import coordinator_outcome
from worker.settings import load_settings

pytestmark = pytest.mark.integration


async def _member_producer(bootstrap: str, name: str) -> tuple[OutputProducer, TopicPartition]:
    """An OutputProducer (transactional id `name`-txn) in a transaction holding 3 outputs."""
    await create_topics(bootstrap, {f"{name}.out": 1})
    settings = load_settings(database_url="postgresql://identity@127.0.0.1:1/x", bootstrap_servers=bootstrap)
    producer = OutputProducer(settings, transactional_id=f"{name}-txn", timeout=30)
    await producer.start()
    await producer.begin_transaction()
    out = TopicPartition(f"{name}.out", 0)
    for i in range(3):
        await producer._producer.send_and_wait(out.topic, b"output-%d" % i, partition=0)
    return producer, out


async def test_a_commit_the_coordinator_took_whose_answer_was_lost_is_read_as_commit(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    producer, out = await _member_producer(kafka_bootstrap, unique_topic("i27-outcome-commit"))
    try:
        failed_producer = producer.history.producer
        await producer.commit_transaction()
        producer.history.outcome = None  # its answer lost: the member does not know it committed
        await producer.renew()
        assert producer.history.outcome == "commit"
        assert producer.history.producer == failed_producer, "still the failed transaction's history"
    finally:
        await producer.stop()
    assert await visible(kafka_bootstrap, out) == (3, 4)


async def test_a_commit_that_never_reached_the_coordinator_is_ended_and_read_as_abort(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    producer, out = await _member_producer(kafka_bootstrap, unique_topic("i27-outcome-abort"))
    try:
        producer.history.commit_sent = True  # as commit_transaction marks it before it sends EndTxn
        await producer.renew()
        assert producer.history.outcome == "abort"
    finally:
        await producer.stop()
    assert await visible(kafka_bootstrap, out) == (0, 4), (
        "its outputs never exposed, its ABORT marker written"
    )


async def test_another_producer_since_gives_no_decision(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    producer, _ = await _member_producer(kafka_bootstrap, unique_topic("i27-outcome-other"))
    try:
        pid, epoch = producer.history.producer or (-1, -1)
        await producer.commit_transaction()
        client = producer.client
        assert await coordinator_outcome(client, producer.transactional_id or "", pid, epoch) == "commit"
        assert await coordinator_outcome(client, producer.transactional_id or "", pid + 1, epoch) is None
        assert await coordinator_outcome(client, "no-such-transactional-id", pid, epoch) is None
    finally:
        await producer.stop()
