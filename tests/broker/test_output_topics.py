"""K9 on the output side (issue 11 items 4, 7, 8): an output its topic would refuse is shaped to
fit — shortened, keyed, headers dropped — and says so; an output topic that changes under the
running worker is read again. Records come from kcat (librdkafka), a producer nobody on the
project wrote; the broker is the real one and the topics carry the settings being tested.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.support.worker import (
    Outputs,
    Topics,
    communities_file,
    in_process_worker,
    new_topics,
    raw_event,
    sign,
)
from worker.kafka.topics import existing_topics
from worker.runtime import routing
from worker.runtime.member import Member
from worker.runtime.service import serve
from worker.runtime.startup import StartupError
from worker.settings import load_settings

pytestmark = pytest.mark.integration

KCAT = shutil.which("kcat") or "kcat"  # deploy/local/debian-packages.txt installs it


def kcat(
    bootstrap: str,
    topic: str,
    value: bytes,
    tmp: Path,
    *,
    key: bytes | None = None,
    partition: int = 0,
    headers: tuple[str, ...] = (),
) -> None:
    """One record from librdkafka: the value from a file (any bytes), a null key unless given."""
    path = tmp / f"value-{time.monotonic_ns()}"
    path.write_bytes(value)
    args = [KCAT, "-P", "-b", bootstrap, "-t", topic, "-p", str(partition), "-X", "message.max.bytes=1000000"]
    if key is not None:
        args += ["-k", key.decode()]
    for header in headers:
        args += ["-H", header]
    subprocess.run([*args, str(path)], check=True, timeout=30, capture_output=True)


def kcat_lines(bootstrap: str, topic: str, lines: list[bytes], *, partition: int = 0) -> None:
    """One record per line from librdkafka (null keys), in order."""
    args = [KCAT, "-P", "-b", bootstrap, "-t", topic, "-p", str(partition)]
    subprocess.run(args, input=b"\n".join(lines) + b"\n", check=True, timeout=30, capture_output=True)


def running(
    bootstrap: str, topics: Topics, folder: Path, **overrides: Any
) -> AbstractAsyncContextManager[Member]:
    """The real service in-process (file configuration), retries backed off 1 s at most."""
    return in_process_worker(
        bootstrap, topics, communities_file(folder), retry_backoff_max_ms=1000, **overrides
    )


def by_offset(outputs: Outputs, topic: str) -> dict[int, tuple[Any, dict[str, Any]]]:
    return {
        data["source"]["offset"]: (record, data) for name, record, data in outputs.records if name == topic
    }


async def test_outputs_larger_than_their_topic_takes_are_shortened_and_say_so(
    kafka_bootstrap: str, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    """Item 4: 200 KB of NUL bytes (its echo is 1.2 MB), a record whose 100 KB header leaves no
    room, a key longer than the topic takes, an enriched identity over its topic's limit: each
    gets its one output within the topic's max.message.bytes as read from the broker, and the
    records after them flow — 400 small rejections too, whose record batch would be 4 times
    what the topic takes."""
    topics = await new_topics(
        kafka_bootstrap,
        unique_topic("k9-size"),
        1,
        rejected={"max.message.bytes": "65536"},
        enriched={"max.message.bytes": "20000"},
    )
    now = time.time()
    nul = b"\x00" * 200_000
    wide = {name: "\x01" * 1000 for name in ("uuid", "firstname", "lastname", "company", "email")}
    token = sign({"uuid": "v-1", "exp": int(now) + 7200}, kid="hs_1")
    kcat(kafka_bootstrap, topics.raw, nul, tmp_path, key=b"visitor-1")  # offset 0
    kcat(kafka_bootstrap, topics.raw, b"not json", tmp_path, headers=(f"trace={'t' * 100_000}", "h=1"))
    kcat(kafka_bootstrap, topics.raw, raw_event("wide", "shop", now, identity=wide), tmp_path)  # 2
    kcat(kafka_bootstrap, topics.raw, raw_event("after", "acme", now, signed_identity=token), tmp_path)
    kcat(kafka_bootstrap, topics.raw, b"long key", tmp_path, key=b"k" * 80_000)  # offset 4
    kcat_lines(kafka_bootstrap, topics.raw, [b"small %d " % i + b"x" * 500 for i in range(400)])
    async with running(kafka_bootstrap, topics, tmp_path), Outputs(kafka_bootstrap, topics) as out:
        await out.wait_for(405, 45)
        await out.settle(0.5)
    assert out.check_exactly_once([(0, offset) for offset in range(405)]) == (0, 0)
    rejected, dead = by_offset(out, topics.rejected), by_offset(out, topics.dlq)

    record, data = rejected[0]
    assert len(record.value) < 65536 and record.key == b"visitor-1"
    assert data["raw_truncated"] is True and data["raw_bytes"] == len(nul)
    assert data["raw_sha256"] == hashlib.sha256(nul).hexdigest() and nul.startswith(data["raw"].encode())

    record, data = rejected[1]
    assert data["raw"] == "not json" and "raw_truncated" not in data
    assert data["headers_dropped"] == 2 and list(record.headers) == []

    record, data = dead[2]
    assert data["error_type"] == "OutputTooLarge" and json.loads(data["raw"])["event_id"] == "wide"
    assert by_offset(out, topics.enriched)[3][1]["event_id"] == "after"
    record, data = rejected[4]
    assert record.key == f"{topics.raw}:0:4".encode() and data["key_derived"] is True
    assert data["raw"] == "long key" and list(record.headers) == []
    assert [rejected[offset][1]["raw"][:9] for offset in (5, 404)] == ["small 0 x", "small 399"]


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
async def test_keyless_records_get_a_derived_key_on_compacted_output_topics(
    kafka_bootstrap: str, unique_topic: Callable[[str], str], tmp_path: Path, guarantee: str
) -> None:
    """Item 8: a compacted topic refuses keyless records. The output of a keyless input is keyed
    topic:partition:offset (unique, the same on every redo) and says key_derived; a keyed input
    keeps its key; the stream never stalls."""
    compact = {"cleanup.policy": "compact"}
    topics = await new_topics(
        kafka_bootstrap, unique_topic("k9-compact"), 1, enriched=compact, rejected=compact
    )
    now = time.time()
    token = sign({"uuid": "v-1", "exp": int(now) + 7200}, kid="hs_1")
    kcat(kafka_bootstrap, topics.raw, b"not json", tmp_path)  # null key: kcat's default
    kcat(kafka_bootstrap, topics.raw, b"not json either", tmp_path, key=b"visitor-2")
    kcat(kafka_bootstrap, topics.raw, raw_event("signed", "acme", now, signed_identity=token), tmp_path)
    async with (
        running(kafka_bootstrap, topics, tmp_path, guarantee=guarantee),
        Outputs(kafka_bootstrap, topics) as out,
    ):
        await out.wait_for(3, 45)
        await out.settle(0.5)
    assert out.check_exactly_once([(0, 0), (0, 1), (0, 2)]) == (0, 0)
    rejected, enriched = by_offset(out, topics.rejected), by_offset(out, topics.enriched)
    assert rejected[0][0].key == f"{topics.raw}:0:0".encode() and rejected[0][1]["key_derived"] is True
    assert rejected[1][0].key == b"visitor-2" and "key_derived" not in rejected[1][1]
    assert enriched[2][0].key == f"{topics.raw}:0:2".encode() and enriched[2][1]["key_derived"] is True


async def delete_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    """Create `topic` again once its deletion is complete (or find it auto-created meanwhile)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            response = await admin.create_topics([NewTopic(topic, partitions, 1)])
            if response.topic_errors[0][1] in (0, 36):  # created, or it exists already
                return
            assert time.monotonic() < deadline, f"could not re-create {topic}"
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def test_an_output_topic_recreated_with_fewer_partitions_is_read_again(
    kafka_bootstrap: str, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    """Item 7: the rejected topic is deleted and re-created with 1 partition instead of 4 while
    the worker runs: it reads the topic again, routes to the partition that exists and goes
    on (no `Unrecognized partition`, no exit 2, no stall); every input gets one output."""
    topics = await new_topics(kafka_bootstrap, unique_topic("k9-shrink"), 4)
    async with running(kafka_bootstrap, topics, tmp_path) as member:
        async with Outputs(kafka_bootstrap, topics) as out:
            for partition in range(4):
                kcat(kafka_bootstrap, topics.raw, b"before", tmp_path, partition=partition)
            await out.wait_for(4, 45)
        await delete_topic(kafka_bootstrap, topics.rejected)
        await create_topic(kafka_bootstrap, topics.rejected, 1)  # its producer may auto-create it first
        for partition in range(4):
            kcat(kafka_bootstrap, topics.raw, b"after", tmp_path, partition=partition)
        async with Outputs(kafka_bootstrap, topics) as out:
            await out.wait_for(4, 60, what="outputs in the re-created topic")
            await out.settle(0.5)
        assert member.health.ready(), member.health.problems()
    assert {data["raw"] for _, _, data in out.records} == {"after"}
    assert {record.partition for _, record, _ in out.records} == {0}
    assert out.check_exactly_once([(partition, 1) for partition in range(4)]) == (0, 0)


async def test_a_missing_output_topic_makes_records_wait_and_the_worker_not_ready(
    kafka_bootstrap: str, unique_topic: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 7: an output topic deleted while the worker runs (here the DLQ, which its producer
    never wrote to, so the broker does not re-create it by itself): the next batch fails with
    OutputTopicMissing — retriable by type (K10) — its records wait, /readyz names the topic;
    once the topic exists again they are answered, once, and the worker is ready."""
    monkeypatch.setattr(routing, "REFRESH_SECONDS", 0.2)  # read the topics before every batch
    topics = await new_topics(kafka_bootstrap, unique_topic("k9-missing"), 1)
    settings = load_settings(bootstrap_servers=kafka_bootstrap, **topics.settings())
    async with running(kafka_bootstrap, topics, tmp_path) as member:
        async with Outputs(kafka_bootstrap, topics) as out:
            kcat(kafka_bootstrap, topics.raw, b"before", tmp_path)
            await out.wait_for(1, 45)
        await delete_topic(kafka_bootstrap, topics.dlq)
        while topics.dlq in await existing_topics(settings, settings.all()):
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)  # past the worker's next reading of the topics
        kcat(kafka_bootstrap, topics.raw, b"during", tmp_path)
        deadline = time.monotonic() + 30
        while not any(topics.dlq in problem for problem in member.health.problems()):
            assert time.monotonic() < deadline, f"never not ready: {member.health.problems()}"
            await asyncio.sleep(0.05)
        retries = member.metrics.infrastructure_retries.labels("kafka", "OutputTopicMissing")
        async with Outputs(kafka_bootstrap, topics) as out:
            await out.settle(2.0)
            assert len(out.by_source) == 1, "the record waits while an output topic is missing"
            assert retries._value.get() >= 1
            await create_topic(kafka_bootstrap, topics.dlq, 1)
            await out.wait_for(2, 45)
            await out.settle(0.5)
        assert member.health.ready(), member.health.problems()
    assert out.check_exactly_once([(0, 0), (0, 1)]) == (0, 0)
    assert topics.dlq in await existing_topics(settings, settings.all())


async def test_an_output_topic_with_no_room_for_an_output_is_refused_at_start(
    kafka_bootstrap: str, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    """K10: a topic whose max.message.bytes cannot hold a rejection without its echo is a
    misconfiguration: one line naming it, before joining the group, nothing committed."""
    topics = await new_topics(kafka_bootstrap, unique_topic("k9-tiny"), 1, dlq={"max.message.bytes": "4096"})
    config = communities_file(tmp_path)
    settings = load_settings(
        bootstrap_servers=kafka_bootstrap, config_file=config, metrics_port=0, **topics.settings()
    )
    with pytest.raises(
        StartupError, match=rf"^output topic {topics.dlq} takes records of at most 4096 bytes"
    ):
        await serve(settings, stop=asyncio.Event(), handle_signals=False)
