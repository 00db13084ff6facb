"""A poison record (DESIGN §2.4) and a configuration outage (K8): the real runtime in-process
against the real broker, with a processor that raises for chosen events (no fault-injection
switch in production code).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.worker import (
    Outputs,
    community_yaml,
    in_process_worker,
    new_topics,
    produce,
    raw_event,
    sign,
)
from worker.core.config import ConfigUnavailable, load_config_file
from worker.core.contracts import Source
from worker.core.records import Output
from worker.runtime.decide import pipeline_processor
from worker.settings import load_settings

pytestmark = pytest.mark.integration


async def test_poison_record_goes_to_the_dlq_after_bounded_attempts_and_later_records_flow(
    kafka_bootstrap: str, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    config = tmp_path / "communities.yaml"
    config.write_text(community_yaml("acme", "shop"))
    topics = await new_topics(kafka_bootstrap, unique_topic("k5-poison"), 1)
    real = pipeline_processor(load_config_file(str(config)), load_settings().limits, None)
    attempts: dict[str, int] = {}

    def processor(value: bytes | None, source: Source, now: float) -> Output:
        for marker in ("poison", "flaky"):
            if value and f'"{marker}-'.encode() in value:
                attempts[marker] = attempts.get(marker, 0) + 1
                if marker == "poison" or attempts[marker] == 1:
                    raise RuntimeError(
                        f"bug while handling {marker}; token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcdefgh"
                    )
        return real(value, source, now)

    now = time.time()
    token = sign({"uuid": "v", "exp": int(now) + 7200}, kid="hs_1")
    values = [raw_event(f"before-{i}", "acme", now, signed_identity=token) for i in range(5)]
    values.append(raw_event("poison-1", "acme", now, signed_identity=token))
    values.append(raw_event("flaky-1", "acme", now, signed_identity=token))
    values += [raw_event(f"after-{i}", "acme", now, signed_identity=token) for i in range(50)]
    inputs = await produce(kafka_bootstrap, topics.raw, [(b"k", v, [("h", b"1")]) for v in values])

    settings = load_settings()
    async with (
        in_process_worker(kafka_bootstrap, topics, config, processor=processor),
        Outputs(kafka_bootstrap, topics) as outputs,
    ):
        await outputs.wait_for(len(values), 60)
        await outputs.settle(0.5)
    assert outputs.check_exactly_once(inputs) == (0, 0)
    dead = [(topic, record, data) for topic, record, data in outputs.records if topic == topics.dlq]
    assert len(dead) == 1
    _, record, data = dead[0]
    assert data["outcome"] == "dead_letter" and data["event_id"] == "poison-1"
    assert data["error_type"] == "RuntimeError" and data["attempts"] == settings.max_processing_attempts
    assert "eyJ" not in data["error_message"], "the error message never carries a token"
    assert data["raw"] == values[5].decode() and data["source"]["offset"] == inputs[5][1]
    assert record.key == b"k" and list(record.headers) == [("h", b"1")]
    assert attempts == {"poison": settings.max_processing_attempts, "flaky": 2}
    enriched = [data["event_id"] for topic, _, data in outputs.records if topic == topics.enriched]
    assert enriched == [f"before-{i}" for i in range(5)] + ["flaky-1"] + [f"after-{i}" for i in range(50)]


async def test_configuration_unavailable_makes_records_wait_never_a_verdict(
    kafka_bootstrap: str, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    """V2/C3/K8: while the store cannot answer for a community, its records wait (no output),
    the retries show in the metrics; once it answers they all come out, in order, once."""
    config = tmp_path / "communities.yaml"
    config.write_text(community_yaml("acme", "shop"))
    topics = await new_topics(kafka_bootstrap, unique_topic("k5-outage"), 1)
    real = pipeline_processor(load_config_file(str(config)), load_settings().limits, None)
    outage = True

    def processor(value: bytes | None, source: Source, now: float) -> Output:
        if outage and value and b'"during-' in value:
            raise ConfigUnavailable("community acme is not cached and the store cannot be read now")
        return real(value, source, now)

    now = time.time()
    token = sign({"uuid": "v", "exp": int(now) + 7200}, kid="hs_1")
    names = ["before-0", "before-1"] + [f"during-{i}" for i in range(20)]
    values = [raw_event(name, "acme", now, signed_identity=token) for name in names]
    inputs = await produce(kafka_bootstrap, topics.raw, [(b"k", v, None) for v in values])
    async with (
        in_process_worker(
            kafka_bootstrap, topics, config, processor=processor, retry_backoff_max_ms="500"
        ) as member,
        Outputs(kafka_bootstrap, topics) as outputs,
    ):
        await outputs.wait_for(2, 60)
        await outputs.settle(3.0)
        assert len(outputs.by_source) == 2, "nothing is published for records that wait"
        retries = member.metrics.infrastructure_retries.labels("store", "ConfigUnavailable")._value.get()
        assert retries >= 2
        outage = False
        await outputs.wait_for(len(values), 30)
        await outputs.settle(1.0)
    assert outputs.check_exactly_once(inputs) == (0, 0)
    assert [data["event_id"] for _, _, data in outputs.records] == names
    assert {data["outcome"] for _, _, data in outputs.records} == {"enriched"}
