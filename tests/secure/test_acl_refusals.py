"""An authorization refusal is fatal and its one line names the operation and the resource to
grant (K10). The errors are aiokafka's own, with the arguments aiokafka gives
them (tests/secure/test_deny_by_default.py meets them on a deny-by-default broker)."""

from __future__ import annotations

import pytest
from aiokafka import errors

from worker.kafka.acls import AccessDenied, denied
from worker.runtime.faults import FatalFault, Fault, classify


@pytest.mark.parametrize(
    ("error", "doing", "line"),
    [
        (
            errors.TopicAuthorizationFailedError({"acme.enriched"}),
            "commit failed",
            "Write topic acme.enriched",
        ),
        (errors.TopicAuthorizationFailedError("acme.raw"), "fetch failed", "Read topic acme.raw"),
        (errors.GroupAuthorizationFailedError("acme-group"), "commit failed", "Read group acme-group"),
        (
            errors.TransactionalIdAuthorizationFailed("identity-worker.g.h.0.1.ab"),
            "commit failed",
            "Write transactional id identity-worker.g.h.0.1.ab",
        ),
        (errors.ClusterAuthorizationFailedError(), "commit failed", "IdempotentWrite cluster ("),
        (AccessDenied("DescribeConfigs", ["b", "a"]), "", "DescribeConfigs topic a, b"),
    ],
)
def test_the_line_names_the_operation_and_the_resource(error: BaseException, doing: str, line: str) -> None:
    said = denied(error, doing)
    assert said is not None and f"not authorized to {line}" in said and "docs/security.md#acls" in said
    fatal = FatalFault(doing or "checking the topics", error)
    assert classify(error) is Fault.FATAL and line in str(fatal)


def test_a_refusal_wrapped_by_the_client_is_found_and_others_are_not_refusals() -> None:
    try:
        try:
            raise errors.TopicAuthorizationFailedError(["acme.dlq"])
        except errors.KafkaError as inner:
            raise errors.KafkaError("produce failed") from inner
    except errors.KafkaError as outer:
        said = denied(outer, "commit failed")
    assert said is not None and "Write topic acme.dlq" in said
    assert denied(errors.KafkaConnectionError("down"), "fetch failed") is None
