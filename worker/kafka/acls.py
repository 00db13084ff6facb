"""What an authorization failure was about: the operation and the resource (K10).

Kafka refuses a request the principal has no ACL for with an error per resource type; aiokafka
raises it with the resource's name(s) as its argument (a topic, a list of topics, the group, the
transactional id). `denied` turns that, and what the worker was doing, into one line naming the
ACL to grant: `not authorized to Write topic identity.enriched`. docs/security.md lists every
ACL the worker needs (tested with a deny-by-default authorizer).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)

ACLS_DOC: Final = "docs/security.md#acls"


class AccessDenied(TopicAuthorizationFailedError):  # type: ignore[misc]
    """A topic request refused for want of an ACL, met by the worker's own admin requests (its
    start-up check: Describe, DescribeConfigs). Fatal by type (a TopicAuthorizationFailedError)."""

    def __init__(self, operation: str, topics: Iterable[str]) -> None:
        self.operation = operation
        super().__init__(sorted(topics))


def _names(argument: object) -> str:
    if isinstance(argument, str):
        return argument
    if isinstance(argument, Iterable):
        return ", ".join(sorted(str(name) for name in argument))
    return "?"


def _operation(exc: BaseException, doing: str) -> tuple[str, str] | None:
    """(operation, resource type) of an authorization error, from its type and what was done."""
    if isinstance(exc, AccessDenied):
        return exc.operation, "topic"
    if isinstance(exc, TopicAuthorizationFailedError):
        # Fetching reads the input; a commit writes the outputs (the offsets are the group's).
        return (
            "Read" if "fetch" in doing else "Write" if "commit" in doing else "Describe/Read/Write"
        ), "topic"
    if isinstance(exc, GroupAuthorizationFailedError):
        return "Read", "group"
    if isinstance(exc, TransactionalIdAuthorizationFailed):
        return "Write", "transactional id"
    if isinstance(exc, ClusterAuthorizationFailedError):
        return "IdempotentWrite", "cluster"
    return None


def denied(exc: BaseException, doing: str = "") -> str | None:
    """One line naming the refused operation and resource, or None when `exc` is no refusal.

    Looks through the causes aiokafka chains. Never a secret: resource names only.
    """
    current: BaseException | None = exc
    for _ in range(5):
        if current is None:
            return None
        found = _operation(current, doing)
        if found is not None:
            operation, kind = found
            name = "" if kind == "cluster" else f" {_names(current.args[0] if current.args else None)}"
            return (
                f"not authorized to {operation} {kind}{name} ({type(current).__name__}): "
                f"grant the principal this ACL ({ACLS_DOC})"
            )
        current = current.__cause__ or current.__context__
    return None
