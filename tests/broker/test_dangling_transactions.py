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

from tests.support.kafka import client_options, create_topics, visible
from worker.kafka.transactions import DanglingCheck, DanglingTransaction, group_partition, open_transactions
from worker.kafka.txn_requests import TxnHistory

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


async def _committed_outputs_and_offsets(
    bootstrap: str, name: str, history: TxnHistory, failed: int, why: str
) -> tuple[int, int, int | None]:
    """`_open_transaction`, then `settle` with `history` (the offsets never asked: `why`):
    (outputs a read_committed reader sees, the output's LSO, the group's committed offset)."""
    producer, out = await _open_transaction(bootstrap, name)
    source = TopicPartition(f"{name}.in", 0)
    try:
        client = producer.client
        pid = producer._txn_manager.producer_id
        check = DanglingCheck(name, bootstrap, lambda topic, p: None)

        async def never(_: TopicPartition) -> int:
            raise AssertionError(why)

        await check.settle(client, pid, [out], {source: failed}, history, never)
        group = await group_partition(client, name)
        assert await open_transactions(client, [out, group], pid) == []
        seen, stable = await visible(bootstrap, out)
    finally:
        await producer.stop()
    reader = AIOKafkaConsumer(**client_options(bootstrap), group_id=name, enable_auto_commit=False)
    await reader.start()
    try:
        offset = await reader.committed(source)
    finally:
        await reader.stop()
    return seen, stable, offset


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
        assert (await visible(kafka_bootstrap, out))[1] == 0, "the open transaction holds the LSO"
        check = DanglingCheck(name, kafka_bootstrap, lambda topic, p: counted.append((topic, p)))

        async def never(_: TopicPartition) -> int:
            raise AssertionError("no offsets needed: without EndTxn(commit) only an abort is possible")

        failed = TxnHistory(targets={out}, offsets_sent=True)  # sent all, never EndTxn(commit)
        await check.settle(client, pid, [out], {}, failed, never)
        assert await open_transactions(client, [out, group], pid) == []
        seen, stable = await visible(kafka_bootstrap, out)
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
        history = TxnHistory(targets={out}, offsets_sent=True, commit_sent=True)
        with pytest.raises(DanglingTransaction) as refused:
            await check.settle(client, pid, [out], failed, history, committed)
        still_open = await open_transactions(client, [out], pid)
    finally:
        await producer.stop()
    message = str(refused.value)
    assert f"producer id {pid}" in message and f"{out.topic}[0]" in message, message
    assert "kafka-transactions.sh" in message and "abort" in message, message
    assert [t.tp for t in still_open] == [out], "nothing closed when the outcome is unknown"


async def test_an_open_transaction_the_coordinator_had_confirmed_committed_gets_its_commit_marker(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    """Seen in `make chaos`: the broker killed right after confirming a commit skipped its COMMIT
    markers; an ABORT there (ours, or the coordinator's of the next failed batch) drops committed
    outputs and their offsets. The open range is exactly the confirmed transaction's and the
    failed one sent nothing: COMMIT markers, the outputs visible and the offsets committed."""
    name = unique_topic("i27-confirmed")
    history = TxnHistory(confirmed_starts={TopicPartition(f"{name}.out", 0): 0})  # then one failed early
    why = "the confirmed transaction's decision is known: COMMIT"
    seen, stable, offset = await _committed_outputs_and_offsets(kafka_bootstrap, name, history, 9, why)
    assert (seen, stable) == (3, 4), "the committed transaction's outputs are visible"
    assert offset == 5, "and its offsets are the group's"


async def test_a_failed_commit_the_coordinator_said_committed_gets_commit_markers_offsets_included(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    """Seen in `make chaos` as a refusal: the broker frozen then killed after our EndTxn(commit),
    its answer lost, the failed transaction's outputs and offsets dangling — the group's own
    offsets partition among them, so its committed offsets could not decide. Its coordinator
    said COMMIT before our InitProducerId (`history.outcome`, worker.kafka.txn_outcome): COMMIT
    markers on the outputs and on the group's partition, nothing refused."""
    name = unique_topic("i27-said-commit")
    history = TxnHistory(targets={TopicPartition(f"{name}.out", 0)}, offsets_sent=True, commit_sent=True)
    history.outcome = "commit"  # what its coordinator said
    why = "the coordinator's decision is known: the offsets are not asked"
    seen, stable, offset = await _committed_outputs_and_offsets(kafka_bootstrap, name, history, 5, why)
    assert (seen, stable) == (3, 4), "the committed transaction's outputs are visible"
    assert offset == 5, "and its offsets are the group's"
