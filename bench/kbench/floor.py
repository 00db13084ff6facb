"""The floor reference of `make bench` (issue 24): a lean consumer → verify → producer on aiokafka.

It does the smallest job that still answers every event the way a verifier must, and nothing
the worker's contracts add on top:

- reads the input `read_committed`, one transaction per fetched batch (up to --batch-size
  records), the consumed offsets sent in the transaction (exactly-once, like the worker, K2);
- per record: `json.loads` of the envelope, the token's header (kid, alg) and, on a miss of its
  own token cache, the signature (HS256: HMAC-SHA256 with `hmac.compare_digest`; RS256:
  RSA-2048 PKCS#1 v1.5 verify with `cryptography`) and the payload (`exp`, `uuid`);
- its token cache is a plain dict (FIFO eviction at --cache-size): a repeated token costs a
  lookup and the `exp` check, so the 90 %-repeated workload has a floor of its own;
- writes a minimal output (`{"event_id","uuid"}` or `{"event_id","reason"}`, `json.dumps`) with
  the input's key (the bench's inputs have no headers) to `<out>.enriched` / `<out>.rejected`,
  output partition = input partition (as the worker's routing), through aiokafka record
  batches (`create_batch` / `send_batch`, as the worker).

What it does not do (and the worker must): the strict envelope reading (V1, J1–J4), mappings,
custom fields and the full output contract (schemas/), the time rules beyond `exp`, dead
letters, metrics, usage counting, configuration changes, rebalance bookkeeping, pipelining. So
the ratio worker ÷ floor is what the worker's contracts and runtime cost over the bare job;
it can never reach 1.

    python -m kbench.floor --bootstrap HOST:PORT --input T --output PREFIX --group G \
        --public-pem FILE [--batch-size 2000] [--partitions 4]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import sys
import time
from typing import Any

from aiokafka.errors import ProducerFenced
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from kbench.relay import after_fence, fetched, input_consumer, output_producer
from worker.devtools.examples import HMAC_SECRET, HS_KID, RS_KID


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--input", required=True, help="raw topic")
    p.add_argument(
        "--output", required=True, help="output topic prefix: <prefix>.enriched, <prefix>.rejected"
    )
    p.add_argument("--group", required=True)
    p.add_argument("--public-pem", required=True, help="file with the RS256 public key (PEM)")
    p.add_argument("--batch-size", type=int, default=2000)
    p.add_argument("--linger-ms", type=int, default=20)
    p.add_argument("--partitions", type=int, default=4, help="partitions of each output topic")
    p.add_argument("--cache-size", type=int, default=65536, help="verified tokens kept (FIFO)")
    p.add_argument("--retry-backoff-ms", type=int, default=10)
    return p.parse_args(argv)


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class Verifier:
    """Envelope bytes → (enriched?, minimal output bytes). Pure apart from its token cache."""

    def __init__(self, hs_keys: dict[str, bytes], rs_keys: dict[str, rsa.RSAPublicKey], cache_size: int):
        self.hs_keys = hs_keys
        self.rs_keys = rs_keys
        self.cache_size = cache_size
        self.cache: dict[str, tuple[float, str]] = {}  # token → (exp, uuid), verified

    def verify(self, token: str) -> tuple[float, str] | None:
        """(exp, uuid) of a token whose signature holds; None otherwise."""
        head, body, sig = token.split(".")
        header = json.loads(_b64(head))
        kid, alg = header["kid"], header["alg"]
        signed = f"{head}.{body}".encode()
        if alg == "HS256":
            secret = self.hs_keys.get(kid)
            if secret is None or not hmac.compare_digest(
                hmac.new(secret, signed, hashlib.sha256).digest(), _b64(sig)
            ):
                return None
        elif alg == "RS256":
            public = self.rs_keys.get(kid)
            if public is None:
                return None
            try:
                public.verify(_b64(sig), signed, padding.PKCS1v15(), hashes.SHA256())
            except InvalidSignature:
                return None
        else:
            return None
        claims = json.loads(_b64(body))
        return float(claims["exp"]), str(claims["uuid"])

    def __call__(self, value: bytes | None, now: float) -> tuple[bool, bytes]:
        event_id: Any = None
        try:
            envelope = json.loads(value)  # type: ignore[arg-type]
            event_id = envelope["event_id"]
            token = envelope["signed_identity"]
            known = self.cache.get(token)
            if known is None:
                known = self.verify(token)
                if known is None:
                    return False, json.dumps({"event_id": event_id, "reason": "invalid_signature"}).encode()
                if len(self.cache) >= self.cache_size:
                    del self.cache[next(iter(self.cache))]
                self.cache[token] = known
            if known[0] <= now:
                return False, json.dumps({"event_id": event_id, "reason": "expired"}).encode()
            return True, json.dumps({"event_id": event_id, "uuid": known[1]}).encode()
        except (ValueError, KeyError, TypeError, AttributeError):
            return False, json.dumps({"event_id": event_id, "reason": "malformed"}).encode()


async def run(args: argparse.Namespace, verifier: Verifier) -> None:
    consumer = input_consumer(args)  # the relay's: read_committed, --batch-size, --linger-ms
    topics = (f"{args.output}.rejected", f"{args.output}.enriched")
    parts = args.partitions
    producer = output_producer(args)  # transactional, the worker's record batch size
    await producer.start()
    await consumer.start()
    try:
        async for batches, offsets in fetched(args, consumer):
            now = time.time()
            try:
                async with producer.transaction():
                    builders: dict[tuple[str, int], Any] = {}
                    for tp, records in batches.items():
                        partition = tp.partition % parts
                        for record in records:
                            ok, value = verifier(record.value, now)
                            target = (topics[ok], partition)
                            builder = builders.get(target)
                            if builder is None:
                                builder = builders[target] = producer.create_batch()
                            if (
                                builder.append(timestamp=None, key=record.key, value=value, headers=[])
                                is None
                            ):
                                await producer.send_batch(builder, target[0], partition=partition)
                                builder = builders[target] = producer.create_batch()
                                builder.append(timestamp=None, key=record.key, value=value, headers=[])
                    for (topic, partition), builder in builders.items():
                        await producer.send_batch(builder, topic, partition=partition)
                    await producer.send_offsets_to_transaction(offsets, args.group)
            except ProducerFenced:
                print("floor: producer fenced; restarting it", file=sys.stderr, flush=True)
                producer = await after_fence(args, producer, consumer)
    finally:
        await consumer.stop()
        await producer.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with open(args.public_pem, "rb") as handle:
        public = serialization.load_pem_public_key(handle.read())
    if not isinstance(public, rsa.RSAPublicKey):
        print(f"floor: {args.public_pem} is not an RSA public key", file=sys.stderr)
        return 2
    verifier = Verifier({HS_KID: HMAC_SECRET.encode()}, {RS_KID: public}, args.cache_size)
    asyncio.run(run(args, verifier))
    return 0


if __name__ == "__main__":
    sys.exit(main())
