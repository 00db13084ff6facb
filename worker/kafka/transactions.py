"""Dangling transactions of the member's own producer id, found and closed or refused (K2, K5, K8).

After an unclean broker restart the transaction coordinator completes transactions whose
partitions have no leader yet — one it aborted (timed out) or one it had decided to commit
before the crash — and its marker sender takes "no leader" for "partition deleted" (Kafka's
TransactionMarkerChannelManager): it completes them **without writing the markers**. Their
records stay in the output partitions (and their offset commit in the group's
`__consumer_offsets` partition) as an open transaction of our producer id. Our next COMMIT
marker (same producer id, new epoch) would commit an aborted batch's records too (every input
answered twice); an ABORT — the coordinator's of our next failed batch, or ours — would drop a
committed one's (inputs lost). When such an ABORT came first and closed the range before this
check looks, `worker.kafka.confirmed` finds the confirmed batch's outputs aborted and the rewind
redoes it from the group's offsets.

`DanglingCheck.settle` runs once a new producer has ended the transaction of a failed commit,
before anything is produced again. It asks every output partition's leader and the group's
offsets partition's leader (DescribeProducers, KIP-664: aiokafka has no such call,
`worker.kafka.txn_requests` defines it) for an open transaction of our producer id — there can
be none legitimately: we have not begun one. Only two of ours can be open: the last one the
coordinator confirmed committed, and the failed one. `TxnHistory` (kept by the producer) tells
them apart per partition — where the confirmed one started, where the failed one sent records,
whether it sent its offsets — and says their decisions: the confirmed one COMMIT; the failed one
ABORT when it never sent `EndTxn(commit)`, else what its transaction coordinator said before our
new producer's InitProducerId (`worker.kafka.txn_outcome`: DescribeTransactions, forcing an
undecided one to ABORT), else what the group's stable committed offsets show when its offsets
partition is clean.

Each is closed with the marker of its coordinator's decision, written with WriteTxnMarkers to
the partition's leader as `kafka-transactions.sh abort` / `Admin.abortTransaction` write an
ABORT (with the producer and coordinator epochs DescribeProducers gave): no record is exposed
that the coordinator aborted, none dropped that it committed. The broker allows it only to a
principal with `ClusterAction` (a broker's right). When refused, or when a decision is not
certain (the failed one's unknown; the failed one aborted in one open range with the confirmed
one; a range we cannot attribute), the member does not produce: it raises `DanglingTransaction`
(retriable: /readyz stays 503, the recovery tries again on its backoff, so it goes on once an
operator closed it), logs one line per partition and counts
`identity_worker_dangling_transactions{topic,partition}`, naming the partition, the producer id
and the operator's remedy.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import structlog
from aiokafka import errors as kafka
from aiokafka.structs import TopicPartition

from worker.kafka.txn_requests import (
    DescribeProducers,
    Markers,
    OpenTransaction,
    TxnHistory,
    offsets_partition,
)

OFFSETS_TOPIC: Final = "__consumer_offsets"
NO_TRANSACTION: Final = -1
log = structlog.get_logger(__name__)


class DanglingTransaction(kafka.KafkaError):  # type: ignore[misc]
    """An open transaction of our producer id that the member may not close: it stops producing."""

    retriable = True


# ------------------------------------------------------------------------------ finding them


async def _leaders(client: Any, tps: Iterable[TopicPartition]) -> dict[int, list[TopicPartition]]:
    cluster = await client.fetch_all_metadata()
    by_leader: dict[int, list[TopicPartition]] = collections.defaultdict(list)
    for tp in tps:
        leader = cluster.leader_for_partition(tp)
        if leader is None:
            continue  # no such partition (any more: a topic re-created smaller): nothing dangles there
        if leader < 0:
            raise kafka.LeaderNotAvailableError(f"{tp.topic}[{tp.partition}] has no leader")
        by_leader[leader].append(tp)
    return by_leader


async def group_partition(client: Any, group_id: str) -> TopicPartition:
    """The group's partition of `__consumer_offsets` (where its transactional offset commits go)."""
    cluster = await client.fetch_all_metadata()
    count = len(cluster.partitions_for_topic(OFFSETS_TOPIC) or ())
    if not count:
        raise kafka.LeaderNotAvailableError(f"{OFFSETS_TOPIC} has no partitions in the metadata")
    return TopicPartition(OFFSETS_TOPIC, offsets_partition(group_id, count))


