"""Topic administration: create the four topics of DESIGN §2, check they exist before `run`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiokafka.admin import NewTopic
from aiokafka.errors import for_code

from worker.kafka.clients import make_admin
from worker.kafka.security import check_bootstrap
from worker.settings import KafkaSettings


@dataclass
class TopicReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)


class TopicError(RuntimeError):
    """The broker refused to create a topic, or could not be reached: one line."""


async def existing_topics(settings: KafkaSettings, names: list[str]) -> dict[str, int]:
    """Of `names`, the ones that exist, with their partition counts. Raises KafkaMisconfiguration
    when the security settings cannot work (K10: fatal, not retried)."""
    await check_bootstrap(settings)
    admin = make_admin(settings)
    await admin.start()
    try:
        # All topics (no names): a Metadata request naming a missing topic would make a broker
        # with auto.create.topics.enable create it, defeating the check.
        described = await admin.describe_topics()
    finally:
        await admin.close()
    found: dict[str, int] = {}
    for topic in described:
        if topic["error_code"] == 0 and topic["topic"] in names:
            found[topic["topic"]] = len(topic["partitions"])
    return found


async def create_topics(
    settings: KafkaSettings, *, partitions: int, replication_factor: int, timeout: float
) -> TopicReport:
    """Create whichever of the four topics are missing; report the others as existing."""
    report = TopicReport()
    await check_bootstrap(settings, timeout)  # KafkaMisconfiguration: one line, not TopicError
    admin = make_admin(settings)
    try:
        await asyncio.wait_for(admin.start(), timeout)
    except (TimeoutError, OSError, Exception) as exc:  # aiokafka raises KafkaConnectionError et al.
        await admin.close()
        raise TopicError(
            f"cannot reach Kafka at {settings.bootstrap_servers}: {type(exc).__name__}"
        ) from None
    try:
        names = list(dict.fromkeys(settings.all()))
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
                    raise TopicError(f"cannot create topic {name}: {for_code(code).__name__} {message or ''}")
    finally:
        await admin.close()
    order = {name: i for i, name in enumerate(names)}
    report.created.sort(key=order.__getitem__)
    report.existing.sort(key=order.__getitem__)
    return report
