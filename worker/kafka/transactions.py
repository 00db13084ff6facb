"""Dangling transactions of the member's own producer id, found and closed or refused (K2, K5, K8).

After an unclean broker restart the transaction coordinator may abort the member's open
transaction (timed out) while its partitions have no leader yet; its marker sender takes "no
leader" for "partition deleted" (Kafka's TransactionMarkerChannelManager) and completes the
abort without writing the ABORT marker. The aborted batch then stays in the output partitions
(and its offset commit in the group's `__consumer_offsets` partition) as an open transaction of
our producer id. The member redoes the batch with the same producer id (a new epoch) and its
next COMMIT marker commits the dangling records too: every input of the batch answered twice,
and the group coordinator takes the dangling offset commit for committed for a moment.

`DanglingCheck.settle` runs once a new producer has ended the transaction of a failed commit
(InitProducerId returned: the coordinator has completed it), before anything is produced
again. It asks every output partition's leader and the group's offsets partition's leader
(DescribeProducers, KIP-664: aiokafka has no such call, so the request is defined here) for an
open transaction of our producer id — there can be none legitimately, we have not begun one.
For each one found it decides what the coordinator decided:

- the failed batch never sent `EndTxn(commit)` → only an abort is possible;
- the offsets partition is clean → the group's committed offsets (a stable read) say it: the
  batch's own offsets → committed (our next COMMIT marker rightly commits the dangling outputs;
  the batch is not redone), the previous offsets → aborted;
- else unknown.

An aborted one is closed as `kafka-transactions.sh abort` / `Admin.abortTransaction` close
it: an ABORT marker written with WriteTxnMarkers to the partition's leader, with the producer
epoch and coordinator epoch DescribeProducers gave. That writes exactly the decision the
coordinator took, so no record is exposed. The broker allows it only to a principal with
`ClusterAction` (a broker's right): when refused, or when the decision is unknown or
committed-but-offsets-dangling, the member does not produce: it raises `DanglingTransaction`
(retriable: /readyz stays 503, the recovery tries again on its backoff), logs one line and
counts `identity_worker_dangling_transactions{topic,partition}`, naming the partition, the
producer id and the operator's remedy.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import structlog
from aiokafka import errors as kafka
from aiokafka.structs import TopicPartition

from worker.kafka.txn_requests import AbortMarkers, DescribeProducers, OpenTransaction, offsets_partition

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


async def abort(client: Any, transactions: list[OpenTransaction]) -> None:
    """Write the ABORT marker of each transaction (WriteTxnMarkers to its leader).

    Raises ClusterAuthorizationFailedError when the principal may not (it needs ClusterAction),
    another aiokafka error for a partition the broker refused.
    """
    by_tp = {t.tp: t for t in transactions}
    for leader, tps in (await _leaders(client, by_tp)).items():
        response = await client.send(leader, AbortMarkers(by_tp[tp] for tp in tps))
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
        commit_sent: bool,
        committed: Callable[[TopicPartition], Any],
    ) -> None:
        """Close the dangling transactions of `producer_id` whose outcome was abort, or raise
        `DanglingTransaction`. `failed`: the offsets the failed batch would have committed;
        `commit_sent`: whether its `EndTxn(commit)` may have reached the coordinator;
        `committed(tp)`: awaitable, the group's stable committed offset."""
        group = await group_partition(client, self.group_id)
        found = await open_transactions(client, [*outputs, group], producer_id)
        if not found:
            return
        for txn in found:
            self.count(txn.tp.topic, txn.tp.partition)
        outcome = await self._outcome(found, group, failed, commit_sent, committed)
        if outcome == "committed":
            log.warning(
                "dangling transaction of our producer id was committed; our next commit completes it",
                producer_id=producer_id,
                partitions=[f"{t.tp.topic}[{t.tp.partition}]" for t in found],
            )
            return
        if outcome == "aborted":
            try:
                await abort(client, found)
            except kafka.KafkaError as exc:
                self._refuse(
                    found,
                    f"aborted by the coordinator, but the ABORT marker was refused: {type(exc).__name__}",
                )
            log.warning(
                "dangling transaction of our producer id aborted (its ABORT marker was missing)",
                producer_id=producer_id,
                partitions=[f"{t.tp.topic}[{t.tp.partition}] from offset {t.start_offset}" for t in found],
            )
            return
        self._refuse(found, "its outcome is unknown")

    async def _outcome(
        self,
        found: list[OpenTransaction],
        group: TopicPartition,
        failed: Mapping[TopicPartition, int],
        commit_sent: bool,
        committed: Callable[[TopicPartition], Any],
    ) -> str:
        if not commit_sent:
            return "aborted"  # without EndTxn(commit) the coordinator can only have aborted it
        if any(t.tp == group for t in found) or not failed:
            return "unknown"
        answers = {tp: await committed(tp) for tp in failed}
        if all(answers[tp] == offset for tp, offset in failed.items()):
            return "committed"
        if all(answers[tp] is None or answers[tp] < offset for tp, offset in failed.items()):
            return "aborted"
        return "unknown"

    def _refuse(self, found: list[OpenTransaction], why: str) -> None:
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
                    remedy=txn.remedy(self.bootstrap),
                )
        first = found[0]
        where = f"{first.tp.topic}[{first.tp.partition}] from offset {first.start_offset}"
        raise DanglingTransaction(
            f"dangling transaction of producer id {first.producer_id} on {where} ({why}); "
            f"remedy: {first.remedy(self.bootstrap)}"
        )
