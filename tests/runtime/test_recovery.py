"""The member's recovery state (K5, K8) and the decision of a whole batch (K1, K3, K9), without I/O."""

from __future__ import annotations

from aiokafka.structs import ConsumerRecord, TopicPartition

from worker.core.community import ConfigUnavailable
from worker.core.contracts import Source
from worker.core.reasons import Outcome, Reason
from worker.core.records import Output
from worker.ops.metrics import Metrics
from worker.runtime.decide import Decider, Waiting
from worker.runtime.recovery import Recovery, Redo


def test_a_failed_commit_renews_the_producer_asks_the_coordinator_then_seeks() -> None:
    recovery = Recovery(transactional=True)
    assert recovery.healthy and recovery.clean and not recovery.pending
    recovery.commit_failed()
    assert recovery.pending and recovery.renew_producer and recovery.ask_coordinator
    assert not recovery.clean and not recovery.healthy
    recovery.producer_renewed()  # a seek that fails next does not renew the producer again
    assert not recovery.renew_producer and recovery.ask_coordinator and recovery.pending
    recovery.done()
    assert recovery.clean and not recovery.pending
    assert not recovery.healthy  # a rewind is not a commit: not ready until one succeeds (K8)
    recovery.committed()
    assert recovery.healthy


def test_at_least_once_has_no_transaction_to_end() -> None:
    recovery = Recovery(transactional=False)
    recovery.commit_failed()
    assert recovery.ask_coordinator and not recovery.renew_producer and not recovery.clean


def test_faults_add_what_they_need_and_never_take_a_step_away() -> None:
    recovery = Recovery(transactional=True)
    recovery.need(Redo.REWIND)  # a batch decided across a revocation (K5)
    assert recovery.pending and not recovery.renew_producer and not recovery.ask_coordinator
    assert recovery.clean and not recovery.healthy
    recovery.need(Redo.RENEW)  # the last transaction could not be settled
    assert recovery.renew_producer and not recovery.ask_coordinator
    recovery.commit_failed()
    recovery.producer_renewed()
    recovery.need(Redo.RENEW)  # a settle failing after the renewal asks for another one
    recovery.need(Redo.REWIND)
    assert recovery.renew_producer and recovery.ask_coordinator
    recovery.done()
    assert not recovery.pending and recovery.left is Redo.NOTHING


def record(partition: int, offset: int, value: bytes) -> ConsumerRecord:  # type: ignore[type-arg]
    return ConsumerRecord("raw", partition, offset, 0, 0, None, value, None, -1, len(value), ())


async def test_decide_returns_each_output_in_order_and_what_waits() -> None:
    def processor(value: bytes | None, source: Source, now: float) -> Output:
        if value == b"store down":
            raise ConfigUnavailable("community acme is not cached and the store cannot be read now")
        return Output(Outcome.REJECTED, {"raw": value}, Reason.MALFORMED_EVENT)

    decider = Decider(processor, metrics=Metrics(), max_attempts=1)
    a, b = TopicPartition("raw", 0), TopicPartition("raw", 1)
    batch = {
        a: [record(0, 5, b"x"), record(0, 6, b"store down"), record(0, 7, b"y")],
        b: [record(1, 9, b"z")],
    }
    decided, waiting = await decider.decide(batch)
    assert [(item.record.partition, item.record.offset) for item in decided] == [(0, 5), (1, 9)]
    assert all(item.output.outcome is Outcome.REJECTED for item in decided)
    assert list(waiting) == [a] and waiting[a].offset == 6
    assert isinstance(waiting[a], Waiting) and "not cached" in str(waiting[a].error)
