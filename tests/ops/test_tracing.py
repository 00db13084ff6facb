"""OpenTelemetry tracing through a real worker on the real broker (K1).

A gateway's W3C context on the input is continued: the worker's event span is its child, the
output carries the event span's context (the next hop continues it), a commit span links the
batch's events; spans reach a real OTLP/HTTP receiver. Off by default: without OTEL_* the
output keeps the input's traceparent untouched, as before.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import worker as support
from tests.support.otlp import Receiver, otlp_receiver
from tests.support.worker import Outputs, Store
from worker.ops.tracing import enabled, with_context

pytestmark = pytest.mark.integration

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
GATEWAY_SPAN = "00f067aa0ba902b7"
CONSUMER, PRODUCER = 5, 4  # opentelemetry-proto's Span.SpanKind values


@pytest.fixture(scope="module")
def store(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Store:
    return support.own_store(database_url, "i26t", tmp_path_factory.mktemp("i26t"))


def traceparent(headers: list[tuple[str, bytes]]) -> tuple[str, str, str]:
    (value,) = [v.decode() for k, v in headers if k == "traceparent"]
    version, trace, span, flags = value.split("-")
    assert version == "00" and int(flags, 16) & 1, value  # sampled (03: the SDK's random trace id flag too)
    return trace, span, value


async def run_worker(
    tmp_path: Path, store: Store, kafka_bootstrap: str, topics: object, env: dict[str, str], count: int
) -> Outputs:
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        worker = support.start_worker(tmp_path, "traced", kafka_bootstrap, store.url, topics)  # type: ignore[arg-type]
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    try:
        async with Outputs(kafka_bootstrap, topics) as outputs:  # type: ignore[arg-type]
            await support.wait_ready(worker)
            await outputs.wait_for(count, 60)
    finally:
        assert worker.stop() == 0, worker.tail()  # exit flushes the last spans
    return outputs


def inputs(store: Store) -> tuple[list[tuple[bytes, bytes, list[tuple[str, bytes]] | None]], str]:
    now = time.time()
    token = support.sign({"uuid": "traced", "exp": int(now) + 7200}, kid="hs_1")
    forged = token[:-4] + "AAAA"
    gateway = [
        ("x-before", b"1"),
        ("traceparent", f"00-{TRACE}-{GATEWAY_SPAN}-01".encode()),
        ("tracestate", b"gw=abc"),
        ("x-after", b"2"),
    ]
    items = [
        (b"traced", support.raw_event("e-traced", store.acme, now, signed_identity=token), gateway),
        (b"rejected", support.raw_event("e-bad", store.acme, now, signed_identity=forged), gateway),
        (b"plain", support.raw_event("e-plain", store.acme, now, signed_identity=token), None),
    ]
    return items, token


async def test_a_gateways_trace_is_continued_across_the_worker(
    kafka_bootstrap: str, store: Store, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    topics = await support.new_topics(kafka_bootstrap, unique_topic("i26-traced"), 1)
    items, token = inputs(store)
    await support.produce(kafka_bootstrap, topics.raw, items)
    with otlp_receiver() as receiver:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_SERVICE_NAME": "identity-worker-test",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        outputs = await run_worker(tmp_path, store, kafka_bootstrap, topics, env, len(items))
        spans = wait_for_spans(receiver, len(items) + 1)
    by_key = {record.key: (record, data) for _, record, data in outputs.records}
    events = {span.attributes["messaging.kafka.offset"]: span for span in spans if span.kind == CONSUMER}
    (commit,) = [span for span in spans if span.kind == PRODUCER]
    assert len(events) == len(items) and {span.service for span in spans} == {"identity-worker-test"}

    for key, outcome in ((b"traced", "enriched"), (b"rejected", "rejected")):
        record, data = by_key[key]
        event = events[data["source"]["offset"]]
        # The worker's span is the gateway span's child, in the gateway's trace.
        assert (event.trace_id, event.parent_span_id) == (TRACE, GATEWAY_SPAN)
        assert event.name == f"{topics.raw} process"
        # The output carries the worker's span: the next hop continues the same trace.
        trace, span, _ = traceparent(list(record.headers))
        assert (trace, span) == (TRACE, event.span_id)
        names = [name for name, _ in record.headers]
        assert names == ["x-before", "traceparent", "tracestate", "x-after"]  # K1: the rest in place
        assert dict(record.headers)["tracestate"] == b"gw=abc"
        assert event.attributes["identity_worker.outcome"] == outcome
        assert event.attributes["identity_worker.community_id"] == store.acme
        assert (event.trace_id, event.span_id) in commit.links
    assert events[by_key[b"rejected"][1]["source"]["offset"]].attributes["identity_worker.reason"] == (
        "invalid_signature"
    )
    # An input without context starts a trace at the worker, and the output carries it on.
    record, data = by_key[b"plain"]
    plain = events[data["source"]["offset"]]
    assert plain.parent_span_id == "" and plain.trace_id != TRACE
    assert traceparent(list(record.headers))[:2] == (plain.trace_id, plain.span_id)
    # Never a token or a secret in a span.
    text = json.dumps([span.attributes for span in spans])
    assert token not in text and token.split(".")[1] not in text and support.HMAC_SECRET not in text


def wait_for_spans(receiver: Receiver, count: int, timeout: float = 10) -> list[object]:
    deadline = time.monotonic() + timeout
    while len(receiver.spans) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    with receiver.lock:
        return list(receiver.spans)


async def test_off_by_default_the_input_context_passes_untouched(
    kafka_bootstrap: str, store: Store, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    assert not enabled({}) and not enabled({"OTEL_SERVICE_NAME": "x"})
    assert not enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"})
    topics = await support.new_topics(kafka_bootstrap, unique_topic("i26-untraced"), 1)
    items, _ = inputs(store)
    await support.produce(kafka_bootstrap, topics.raw, items[:1])
    outputs = await run_worker(tmp_path, store, kafka_bootstrap, topics, {}, 1)
    ((_, record, _),) = outputs.records
    assert list(record.headers) == items[0][2]


def test_the_trace_headers_are_replaced_in_place_and_others_kept() -> None:
    new = {"traceparent": "00-a-b-01"}
    old = [("a", b"1"), ("traceparent", b"old"), ("tracestate", b"s"), ("b", b"2")]
    assert with_context(old, new) == [("a", b"1"), ("traceparent", b"00-a-b-01"), ("b", b"2")]
    assert with_context(None, new) == [("traceparent", b"00-a-b-01")]
