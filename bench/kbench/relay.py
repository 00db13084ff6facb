"""Consume → (transform) → produce loops run as separate processes by the benchmark.

--mode passthrough   the reference of issue 6: copies each raw record to one output topic
                     without looking at it.
--mode standin       a minimal worker (the pure pipeline `process_event` inside the same loop),
                     used only while `identity-worker run` does not exist yet; the report says so.

Both use the worker's exactly-once settings (DESIGN K2): a transactional producer, outputs and
consumer offsets committed atomically per batch (batch = up to --batch-size records or
--linger-ms), read_committed input; or at-least-once: idempotent producer, offsets committed
after the outputs were acknowledged. `--processes N` starts N copies in one consumer group.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import ProducerFenced
from aiokafka.structs import OffsetAndMetadata

from worker.kafka.security import client_options  # the worker's security variables (issue 17)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["passthrough", "standin"], required=True)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--output", help="passthrough: the copy topic")
    p.add_argument("--enriched")
    p.add_argument("--rejected")
    p.add_argument("--dlq")
    p.add_argument("--config", help="standin: community YAML")
    p.add_argument("--group", required=True)
    p.add_argument("--guarantee", choices=["exactly_once", "at_least_once"], default="exactly_once")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--linger-ms", type=int, default=20)
    p.add_argument("--processes", type=int, default=1)
    p.add_argument(
        "--retry-backoff-ms",
        type=int,
        default=100,
        help="producer retry backoff; after a commit the next AddPartitionsToTxn may be retried "
        "(CONCURRENT_TRANSACTIONS) and waits this long",
    )
    return p.parse_args(argv)


def make_transform(args: argparse.Namespace) -> Any:
    if args.mode == "passthrough":
        out = args.output

        def copy(record: Any) -> tuple[str, bytes | None]:
            return out, record.value

        return copy
    from worker.core.contracts import Source
    from worker.core.pipeline import process_event
    from worker.core.tokencache import TokenCache
    from worker.store.yaml_io import load_config_file

    communities = load_config_file(args.config)
    cache = TokenCache()
    topic_of = {"enriched": args.enriched, "rejected": args.rejected, "dead_letter": args.dlq}

    def verify(record: Any) -> tuple[str, bytes | None]:
        output = process_event(
            record.value,
            lookup=communities,
            now=time.time(),
            source=Source(record.topic, record.partition, record.offset),
            token_cache=cache,
        )
        return topic_of.get(str(getattr(output.outcome, "value", output.outcome)), args.dlq), output.to_json()

    return verify


def input_consumer(args: argparse.Namespace) -> AIOKafkaConsumer:
    """The input consumer of the relay and of the floor (kbench.floor): read_committed, no
    auto-commit, batches of --batch-size records, --linger-ms fetch wait."""
    return AIOKafkaConsumer(
        args.input,
        **client_options(args.bootstrap),
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_poll_records=args.batch_size,
        fetch_max_wait_ms=args.linger_ms,
    )


def output_producer(args: argparse.Namespace, eos: bool = True) -> AIOKafkaProducer:
    """A producer with the worker's record batch size (for fairness); transactional when `eos`."""
    from worker.settings import DEFAULT_KAFKA_BATCH_BYTES

    return AIOKafkaProducer(
        **client_options(args.bootstrap),
        enable_idempotence=True,
        transactional_id=f"{args.group}-{uuid.uuid4().hex[:8]}" if eos else None,
        linger_ms=0,
        max_batch_size=DEFAULT_KAFKA_BATCH_BYTES,
        retry_backoff_ms=args.retry_backoff_ms,
    )


async def after_fence(
    args: argparse.Namespace, producer: AIOKafkaProducer, consumer: Any
) -> AIOKafkaProducer:
    """A fenced producer (seen with aiokafka 0.14 + Kafka 4.x after ~20 s of steady
    transactions): a new transactional producer, and the input re-read from the committed offsets."""
    await producer.stop()
    producer = output_producer(args)
    await producer.start()
    for tp in consumer.assignment():
        committed = await consumer.committed(tp)
        if committed is None:
            await consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, committed)
    return producer


async def fetched(
    args: argparse.Namespace, consumer: Any
) -> AsyncIterator[tuple[dict[Any, Any], dict[Any, Any]]]:
    """(records by partition, offsets to commit) per fetched batch, until SIGTERM/SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        batches = await consumer.getmany(timeout_ms=args.linger_ms, max_records=args.batch_size)
        if batches:
            yield (
                batches,
                {tp: OffsetAndMetadata(recs[-1].offset + 1, "") for tp, recs in batches.items() if recs},
            )


async def run(args: argparse.Namespace) -> None:
    transform = make_transform(args)
    eos = args.guarantee == "exactly_once"
    consumer = input_consumer(args)
    producer = output_producer(args, eos)
    fences = 0
    await producer.start()
    await consumer.start()
    try:
        async for batches, offsets in fetched(args, consumer):
            if eos:
                try:
                    async with producer.transaction():
                        for records in batches.values():
                            for record in records:
                                topic, value = transform(record)
                                await producer.send(topic, value, key=record.key, headers=record.headers)
                        await producer.send_offsets_to_transaction(offsets, args.group)
                except ProducerFenced:
                    fences += 1
                    print(f"relay: producer fenced ({fences}); restarting it", file=sys.stderr, flush=True)
                    producer = await after_fence(args, producer, consumer)
            else:
                futures = []
                for records in batches.values():
                    for record in records:
                        topic, value = transform(record)
                        futures.append(
                            await producer.send(topic, value, key=record.key, headers=record.headers)
                        )
                await asyncio.gather(*futures)
                await consumer.commit({tp: o.offset for tp, o in offsets.items()})
    finally:
        await consumer.stop()
        await producer.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.processes > 1:
        base = [a for a in (argv if argv is not None else sys.argv[1:])]
        i = base.index("--processes")
        child_args = base[:i] + base[i + 2 :]
        children = [
            subprocess.Popen([sys.executable, "-m", "kbench.relay", *child_args], env=os.environ)
            for _ in range(args.processes)
        ]

        def forward(signum: int, _frame: Any) -> None:
            for child in children:
                child.send_signal(signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        return max(child.wait() for child in children)
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