async def open_transactions(
    client: Any, tps: Iterable[TopicPartition], producer_id: int
) -> list[OpenTransaction]:
    """The open transactions of `producer_id` on `tps` (DescribeProducers to each leader)."""
    found = []
    for leader, owned in (await _leaders(client, tps)).items():
        response = await client.send(leader, DescribeProducers(owned))
        for topic, partitions, _ in response.topics:
            for partition, code, message, producers, _ in partitions:
                if code:
                    error = kafka.for_code(code)
                    raise error(f"DescribeProducers {topic}[{partition}]: {message or error.__name__}")
                for pid, epoch, _seq, _ts, coordinator_epoch, start, _ in producers:
                    if pid == producer_id and start != NO_TRANSACTION:
                        found.append(
                            OpenTransaction(
                                TopicPartition(topic, partition), pid, epoch, coordinator_epoch, start
                            )
                        )
    return found


async def write_markers(client: Any, markers: list[tuple[OpenTransaction, bool]]) -> None:
    """Write each transaction's marker, COMMIT (True) or ABORT (False), with WriteTxnMarkers to
    its partition's leader, as `kafka-transactions.sh abort` writes an ABORT.

    Raises ClusterAuthorizationFailedError when the principal may not (it needs ClusterAction),
    another aiokafka error for a partition the broker refused.
    """
    by_tp = {t.tp: (t, commit) for t, commit in markers}
    for leader, tps in (await _leaders(client, by_tp)).items():
        response = await client.send(leader, Markers(by_tp[tp] for tp in tps))
        for _pid, topics, _ in response.markers:
            for topic, partitions, _ in topics:
                for partition, code, _ in partitions:
                    if code:
                        raise kafka.for_code(code)(f"WriteTxnMarkers {topic}[{partition}]")


# ------------------------------------------------------------------------------ the decision


