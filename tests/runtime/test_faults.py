"""The fault model's one classifier (K10) and the per-partition waits (K9), without I/O."""

from __future__ import annotations

import pytest
from aiokafka import errors as kafka
from aiokafka.structs import TopicPartition

from worker.backoff import RetryPolicy
from worker.core.community import ConfigUnavailable
from worker.kafka.consumer import MemberExpelled
from worker.runtime.faults import FATAL_ERRORS, FatalFault, Fault, classify, hint
from worker.runtime.waits import Waits


@pytest.mark.parametrize("kind", sorted(FATAL_ERRORS, key=lambda k: k.__name__))
def test_misconfiguration_is_fatal_by_type_whatever_the_message(kind: type[BaseException]) -> None:
    for message in ("", "retry later", "connection reset"):
        assert classify(kind(message)) is Fault.FATAL
    assert hint(kind()) == FATAL_ERRORS[kind]


@pytest.mark.parametrize(
    "exc",
    [
        kafka.KafkaConnectionError(),
        kafka.NotLeaderForPartitionError(),
        kafka.RequestTimedOutError(),
        kafka.CoordinatorNotAvailableError(),
        kafka.NodeNotReadyError(),
        kafka.KafkaTimeoutError(),
        kafka.ProducerFenced(),  # our own producer, replaced by the recovery
        kafka.CommitFailedError(),  # a rebalance
        kafka.IllegalStateError(),
        kafka.UnknownMemberIdError(),
        kafka.InvalidProducerEpoch(),
        kafka.OutOfOrderSequenceNumber(),
        kafka.UnknownError(),
        TimeoutError(),
        ConnectionRefusedError(),
        ConfigUnavailable("store down"),
        MemberExpelled("expelled"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_transient_faults_and_our_own_session_states_are_infrastructure(exc: BaseException) -> None:
    assert classify(exc) is Fault.INFRASTRUCTURE


def test_a_fatal_cause_under_a_wrapping_error_is_fatal() -> None:
    wrapper = kafka.KafkaError("transaction failed")
    wrapper.__cause__ = kafka.TransactionalIdAuthorizationFailed()
    assert classify(wrapper) is Fault.FATAL
    assert "transactional id" in hint(wrapper)


def test_a_retriable_wrapper_is_retried_whatever_it_wraps() -> None:
    """OutputTopicChanged (retriable) over a size refusal: the topics are read again (K9)."""
    from worker.kafka.topics import OutputTopicChanged

    changed = OutputTopicChanged("the broker refused an output: MessageSizeTooLargeError")
    changed.__cause__ = kafka.MessageSizeTooLargeError()
    assert classify(changed) is Fault.INFRASTRUCTURE
    # An ACL refusal is fatal even when it comes wrapped as a changed topic (K10).
    denied = OutputTopicChanged("the broker refused an output: TopicAuthorizationFailedError")
    denied.__cause__ = kafka.TopicAuthorizationFailedError({"acme.enriched"})
    assert classify(denied) is Fault.FATAL
    assert "not authorized to Write topic acme.enriched" in str(FatalFault("commit failed", denied))


def test_a_bug_is_not_classified() -> None:
    for exc in (AssertionError(), KeyError("x"), RuntimeError("TopicAuthorizationFailed")):
        assert classify(exc) is None, "message text never decides"


def test_fatal_fault_is_one_line_naming_type_and_meaning() -> None:
    fatal = FatalFault("commit failed", kafka.TopicAuthorizationFailedError("secret-topic"))
    assert str(fatal) == (
        "commit failed: TopicAuthorizationFailedError: not authorized to Write topic secret-topic "
        "(TopicAuthorizationFailedError): grant the principal this ACL (docs/security.md#acls)"
    )
    assert classify(fatal) is Fault.FATAL and "\n" not in str(fatal)


def test_waits_back_off_per_partition_and_release_on_a_decision() -> None:
    waits = Waits(RetryPolicy(initial=1.0, maximum=4.0))
    a, b = TopicPartition("raw", 0), TopicPartition("raw", 1)
    first = waits.hold(a, 7, ConfigUnavailable("store down"), now=100.0)
    assert 100.8 <= first.resume_at <= 101.0 and first.attempts == 1
    assert waits.due(100.5) == [] and waits.due(101.0) == [a] and waits.due(101.0) == []  # once per try
    again = waits.hold(a, 7, ConfigUnavailable("store down"), now=101.0)
    assert again is first and again.attempts == 2 and 102.6 <= again.resume_at <= 103.0  # doubled
    waits.hold(b, 3, ConfigUnavailable("community x: its stored configuration is invalid"), now=101.0)
    assert a in waits and b in waits and len(waits) == 2
    lines = waits.describe(now=111.0)
    assert lines[0] == "raw[0] waits at offset 7 for 11 s: ConfigUnavailable (store down)"
    assert "raw[1] waits at offset 3" in lines[1] and "stored configuration is invalid" in lines[1]
    assert waits.release(a) is first and a not in waits
    waits.drop({b})
    assert len(waits) == 0 and waits.describe(now=120.0) == []


def test_the_fatal_line_of_an_output_topic_that_shrank_names_the_topic_and_the_sizes() -> None:
    """Max.message.bytes lowered while running — the exit-3 line says which
    topic and which sizes (as the start-up check does), not only the kind of fault."""
    from worker.kafka.topics import OutputTopicUnusable

    problem = (
        "output topic acme.dlq takes records of at most 900 bytes (max.message.bytes); "
        "outputs need at least 1100"
    )
    wrapper = kafka.KafkaError("commit failed")
    wrapper.__cause__ = OutputTopicUnusable(problem)
    line = str(FatalFault("commit failed", wrapper))
    assert classify(wrapper) is Fault.FATAL
    assert "acme.dlq" in line and "900 bytes" in line and "1100" in line, line
