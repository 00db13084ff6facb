"""Send the demo's example events to the worker's input topic (`make send-events`, printed by
`make admin`): valid HS256 tokens, an expired one, one that expires too soon, a tampered one,
an unknown kid, unsigned identities and a line that is not JSON, so the keys list shows usage
(L2) and Health fills (L5) once the running worker has processed them.

Expects KAFKA_BOOTSTRAP_SERVERS (and the topic settings of `run`, IDENTITY_WORKER_INPUT_TOPIC,
default identity.raw). The RS256 event is left out: the RSA key `make admin` stored is not
known to this process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

from aiokafka import AIOKafkaProducer

from worker.devtools.demo import example_events
from worker.kafka.security import client_options


async def send(bootstrap: str, topic: str, rounds: int) -> int:
    producer = AIOKafkaProducer(**client_options(bootstrap), enable_idempotence=True)
    await producer.start()
    sent = 0
    try:
        for round_ in range(rounds):
            for key, value in example_events(None, int(time.time())):
                await producer.send_and_wait(topic, value, key=f"{key}-{round_}".encode())
                sent += 1
    finally:
        await producer.stop()
    return sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.devtools.send_events", description=__doc__)
    parser.add_argument("--rounds", type=int, default=1, help="how many times to send the set (default 1)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        print("send_events: set KAFKA_BOOTSTRAP_SERVERS (`make send-events` does)", file=sys.stderr)
        return 2
    topic = os.environ.get("IDENTITY_WORKER_INPUT_TOPIC", "identity.raw")
    sent = asyncio.run(send(bootstrap, topic, args.rounds))
    print(f"sent {sent} example events to {topic}; the keys list and Health show them within seconds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
