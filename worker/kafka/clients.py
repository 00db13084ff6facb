"""Factories of the aiokafka clients the worker uses, configured for K2 from `Settings`.

- The consumer never auto-commits; it reads `read_committed` in every mode (K11), so records
  of an aborted upstream transaction are never answered; the member installs
  `worker.kafka.fetcher_fork` before making it (K9: a record the client cannot decode becomes
  an `UnreadableRecord`).
- exactly_once: a transactional producer (idempotent by construction), one unique
  `transactional_id` per member (K5), a short `transaction_timeout_ms`.
- at_least_once: an idempotent producer, acks=all.
- Every client gets the security options of `worker.kafka.security` (TLS, SASL: docs/security.md).
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient

from worker.kafka import offsets
from worker.kafka.security import security_options
from worker.settings import Guarantee, KafkaSettings, Settings


def make_consumer(settings: Settings, *, listener: ConsumerRebalanceListener | None = None) -> Any:
    """A group member subscribed to the input topic (K7); offsets are committed by the runtime."""
    offsets.install()  # K2, K8: committed offsets only from a clean, stable answer
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.client_id}-{settings.member_index}",
        group_id=settings.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",  # K11, whatever the guarantee
        max_poll_records=settings.batch_size,
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
        max_poll_interval_ms=settings.max_poll_interval_ms,
        request_timeout_ms=max(settings.request_timeout_ms, settings.session_timeout_ms + 5000),
        retry_backoff_ms=settings.kafka_retry_backoff_ms,
        # Enough bytes per partition that a batch of maximum-size events fits one fetch.
        max_partition_fetch_bytes=max(1 << 20, settings.max_event_bytes * 4),
        **security_options(settings),
    )
    consumer.subscribe([settings.input_topic], listener=listener)
    return consumer


def producer_max_request_size(settings: Settings) -> int:
    """The producer's `max_request_size` (bytes): no output may be larger (K9)."""
    return max(1 << 20, settings.max_event_bytes * 4)


def make_producer(settings: Settings, *, transactional_id: str | None) -> Any:
    """K2: transactional when `transactional_id` is given, else idempotent (at_least_once)."""
    common: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": f"{settings.client_id}-{settings.member_index}",
        "acks": "all",
        "enable_idempotence": True,
        "request_timeout_ms": settings.request_timeout_ms,
        "retry_backoff_ms": settings.kafka_retry_backoff_ms,
        # Every output goes in a record batch the checkpoint fills itself (`send_batch`), complete
        # when it is handed over: a linger would only hold each transaction's produce that long
        # (aiokafka lingers an unclosed builder too), the delay of every batch at light load (K4).
        "linger_ms": 0,
        "max_batch_size": settings.kafka_batch_bytes,
        "max_request_size": producer_max_request_size(settings),
        "compression_type": None,
        **security_options(settings),
    }
    if settings.guarantee is Guarantee.EXACTLY_ONCE:
        if transactional_id is None:
            raise ValueError("exactly_once needs a transactional_id")
        common["transactional_id"] = transactional_id
        common["transaction_timeout_ms"] = settings.transaction_timeout_ms
    return AIOKafkaProducer(**common)


def make_admin(settings: KafkaSettings) -> Any:
    return AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.client_id}-admin",
        request_timeout_ms=settings.request_timeout_ms,
        **security_options(settings),
    )
