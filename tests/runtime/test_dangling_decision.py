"""What the member concludes about an open transaction of its own producer id (K2, K8;
worker.kafka.transactions): the coordinator's outcome, from what is certain only. No I/O."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from aiokafka.structs import TopicPartition

from worker.kafka.transactions import DanglingCheck, _decision
from worker.kafka.txn_requests import OpenTransaction, TxnHistory, offsets_partition

OUT = TopicPartition("acme.enriched", 1)
GROUP = TopicPartition("__consumer_offsets", 3)
IN = TopicPartition("acme.raw", 1)


def _open(tp: TopicPartition, start: int = 40) -> OpenTransaction:
    return OpenTransaction(tp, producer_id=7, producer_epoch=2, coordinator_epoch=1, start_offset=start)


def _answers(offset: int | None) -> Any:
    async def committed(_: TopicPartition) -> int | None:
        return offset

    return committed


FAILED_SENT_ALL = TxnHistory(targets={OUT}, offsets_sent=True)


@pytest.mark.parametrize(
    ("found", "history", "committed", "outcome"),
    [
        ([OUT, GROUP], FAILED_SENT_ALL, None, "abort"),  # no EndTxn(commit): only an abort is possible
        ([OUT], replace(FAILED_SENT_ALL, commit_sent=True), 120, "commit"),  # the group has its offsets
        ([OUT], replace(FAILED_SENT_ALL, commit_sent=True), 100, "abort"),  # the offsets before it
        ([OUT, GROUP], replace(FAILED_SENT_ALL, commit_sent=True), 120, None),  # the group dangles too
        # ... unless its coordinator said, before our InitProducerId (worker.kafka.txn_outcome)
        ([OUT, GROUP], replace(FAILED_SENT_ALL, commit_sent=True, outcome="commit"), None, "commit"),
        ([OUT, GROUP], replace(FAILED_SENT_ALL, commit_sent=True, outcome="abort"), None, "abort"),
    ],
)
async def test_the_failed_transactions_decision_only_from_what_is_certain(
    found: list[TopicPartition], history: TxnHistory, committed: int | None, outcome: str | None
) -> None:
    check = DanglingCheck("g", "b:9092", lambda topic, partition: None)
    got = await check._failed_outcome(
        [_open(tp) for tp in found], GROUP, {IN: 120}, history, _answers(committed)
    )
    assert got == outcome


@pytest.mark.parametrize(
    ("tp", "start", "history", "confirmed_dangles", "decision"),
    [
        (OUT, 40, TxnHistory(confirmed_starts={OUT: 40}), True, "commit"),  # the confirmed one: COMMIT
        (GROUP, 0, TxnHistory(confirmed_starts={OUT: 40}), True, "commit"),  # its offsets (none failing)
        (OUT, 40, TxnHistory(confirmed_starts={OUT: 40}, targets={OUT}), True, None),  # both in one range
        (GROUP, 0, TxnHistory(confirmed_starts={OUT: 40}, offsets_sent=True), True, None),  # both offsets
        (GROUP, 0, TxnHistory(confirmed_starts={}, offsets_sent=True), False, None),  # offsets-only one too
        (
            GROUP,
            0,
            TxnHistory(confirmed_starts={OUT: 40}, offsets_sent=True),
            False,
            "abort",
        ),  # the failed one's
        (OUT, 55, TxnHistory(confirmed_starts={OUT: 40}, targets={OUT}), False, "abort"),  # after it: failed
        (OUT, 40, TxnHistory(), False, None),  # nobody of ours wrote there since: an older one
    ],
)
def test_each_open_range_is_attributed_to_the_confirmed_or_the_failed_transaction(
    tp: TopicPartition, start: int, history: TxnHistory, confirmed_dangles: bool, decision: str | None
) -> None:
    assert _decision(_open(tp, start), GROUP, history, "abort", confirmed_dangles) == decision


@pytest.mark.parametrize(
    ("tp", "history"),
    [
        (OUT, TxnHistory(confirmed_starts={OUT: 40}, targets={OUT})),
        (GROUP, TxnHistory(confirmed_starts={OUT: 40}, offsets_sent=True)),
    ],
)
def test_the_confirmed_and_the_failed_one_in_one_range_take_one_commit_marker_when_both_committed(
    tp: TopicPartition, history: TxnHistory
) -> None:
    start = 40 if tp == OUT else 0
    assert _decision(_open(tp, start), GROUP, history, "commit", True) == "commit"
    assert _decision(_open(tp, start), GROUP, history, "abort", True) is None  # no marker fits both
    assert _decision(_open(tp, start), GROUP, history, None, True) is None


@pytest.mark.parametrize(
    ("group", "partition"),
    # Java 17: Utils.abs(group.hashCode()) % 50 (hashCode -2147483648, -608375083, 482247530)
    [("polygenelubricants", 0), ("identity-worker.acme.raw", 33), ("é-groupe-日本", 30)],
)
def test_the_group_lands_on_the_offsets_partition_kafka_puts_it_on(group: str, partition: int) -> None:
    assert offsets_partition(group, 50) == partition


def test_the_remedy_follows_the_coordinators_decision_when_only_the_marker_was_refused() -> None:
    txn = _open(OUT, 40)
    unknown, aborted, committed = (txn.remedy("b:9092", d) for d in (None, "abort", "commit"))
    assert "kafka-transactions.sh --bootstrap-server b:9092 abort --topic acme.enriched" in unknown
    assert "--partition 1 --start-offset 40" in unknown and "once `kafka-transactions.sh describe`" in unknown
    assert (
        "abort --topic acme.enriched --partition 1 --start-offset 40 (the coordinator aborted it)" in aborted
    )
    assert "abort" not in committed.split("(")[0] and "ClusterAction" in committed, committed
    assert "never abort this one" in committed
