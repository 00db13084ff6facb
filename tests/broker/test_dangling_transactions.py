"""Dangling transactions of the member's own producer id: found, closed when aborted, else
refused with the partition, the producer id and the remedy (K2, K5, K8; worker.kafka.transactions).

An unclean broker restart can leave an aborted transaction without its ABORT markers (the
coordinator's marker sender took "no leader" for "partition deleted"); its records then look
like an open transaction of our producer id, which our next COMMIT marker would commit. The
broker bug itself needs a broker killed at the right moment (`make chaos` does that); here a
transaction is really left open — outputs and an offset commit, neither committed nor
aborted — and the check must see it on the output partition and on the group's own
`__consumer_offsets` partition, close it with the ABORT marker `kafka-transactions.sh abort`
writes when the transaction can only have been aborted, and otherwise refuse.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from tests.support.kafka import client_options, create_topics
from worker.kafka.transactions import DanglingCheck, DanglingTransaction, group_partition, open_transactions

pytestmark = pytest.mark.integration


async def _open_transaction(bootstrap: str, name: str) -> tuple[Any, TopicPartition]:
    """A producer whose transaction holds 3 outputs and an offset commit of group `name`, left open."""
    await create_topics(bootstrap, {f"{name}.out": 1, f"{name}.in": 1})
    producer = AIOKafkaProducer(**client_options(bootstrap), transactional_id=f"{name}-txn")
    await producer.start()
    await producer.begin_transaction()
    for i in range(3):
        await producer.send_and_wait(f"{name}.out", b"dangling-%d" % i, partition=0)
    await producer.send_offsets_to_transaction({TopicPartition(f"{name}.in", 0): 5}, name)
    return producer, TopicPartition(f"{name}.out", 0)


async def _visible(bootstrap: str, tp: TopicPartition) -> tuple[int, int]:
    """(records a read_committed reader sees, last stable offset) of `tp`."""
    consumer = AIOKafkaConsumer(**client_options(bootstrap), isolation_level="read_committed")
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        seen = await consumer.getmany(tp, timeout_ms=2000)
        stable = (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()
    return len(seen.get(tp, [])), stable


async def test_an_open_transaction_that_can_only_have_aborted_is_closed_with_its_abort_marker(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    name = unique_topic("i27-dangling")
    producer, out = await _open_transaction(kafka_bootstrap, name)
    counted: list[tuple[str, int]] = []
    try:
        client = producer.client
        pid = producer._txn_manager.producer_id
        group = await group_partition(client, name)
        found = await open_transactions(client, [out, group], pid)
        assert {t.tp for t in found} == {out, group}, found  # outputs and the group's offset commit
        assert (await _visible(kafka_bootstrap, out))[1] == 0, "the open transaction holds the LSO"
        check = DanglingCheck(name, kafka_bootstrap, lambda topic, p: counted.append((topic, p)))

        async def never(_: TopicPartition) -> int:
            raise AssertionError("no offsets needed: without EndTxn(commit) only an abort is possible")

        await check.settle(client, pid, [out], {}, False, never)
        assert await open_transactions(client, [out, group], pid) == []
        seen, stable = await _visible(kafka_bootstrap, out)
    finally:
        await producer.stop()
    assert seen == 0, "an aborted transaction's outputs are never exposed"
    assert stable == 4, "3 records and the ABORT marker: the LSO moved past them"
    assert sorted(counted) == sorted([(out.topic, 0), (group.topic, group.partition)])


async def test_an_open_transaction_of_unknown_outcome_is_refused_naming_partition_producer_and_remedy(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    name = unique_topic("i27-refused")
    producer, out = await _open_transaction(kafka_bootstrap, name)
    try:
        client = producer.client
        pid = producer._txn_manager.producer_id
        check = DanglingCheck(name, kafka_bootstrap, lambda topic, p: None)

        async def committed(_: TopicPartition) -> int:
            raise AssertionError("the group's offsets partition dangles too: its answer cannot decide")

        failed = {TopicPartition(f"{name}.in", 0): 5}
        with pytest.raises(DanglingTransaction) as refused:
            await check.settle(client, pid, [out], failed, True, committed)
        still_open = await open_transactions(client, [out], pid)
    finally:
        await producer.stop()
    message = str(refused.value)
    assert f"producer id {pid}" in message and f"{out.topic}[0]" in message, message
    assert "kafka-transactions.sh" in message and "abort" in message, message
    assert [t.tp for t in still_open] == [out], "nothing closed when the outcome is unknown"
