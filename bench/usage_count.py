"""Per-event cost of key-usage counting (issue 15, L1) against the pure pipeline's, no I/O.

    .venv/bin/python -W error bench/usage_count.py [--events 2000] [--repeats 15]

One batch of `--events` outputs as the worker commits them (90 % repeated tokens: C4 hits, the
cheapest events, where a fixed cost weighs most): `UsageRecorder.count` per event against
`process_event(...).to_json()` per event, each the minimum over `--repeats` runs. Exits 1
when counting costs more than `--max-share` (5 %) of the pipeline.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import jwt
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pipeline as bench

from worker.core.community import prepare
from worker.core.pipeline import process_event
from worker.core.tokencache import TokenCache
from worker.runtime.usage_recorder import UsageRecorder
from worker.store.yaml_io import parse_yaml


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--max-share", type=float, default=0.05)
    args = parser.parse_args()
    public = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    communities = prepare(parse_yaml(yaml.safe_dump(bench._community(pem.decode()))))
    unique = max(1, args.events // 10)
    with warnings.catch_warnings():  # signing setup only: 24-byte secrets are the product's format
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        tokens = [
            jwt.encode(
                bench._claims(i), bench.SECRET, algorithm="HS256", headers={"kid": "acme_2026", "typ": "JWT"}
            )
            for i in range(unique)
        ]
    events = bench._events([tokens[i % unique] for i in range(args.events)])
    cache = TokenCache()
    outputs = [process_event(v, lookup=communities, now=bench.NOW, token_cache=cache) for v in events]
    recorder = UsageRecorder(None, configured=lambda cid: cid in communities)
    pipe = count = float("inf")
    for _ in range(args.repeats):  # interleaved, so drift hits both sides alike
        started = time.perf_counter()
        for value in events:
            process_event(value, lookup=communities, now=bench.NOW, token_cache=cache).to_json()
        pipe = min(pipe, (time.perf_counter() - started) / args.events)
        started = time.perf_counter()
        recorder.count(outputs, bench.NOW)
        count = min(count, (time.perf_counter() - started) / args.events)
    share = count / pipe
    print(
        f"{args.events} events (90 % repeated tokens): pipeline {pipe * 1e6:.2f} µs/event, "
        f"usage counting {count * 1e6:.3f} µs/event = {share:.1%} of it (target ≤ {args.max_share:.0%})"
    )
    return 1 if share > args.max_share else 0


if __name__ == "__main__":
    sys.exit(main())
