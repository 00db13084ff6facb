"""K2 under the broker's transaction verification (KIP-890): a transaction's outputs and its
offsets are never verified at the same time (worker.runtime.checkpoint).

A broker that verifies transactions (Kafka >= 3.6, `transaction.partition.verification.enable`,
on by default) checks with the coordinator the first produce of a transaction on each partition,
and the TxnOffsetCommit, through one queue holding a single pending verification per
transactional id: the second to arrive gets the first answered NETWORK_EXCEPTION, which an
older client's produce (aiokafka's) gets as NOT_ENOUGH_REPLICAS, retried 20 ms later. With the
offsets sent while the outputs flew, a few in every hundred light-load transactions paid that
retry: the delay tail of docs/performance.md. The worker sends the offsets once the outputs are
acknowledged; this test runs many small transactions through the real runtime and counts the
produce answers aiokafka logs as retried.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaProducer

from tests.support.worker import Outputs, in_process_worker, new_topics, stream_values
from worker.kafka.security import client_options

pytestmark = pytest.mark.integration

TRANSACTIONS = 300  # each a handful of events, to the enriched and the rejected topic


class Retried(logging.Handler):
    """aiokafka's sender warnings of a produce answered with an error it retries."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "Got error produce response" in text:
            self.errors.append(text.rsplit("Error: ", 1)[-1])


async def test_light_load_transactions_are_never_answered_not_enough_replicas(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    topics = await new_topics(kafka_bootstrap, unique_topic("k2-verify"), 2)
    values = stream_values("acme", TRANSACTIONS * 4, time.time(), unique_tokens=50)
    producer = AIOKafkaProducer(**client_options(kafka_bootstrap), linger_ms=0)
    retried = Retried()
    sender = logging.getLogger("aiokafka.producer.sender")
    sender.addHandler(retried)
    await producer.start()
    try:
        async with in_process_worker(kafka_bootstrap, topics), Outputs(kafka_bootstrap, topics) as outputs:
            for i in range(TRANSACTIONS):  # 4 events at a time, a few ms apart: small transactions
                lot = [
                    producer.send(topics.raw, value, key=b"%d" % j)
                    for j, value in enumerate(values[i * 4 : i * 4 + 4])
                ]
                await asyncio.gather(*await asyncio.gather(*lot))
                await asyncio.sleep(0.005)
            await outputs.wait_for(len(values), timeout=60)
    finally:
        sender.removeHandler(retried)
        await producer.stop()
    assert retried.errors == [], f"{len(retried.errors)} produce answers retried: {retried.errors[:5]}"
