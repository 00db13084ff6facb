"""End to end through Kafka with the production command (issue 5; K1–K4, DESIGN §2.2–2.3).

`identity-worker run` as a child process, configured by environment only, reading the
communities from PostgreSQL; readers are read_committed.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.worker import (
    HMAC_SECRET,
    Outputs,
    Store,
    every_reason,
    new_topics,
    produce,
    raw_event,
    sign,
    start_worker,
    stream_values,
    wait_ready,
)
from worker.core.reasons import Reason

pytestmark = pytest.mark.integration

KEYS = 20
PER_KEY = 150


async def test_every_outcome_and_reason_reaches_its_topic_with_key_headers_and_order(
    kafka_bootstrap: str, store: Store, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    """K1: one output per input, same key, headers carried; §2.2/§2.3 content; K3: per-key order;
    every reason of the closed set of §2.3 appears (V1–V12)."""
    topics = await new_topics(kafka_bootstrap, unique_topic("k5-e2e"), 3)
    now = time.time()
    cases = every_reason(store.acme, store.shop, now)
    assert {c.reason for c in cases if c.reason} == {r.value for r in Reason}
    token = sign({"uuid": "ordered", "exp": int(now) + 7200}, kid="hs_1")
    items: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]] | None]] = [
        (f"case-{c.name}".encode(), c.value, [("trace-id", f"t-{c.name}".encode()), ("x", b"")])
        for c in cases
    ]
    items.append((None, raw_event("null-key", store.acme, now, signed_identity=token), None))
    for seq in range(PER_KEY):  # interleaved keys: order must hold per key (K3)
        for k in range(KEYS):
            value = raw_event(f"o-{k}-{seq}", store.acme, now, signed_identity=token)
            items.append((f"visitor-{k}".encode(), value, None))
    inputs = await produce(kafka_bootstrap, topics.raw, items)
    worker = start_worker(tmp_path, "e2e", kafka_bootstrap, store.url, topics)
    try:
        async with Outputs(kafka_bootstrap, topics) as outputs:
            await wait_ready(worker)
            started = time.monotonic()
            done = await outputs.wait_for(len(items), 120)
            rate = len(items) / (done - started)
            print(
                f"\nend to end: {len(items)} events in {done - started:.2f} s = {rate:.0f} events/s (backlog)"
            )
            await outputs.settle(2.5)  # late duplicates; and one progress line (every 2 s)
            status, metrics = worker.http("/metrics")
            assert status == 200
    finally:
        code = worker.stop()
    assert code == 0, worker.tail()
    lost, duplicated = outputs.check_exactly_once(inputs)
    assert (lost, duplicated) == (0, 0)

    by_key = {record.key: (topic, record, data) for topic, record, data in outputs.records if record.key}
    topic_of = {"enriched": topics.enriched, "rejected": topics.rejected, "dead_letter": topics.dlq}
    for case in cases:
        topic, record, data = by_key[f"case-{case.name}".encode()]
        assert topic == topic_of[case.outcome], case.name
        assert data["outcome"] == case.outcome, (case.name, data)
        assert list(record.headers) == [("trace-id", f"t-{case.name}".encode()), ("x", b"")]
        assert data["source"]["topic"] == topics.raw
        if case.outcome == "rejected":
            assert (data["reason"], data["action"]) == (case.reason, case.action), (case.name, data)
            if data["raw_encoding"] == "utf-8":
                assert data["raw"] == case.value.decode()
            assert "eyJ" not in data["detail"], "a detail never holds a token"
        else:
            assert data["event_id"] == case.name
    hs = by_key[b"case-enriched-hs256"][2]
    assert hs["verification"]["alg"] == "HS256" and hs["verification"]["kid"] == "hs_1"
    assert hs["custom_fields"] == {"customer_id": "C123456"}
    assert hs["identity_group"]["emails"] == ["ada@example.com"]
    assert hs["identity_group"]["notes"] == "v-1"
    assert by_key[b"case-enriched-rs256"][2]["verification"]["alg"] == "RS256"
    assert by_key[b"case-enriched-unsigned"][2]["verification"] is None
    assert by_key[b"case-malformed_event"][2]["raw_encoding"] == "base64"

    sequences: dict[bytes, list[int]] = defaultdict(list)
    for _, record, data in outputs.records:
        if record.key and record.key.startswith(b"visitor-"):
            sequences[record.key].append(int(data["event_id"].rsplit("-", 1)[1]))
    assert len(sequences) == KEYS
    for key, seqs in sequences.items():
        assert seqs == list(range(PER_KEY)), f"{key!r} out of order"

    for reason in Reason:  # metrics by outcome and reason (DESIGN §7)
        assert f'identity_worker_events_total{{outcome="rejected",reason="{reason.value}"}}' in metrics
    assert "identity_worker_verification_seconds_bucket" in metrics
    assert "identity_worker_token_cache_hits_total" in metrics
    assert "identity_worker_config_age_seconds" in metrics
    logs = worker.log.read_text()
    assert token not in logs and HMAC_SECRET not in logs
    assert any(
        "progress:" in json.loads(line).get("event", "") for line in logs.splitlines() if line.startswith("{")
    )


async def test_backlog_throughput_of_one_member(
    kafka_bootstrap: str, store: Store, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    """The throughput one exactly-once member reaches on a backlog of 20 000 events (5 000
    distinct HS256 tokens, so most verifications are token-cache hits, C4), printed."""
    topics = await new_topics(kafka_bootstrap, unique_topic("k5-throughput"), 4)
    values = stream_values(store.acme, 20_000, time.time(), unique_tokens=5000)
    inputs = await produce(
        kafka_bootstrap, topics.raw, [(f"v-{i % 101}".encode(), v, None) for i, v in enumerate(values)]
    )
    async with Outputs(kafka_bootstrap, topics) as outputs:
        worker = start_worker(tmp_path, "throughput", kafka_bootstrap, store.url, topics)
        try:
            await outputs.wait_for(1, 60)
            first = time.monotonic()
            done = await outputs.wait_for(len(values), 120)
        finally:
            assert worker.stop() == 0, worker.tail()
    rate = (len(values) - 1) / (done - first)
    print(f"\nthroughput: one member, exactly_once, {len(values)} events: {rate:.0f} events/s")
    assert outputs.check_exactly_once(inputs) == (0, 0)