class DanglingCheck:
    """What the member runs after a failed commit's transaction was ended, before producing again.

    `count(topic, partition)`: the metric of a dangling transaction met (found, whatever became of it).
    """

    def __init__(self, group_id: str, bootstrap: str, count: Callable[[str, int], None]) -> None:
        self.group_id = group_id
        self.bootstrap = bootstrap
        self.count = count
        self._reported: set[OpenTransaction] = set()

    async def settle(
        self,
        client: Any,
        producer_id: int,
        outputs: Iterable[TopicPartition],
        failed: Mapping[TopicPartition, int],
        history: TxnHistory,
        committed: Callable[[TopicPartition], Any],
    ) -> None:
        """Close each dangling transaction of `producer_id` with the marker of the decision its
        coordinator took, or raise `DanglingTransaction` when that decision is not certain.
        `failed`: the offsets the failed batch would have committed; `history`: what our
        transactions did; `committed(tp)`: awaitable, the group's stable committed offset."""
        group = await group_partition(client, self.group_id)
        found = await open_transactions(client, [*outputs, group], producer_id)
        if not found:
            return
        for txn in found:
            self.count(txn.tp.topic, txn.tp.partition)
        failed_outcome = await self._failed_outcome(found, group, failed, history, committed)
        confirmed_dangles = any(_holds_confirmed(txn, history) for txn in found if txn.tp != group)
        decisions = [
            (txn, _decision(txn, group, history, failed_outcome, confirmed_dangles)) for txn in found
        ]
        unknown = [txn for txn, decision in decisions if decision is None]
        if unknown:
            self._refuse(unknown, "the coordinator's decision is not certain")
        markers = [(txn, bool(decision == "commit")) for txn, decision in decisions]
        try:
            await write_markers(client, markers)
        except kafka.KafkaError as exc:
            self._refuse(found, f"the marker was refused: {type(exc).__name__}", dict(decisions))
        log.warning(
            "dangling transaction of our producer id closed with the marker the broker skipped",
            producer_id=producer_id,
            partitions=[
                f"{t.tp.topic}[{t.tp.partition}] from offset {t.start_offset}: {d}" for t, d in decisions
            ],
        )

    async def _failed_outcome(
        self,
        found: list[OpenTransaction],
        group: TopicPartition,
        failed: Mapping[TopicPartition, int],
        history: TxnHistory,
        committed: Callable[[TopicPartition], Any],
    ) -> str | None:
        """The decision on the failed transaction: "abort", "commit" or None (not certain)."""
        if not history.commit_sent:
            return "abort"  # without EndTxn(commit) the coordinator can only have aborted it
        if history.outcome is not None:
            return history.outcome  # its coordinator said, before our InitProducerId (txn_outcome)
        if any(t.tp == group for t in found) or not failed:
            return None
        answers = {tp: await committed(tp) for tp in failed}
        if all(answers[tp] == offset for tp, offset in failed.items()):
            return "commit"
        if all(answers[tp] is None or answers[tp] < offset for tp, offset in failed.items()):
            return "abort"
        return None

    def _refuse(
        self,
        found: list[OpenTransaction],
        why: str,
        decisions: Mapping[OpenTransaction, str | None] | None = None,
    ) -> None:
        decided = decisions or {}
        for txn in found:
            if txn not in self._reported:
                self._reported.add(txn)
                log.error(
                    "dangling transaction: not producing until it is closed",
                    topic=txn.tp.topic,
                    partition=txn.tp.partition,
                    producer_id=txn.producer_id,
                    producer_epoch=txn.producer_epoch,
                    start_offset=txn.start_offset,
                    why=why,
                    remedy=txn.remedy(self.bootstrap, decided.get(txn)),
                )
        first = found[0]
        where = f"{first.tp.topic}[{first.tp.partition}] from offset {first.start_offset}"
        raise DanglingTransaction(
            f"dangling transaction of producer id {first.producer_id} on {where} ({why}); "
            f"remedy: {first.remedy(self.bootstrap, decided.get(first))}"
        )


def _holds_confirmed(txn: OpenTransaction, history: TxnHistory) -> bool:
    """An output partition's open range starts at or before the confirmed transaction's records."""
    confirmed = history.confirmed_starts
    return confirmed is not None and txn.tp in confirmed and txn.start_offset <= confirmed[txn.tp]


def _decision(
    txn: OpenTransaction,
    group: TopicPartition,
    history: TxnHistory,
    failed: str | None,
    confirmed_dangles: bool,
) -> str | None:
    """Whose records one open transaction holds, hence its coordinator's decision.

    Only two transactions of ours can be open: the last one the coordinator confirmed committed
    (its markers may have been skipped too; decision COMMIT) and the failed one. A partition
    holding records of both, or one we cannot attribute, is not certain (None).
    """
    confirmed = history.confirmed_starts
    if txn.tp == group:
        # The confirmed one's offsets dangle there when its outputs do (their markers go out
        # together), or when it wrote no outputs; the failed one's when it sent them. Should
        # the confirmed one's offsets dangle alone (markers written on some partitions only),
        # the ABORT meant for the failed one drops them too and the rewind keeps our own
        # confirmed offsets (Partitions.rewind): its outputs stand, nothing is redone.
        last = confirmed is not None and (confirmed_dangles or not confirmed)
        failing = history.offsets_sent
    else:
        last = _holds_confirmed(txn, history)
        failing = txn.tp in history.targets
        if not last and not failing:
            return None  # an older transaction of ours: nothing we know decides it
    if last and failing:
        # The confirmed one and the failed one in one open range: one marker ends both, so only
        # when both were committed does one fit.
        return "commit" if failed == "commit" else None
    return "commit" if last else failed
