"""Settings of `run` (DESIGN §7): environment names, flag precedence, one-line errors. No service."""

from __future__ import annotations

import pytest

from worker.core.redaction import redact_dsn
from worker.settings import Guarantee, SettingsError, load_settings


def test_environment_names_operators_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker:9092")
    monkeypatch.setenv("DATABASE_URL", "postgresql://identity:s3cret@db/identity")
    monkeypatch.setenv("IDENTITY_WORKER_GUARANTEE", "at_least_once")
    monkeypatch.setenv("IDENTITY_WORKER_METRICS_PORT", "9200")
    monkeypatch.setenv("IDENTITY_WORKER_INPUT_TOPIC", "in")
    monkeypatch.setenv("IDENTITY_WORKER_BATCH_SIZE", "42")
    settings = load_settings()
    assert settings.bootstrap_servers == "broker:9092"
    assert settings.guarantee is Guarantee.AT_LEAST_ONCE
    assert (settings.metrics_port, settings.input_topic, settings.batch_size) == (9200, "in", 42)
    assert settings.redacted_dsn() == "postgresql://identity:***@db/identity"
    assert "s3cret" not in repr(settings)


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDENTITY_WORKER_BATCH_SIZE", "42")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker:9092")
    settings = load_settings(batch_size=7, bootstrap_servers="other:1", group_id=None)
    assert (settings.batch_size, settings.bootstrap_servers, settings.group_id) == (
        7,
        "other:1",
        "identity-worker",
    )
    assert settings.guarantee is Guarantee.EXACTLY_ONCE  # K2 default


def test_bad_values_make_one_line_naming_the_field() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(batch_size=0, guarantee="twice")
    message = str(caught.value)
    assert "\n" not in message and "batch_size" in message and "guarantee" in message
    with pytest.raises(SettingsError, match="input topic must differ"):
        load_settings(input_topic="x", enriched_topic="x")


def test_members_of_processes_get_their_own_port_and_transactional_id() -> None:
    """K7: child i listens on base + i; K5: transactional ids never collide."""
    settings = load_settings(metrics_port=9108, processes=3)
    children = [settings.for_member(i) for i in range(3)]
    assert [c.metrics_port for c in children] == [9108, 9109, 9110]
    assert all(c.processes == 1 for c in children)
    assert len({c.transactional_id() for c in children}) == 3
    assert redact_dsn("postgresql://u@h/db") == "postgresql://u@h/db"


async def test_producer_batch_bytes_reach_the_producer(monkeypatch: pytest.MonkeyPatch) -> None:
    """One record batch per output partition per transaction by default; operators may lower it
    to their topics' max.message.bytes (README). Building a producer opens no connection."""
    from worker.kafka.clients import make_producer

    monkeypatch.delenv("IDENTITY_WORKER_KAFKA_BATCH_BYTES", raising=False)
    assert load_settings().kafka_batch_bytes == 512 * 1024
    monkeypatch.setenv("IDENTITY_WORKER_KAFKA_BATCH_BYTES", "65536")
    settings = load_settings()
    producer = make_producer(settings, transactional_id="t-1")
    try:
        assert producer._message_accumulator._batch_size == 65536
    finally:
        await producer.stop()
    for too_small_or_too_big in (1000, 1_000_001):  # the broker refuses > 1 MB by default
        with pytest.raises(SettingsError, match="kafka_batch_bytes"):
            load_settings(kafka_batch_bytes=too_small_or_too_big)
    assert load_settings(kafka_batch_bytes=1_000_000).kafka_batch_bytes == 1_000_000
