"""A confirmed commit whose outputs the broker aborted after all is redone (K2, K8;
worker.kafka.confirmed, Partitions.rewind).

tests/broker/test_broker_restart.py met it (3 runs in 14 with a 2 ms CONCURRENT_TRANSACTIONS
retry, which commits more often): the broker stopped right after a commit was confirmed; its
coordinator completed that commit without writing its markers (the partitions had no leader
any more), the next transaction extended the open range, failed, and its ABORT marker aborted
both. The rewind kept the member's own offsets: the confirmed batch's 100 inputs were never
answered. Here the two ends are checked on a real broker: what `outputs_outcome` reads of
committed, aborted and mixed outputs; and that the rewind then seeks to the group's offsets.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.structs import TopicPartition

from tests.support.kafka import create_topics
from worker.kafka.confirmed import outputs_outcome
from worker.ops.metrics import Metrics
from worker.runtime.partitions import Partitions
from worker.runtime.waits import Waits
from worker.settings import load_settings

pytestmark = pytest.mark.integration


async def _transaction(
    bootstrap: str, txn_id: str, tps: list[TopicPartition], *, commit: bool
) -> dict[TopicPartition, int]:
    """3 records on each of `tps` in one transaction, committed or aborted; the first offset per partition."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=txn_id)
    await producer.start()
    try:
        await producer.begin_transaction()
        starts = {}
        for tp in tps:
            for i in range(3):
                meta = await producer.send_and_wait(tp.topic, b"output-%d" % i, partition=tp.partition)
                starts.setdefault(tp, meta.offset)
        await (producer.commit_transaction() if commit else producer.abort_transaction())
    finally:
        await producer.stop()
    return starts


async def test_the_outputs_of_a_transaction_read_as_committed_aborted_or_not_certain(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    topic = unique_topic("k2-confirmed") + ".out"
    await create_topics(kafka_bootstrap, {topic: 2})
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    settings = load_settings(
        database_url="postgresql://identity@127.0.0.1:1/x", bootstrap_servers=kafka_bootstrap
    )
    committed = await _transaction(kafka_bootstrap, f"{topic}-a", [p0, p1], commit=True)
    aborted = await _transaction(kafka_bootstrap, f"{topic}-b", [p0, p1], commit=False)
    await _transaction(kafka_bootstrap, f"{topic}-c", [p0], commit=True)  # later records on p0 only

    assert await outputs_outcome(settings, committed, 10) == "commit"
    assert await outputs_outcome(settings, aborted, 10) == "abort"
    assert await outputs_outcome(settings, {p0: committed[p0], p1: aborted[p1]}, 10) is None
    assert await outputs_outcome(settings, {}, 10) == "commit"


class _Consumer:
    """The two calls of InputConsumer a rewind makes after a failed commit (offsets as the
    group coordinator answers them)."""

    def __init__(self, answers: dict[TopicPartition, int]) -> None:
        self.answers = answers
        self.sought: dict[TopicPartition, int] = {}

    def assignment(self) -> set[TopicPartition]:
        return set(self.answers)

    async def committed(self, tp: TopicPartition) -> int | None:
        return self.answers[tp]

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.sought[tp] = offset

    async def seek_to_beginning(self, tp: TopicPartition) -> None:
        raise AssertionError("every partition has a committed offset")


@pytest.mark.parametrize(("aborted", "want"), [(True, 835), (False, 935)])
async def test_a_rewind_redoes_a_confirmed_commit_only_when_its_outputs_were_aborted(
    aborted: bool, want: int
) -> None:
    tp = TopicPartition("k2-confirmed.raw", 1)
    partitions = Partitions(Waits(retry=None), Metrics())  # type: ignore[arg-type]
    partitions.committed[tp] = 935  # confirmed by our last commit
    consumer = _Consumer({tp: 835})  # the group's offsets: the commit before it
    asked = []

    async def confirmed_aborted() -> bool:
        asked.append(True)
        return aborted

    await partitions.rewind(consumer, ask_coordinator=True, timeout=5, confirmed_aborted=confirmed_aborted)  # type: ignore[arg-type]
    assert consumer.sought == {tp: want}
    assert partitions.committed[tp] == want
    assert asked == [True]
