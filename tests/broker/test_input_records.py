"""Records as producers nobody on the project wrote really send them (issue 11 items 1-3, K9, K11).

kcat (librdkafka) produces with every codec Kafka defines and with header names of any
bytes; the real runtime reads them in-process from the real broker. Each input gets exactly
one output, in order, and the stream goes on.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import pytest

from tests.support.worker import (
    Outputs,
    in_process_worker,
    kcat_produce,
    new_topics,
    signed_events,
)

pytestmark = pytest.mark.integration

BAD_HEADER = b"x-\xff\xfe=v"  # a header name that is not UTF-8 (librdkafka and Go allow any bytes)


def _by_partition(outputs: Outputs) -> dict[int, list[tuple[str, dict[str, object]]]]:
    found: dict[int, list[tuple[str, dict[str, object]]]] = {}
    for _, _, data in sorted(
        outputs.records, key=lambda r: (r[2]["source"]["partition"], r[2]["source"]["offset"])
    ):
        found.setdefault(data["source"]["partition"], []).append((str(data["event_id"]), data))
    return found


@pytest.mark.parametrize("topic_codec", [None, "zstd"])
async def test_every_codec_kafka_defines_is_read(
    kafka_bootstrap: str, unique_topic: Callable[[str], str], topic_codec: str | None
) -> None:
    """Item 1: kcat -z gzip|snappy|lz4|zstd, and a topic with compression.type=zstd (K9)."""
    raw_config = {"compression.type": topic_codec} if topic_codec else None
    topics = await new_topics(kafka_bootstrap, unique_topic("i11-codec"), 1, raw=raw_config)
    expected: list[str] = []
    for codec in ("gzip", "snappy", "lz4", "zstd", "none"):
        values = signed_events(codec, 5)
        kcat_produce(kafka_bootstrap, topics.raw, values, codec=codec)
        expected += [f"{codec}-{i}" for i in range(5)]
    async with (
        in_process_worker(kafka_bootstrap, topics),
        Outputs(kafka_bootstrap, topics) as outputs,
    ):
        await outputs.wait_for(len(expected), 30)
        await outputs.settle(0.5)
    assert outputs.check_exactly_once([(0, offset) for offset in range(len(expected))]) == (0, 0)
    assert [name for name, _ in _by_partition(outputs)[0]] == expected
    assert {data["outcome"] for _, _, data in outputs.records} == {"enriched"}


async def test_a_header_name_that_is_not_utf8_gets_one_malformed_event_and_the_stream_goes_on(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    """Item 3: the record before is answered, each undecodable record gets one malformed_event
    echoing its value (also inside a zstd batch and beside a readable record of the same
    batch), the records after flow; the worker neither exits nor rewinds (K9)."""
    topics = await new_topics(kafka_bootstrap, unique_topic("i11-header"), 1)
    before, bad, bad_zstd, after = (
        signed_events("before", 1),
        signed_events("bad", 2),
        signed_events("badz", 1),
        signed_events("after", 3),
    )
    kcat_produce(kafka_bootstrap, topics.raw, before, headers=(b"trace=1",))
    kcat_produce(kafka_bootstrap, topics.raw, bad, headers=(b"trace=2", BAD_HEADER))
    kcat_produce(kafka_bootstrap, topics.raw, bad_zstd, codec="zstd", headers=(BAD_HEADER,))
    kcat_produce(kafka_bootstrap, topics.raw, after)
    async with (
        in_process_worker(kafka_bootstrap, topics) as member,
        Outputs(kafka_bootstrap, topics) as outputs,
    ):
        await outputs.wait_for(7, 30)
        await outputs.settle(0.5)
        rewinds = member.metrics.rewinds._value.get()
        unreadable = member.metrics.unreadable_records._value.get()
    assert outputs.check_exactly_once([(0, offset) for offset in range(7)]) == (0, 0)
    answered = _by_partition(outputs)[0]
    assert [name for name, _ in answered] == [
        "before-0",
        "bad-0",
        "bad-1",
        "badz-0",
        "after-0",
        "after-1",
        "after-2",
    ]
    for name, data in answered:
        if name.startswith("bad"):
            assert data["outcome"] == "rejected" and data["reason"] == "malformed_event", data
            assert "header name" in str(data["detail"]) and "not UTF-8" in str(data["detail"])
            assert data["event_id"] == name and data["community_id"] == "acme"
            assert json.loads(str(data["raw"]))["event_id"] == name, "the value is echoed"
        else:
            assert data["outcome"] == "enriched", data
    records = {data["event_id"]: record for _, record, data in outputs.records}
    assert list(records["bad-0"].headers) == [("trace", b"2"), ("x-\\xff\\xfe", b"v")]
    assert list(records["before-0"].headers) == [("trace", b"1")]
    assert records["bad-0"].key == b"k"
    assert (rewinds, unreadable) == (0, 3)


async def test_an_undecodable_record_on_one_partition_never_holds_up_another(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    """Item 2: partition 0 keeps receiving records the client cannot decode while partition 1
    streams; no collected batch is dropped and no partition is rewound (K9)."""
    topics = await new_topics(kafka_bootstrap, unique_topic("i11-isolation"), 2)
    async with (
        in_process_worker(kafka_bootstrap, topics) as member,
        Outputs(kafka_bootstrap, topics) as outputs,
    ):
        started = time.monotonic()
        for round_ in range(5):
            await asyncio.to_thread(
                kcat_produce,
                kafka_bootstrap,
                topics.raw,
                signed_events(f"p0-{round_}", 2),
                partition=0,
                headers=(BAD_HEADER,),
            )
            await asyncio.to_thread(
                kcat_produce, kafka_bootstrap, topics.raw, signed_events(f"p1-{round_}", 100), partition=1
            )
        await outputs.wait_for(510, 30)
        elapsed = time.monotonic() - started
        await outputs.settle(0.5)
        rewinds = member.metrics.rewinds._value.get()
    assert outputs.check_exactly_once([(0, o) for o in range(10)] + [(1, o) for o in range(500)]) == (0, 0)
    answered = _by_partition(outputs)
    assert [name for name, _ in answered[1]] == [f"p1-{r}-{i}" for r in range(5) for i in range(100)]
    assert {data["reason"] for _, data in answered[0]} == {"malformed_event"}
    assert rewinds == 0
    print(f"\n510 records, 10 undecodable on partition 0, answered in {elapsed:.1f} s")
