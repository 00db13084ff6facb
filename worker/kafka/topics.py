"""Topic administration: create the four topics of DESIGN §2; what the worker must know of them.

`existing_topics` reads, per topic, what writing to it depends on (`TopicFacts`): its partition
count (K3 routing), its `max.message.bytes` (K9: every output must fit) and whether it is
compacted (K9: every output then needs a key). The runtime reads them at start and again when
an output topic changes under it (worker.runtime.routing). Every admin client is closed, a
failed or cancelled start included.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Final

from aiokafka import errors
from aiokafka.admin import NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError, for_code

from worker.kafka.acls import AccessDenied
from worker.kafka.clients import make_admin
from worker.kafka.security import check_bootstrap
from worker.settings import KafkaSettings

# The broker's defaults, used when a topic's description leaves a setting out.
DEFAULT_MAX_MESSAGE_BYTES: Final = 1_048_588
_MAX_MESSAGE_BYTES = "max.message.bytes"
_CLEANUP_POLICY = "cleanup.policy"


@dataclass(frozen=True, slots=True)
class TopicFacts:
    """What writing to a topic depends on, as the broker describes it."""

    partitions: int
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES  # a record batch's limit, bytes
    compacted: bool = False  # cleanup.policy includes compact: keyless records are refused


@dataclass
class TopicReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)


class TopicError(RuntimeError):
    """The broker refused to create a topic, or could not be reached: one line."""


class OutputTopicMissing(KafkaError):  # type: ignore[misc]
    """An output topic does not exist (deleted while running): retried until it exists (K8).

    The worker never creates it (nor lets a broker auto-create it through its own checks):
    its partitions and limits are the operator's choice, as at start.
    """

    retriable = True


class OutputTopicUnusable(KafkaError):  # type: ignore[misc]
    """An output topic's settings leave no room for an output (K10: fatal misconfiguration)."""

    retriable = False


class OutputTopicChanged(KafkaError):  # type: ignore[misc]
    """An output topic no longer takes what it took (partitions, record size, compaction): the
    topics are read again and the batch redone (K8, K9). Retriable by its type (K10)."""

    retriable = True


# Refusals of the records themselves (broker or client): the topic changed under the worker,
# which fits every output to what the topic took. UnknownError is what aiokafka makes of codes it
# does not know, e.g. INVALID_RECORD (87), a compacted topic's answer to a keyless record.
TOPIC_REFUSALS: Final = (
    errors.CorruptRecordException,
    errors.MessageSizeTooLargeError,
    errors.RecordListTooLargeError,
    errors.RecordTooLargeError,
    errors.TopicAuthorizationFailedError,
    errors.UnknownError,
    errors.UnknownTopicOrPartitionError,
)


@contextlib.asynccontextmanager
async def admin_client(settings: KafkaSettings, *, timeout: float | None = None) -> AsyncIterator[Any]:
    """A started admin client, closed on the way out whatever happened (start failing included).

    `timeout` bounds the start (seconds; None: the client's own request timeout).
    """
    admin = make_admin(settings)
    try:
        await asyncio.wait_for(admin.start(), timeout)
        yield admin
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


async def existing_topics(settings: KafkaSettings, names: list[str]) -> dict[str, TopicFacts]:
    """Of `names`, the ones that exist, with what writing to them depends on. Raises
    KafkaMisconfiguration when the security settings cannot work (K10: fatal, not retried)."""
    await check_bootstrap(settings)
    async with admin_client(settings) as admin:
        # All topics (no names): a Metadata request naming a missing topic would make a broker
        # with auto.create.topics.enable create it, defeating the check.
        described = await admin.describe_topics()
        counts = {
            topic["topic"]: len(topic["partitions"])
            for topic in described
            if topic["error_code"] == 0 and topic["topic"] in names
        }
        if not counts:
            return {}
        # Kafka answers for each resource of DescribeConfigs; a refusal is not "missing" (K10).
        wanted = {_MAX_MESSAGE_BYTES: None, _CLEANUP_POLICY: None}
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name, dict(wanted)) for name in counts]
        )
    found: dict[str, TopicFacts] = {}
    resources = [resource for response in responses for resource in response.to_object()["resources"]]
    refused = [
        r["resource_name"] for r in resources if for_code(r["error_code"]) is TopicAuthorizationFailedError
    ]
    if refused:
        raise AccessDenied("DescribeConfigs", refused)
    for resource in resources:
        name = resource["resource_name"]
        if resource["error_code"] != 0 or name not in counts:
            continue  # deleted between the two requests: missing
        values = {entry["config_names"]: entry["config_value"] for entry in resource["config_entries"]}
        policy = values.get(_CLEANUP_POLICY) or "delete"
        found[name] = TopicFacts(
            partitions=counts[name],
            max_message_bytes=int(values.get(_MAX_MESSAGE_BYTES) or DEFAULT_MAX_MESSAGE_BYTES),
            compacted="compact" in (part.strip() for part in policy.split(",")),
        )
    return found


async def create_topics(
    settings: KafkaSettings, *, partitions: int, replication_factor: int, timeout: float
) -> TopicReport:
    """Create whichever of the four topics are missing; report the others as existing."""
    report = TopicReport()
    await check_bootstrap(settings, timeout)  # KafkaMisconfiguration: one line, not TopicError
    names = list(dict.fromkeys(settings.all()))
    started = False
    try:
        async with admin_client(settings, timeout=timeout) as admin:
            started = True
            present = {t["topic"] for t in await admin.describe_topics() if t["error_code"] == 0}
            missing = [name for name in names if name not in present]
            report.existing = [name for name in names if name in present]
            if missing:
                response = await admin.create_topics(
                    [NewTopic(name, partitions, replication_factor) for name in missing],
                    timeout_ms=int(timeout * 1000),
                )
                for result in response.topic_errors:
                    name, code = result[0], result[1]
                    message = result[2] if len(result) > 2 else None
                    if code == 0:
                        report.created.append(name)
                    elif for_code(code).__name__ == "TopicAlreadyExistsError":
                        report.existing.append(name)
                    else:
                        raise TopicError(
                            f"cannot create topic {name}: {for_code(code).__name__} {message or ''}"
                        )
    except Exception as exc:  # starting: aiokafka raises KafkaConnectionError, TimeoutError, OSError…
        if started:
            raise
        raise TopicError(
            f"cannot reach Kafka at {settings.bootstrap_servers}: {type(exc).__name__}"
        ) from None
    order = {name: i for i, name in enumerate(names)}
    report.created.sort(key=order.__getitem__)
    report.existing.sort(key=order.__getitem__)
    return report
