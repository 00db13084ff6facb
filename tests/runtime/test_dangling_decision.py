"""What the member concludes about an open transaction of its own producer id (K2, K8;
worker.kafka.transactions): the coordinator's outcome, from what is certain only. No I/O."""

from __future__ import annotations

import pytest
from aiokafka.structs import TopicPartition

from worker.kafka.transactions import DanglingCheck
from worker.kafka.txn_requests import OpenTransaction, offsets_partition

OUT = TopicPartition("acme.enriched", 1)
GROUP = TopicPartition("__consumer_offsets", 3)
IN = TopicPartition("acme.raw", 1)


def _open(tp: TopicPartition) -> OpenTransaction:
    return OpenTransaction(tp, producer_id=7, producer_epoch=2, coordinator_epoch=1, start_offset=40)


def _answers(offset: int | None) -> object:
    async def committed(_: TopicPartition) -> int | None:
        return offset

    return committed


@pytest.mark.parametrize(
    ("found", "commit_sent", "committed", "outcome"),
    [
        ([OUT, GROUP], False, None, "aborted"),  # no EndTxn(commit): only an abort is possible
        ([OUT], True, 120, "committed"),  # the group's offsets are the batch's: it committed
        ([OUT], True, 100, "aborted"),  # the offsets before the batch: it aborted
        ([OUT, GROUP], True, 120, "unknown"),  # the offsets partition dangles too: cannot tell
    ],
)
async def test_the_outcome_is_concluded_only_from_what_is_certain(
    found: list[TopicPartition], commit_sent: bool, committed: int | None, outcome: str
) -> None:
    check = DanglingCheck("g", "b:9092", lambda topic, partition: None)
    got = await check._outcome(
        [_open(tp) for tp in found], GROUP, {IN: 120}, commit_sent, _answers(committed)
    )
    assert got == outcome


@pytest.mark.parametrize(
    ("group", "partition"),
    # Java 17: Utils.abs(group.hashCode()) % 50 (hashCode -2147483648, -608375083, 482247530)
    [("polygenelubricants", 0), ("identity-worker.acme.raw", 33), ("é-groupe-日本", 30)],
)
def test_the_group_lands_on_the_offsets_partition_kafka_puts_it_on(group: str, partition: int) -> None:
    assert offsets_partition(group, 50) == partition
