"""Benchmark: per-event CPU cost of the pipeline as the worker runs it, against a bare `jwt.decode`.

The pipeline is the worker's own processor (`worker.runtime.decide.pipeline_processor`: the
pure `process_event` with the settings' limits and ONE verified-token cache of the worker's
default size, C4), then `Output.to_json()` as the checkpoint writes it, with the worker
process's garbage-collector setting (`GC_GEN0_THRESHOLD`, start-up heap frozen) and the
collector on. Before timing, the cache is filled to capacity with other tokens, so every unique
token pays what it pays in a long-running worker: a miss, an insert and an eviction.

Cases (one run, one cache, the example community of worker/devtools/examples.py):
- HS256 unique: a fresh token per event (a new slice of tokens in every repeat);
- RS256 unique: the same with RS256 (fewer events: signing costs ~1 ms a token);
- HS256 90 % repeated: 90 % of events reuse a token seen before (cache hits, C4 memo), 10 % new;
- HS256 unique, no cache: the figure this script printed before issue 24 (no cache at all).

Reference: `jwt.decode(token, key, algorithms=[alg])` of the same unique tokens, exp verified.
Each figure is CPU time (`time.process_time`), the minimum over --repeats runs, interleaved.
Exits 1 when a unique case's pipeline ÷ jwt.decode exceeds --max-ratio.

    .venv/bin/python bench/pipeline.py [--events 2000] [--rs-events 400] [--repeats 7] [--max-ratio 1.25]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import jwt

from worker.core.community import prepare
from worker.core.contracts import Source
from worker.core.pipeline import process_event
from worker.core.tokencache import DEFAULT_MAX_ENTRIES, TokenCache
from worker.devtools import examples
from worker.runtime.decide import pipeline_processor
from worker.runtime.processes import GC_GEN0_THRESHOLD
from worker.settings import Settings
from worker.store.yaml_io import parse_yaml

# The real clock: the reference jwt.decode checks exp against it, so the pipeline uses it too.
NOW = float(int(time.time()))
RECEIVED_AT = datetime.fromtimestamp(NOW, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
REPEAT_SHARE = 0.9


def _claims(i: int) -> dict[str, object]:
    now = int(NOW)
    return {
        "uuid": f"8f14e45f-ceea-467f-a0e6-{i:012d}",
        "screenname": f"visitor{i}",
        "firstname": "Ada",
        "lastname": "Lovelace",
        "company": "Analytical Engines Ltd",
        "email": f"ada{i}@example.org",
        "avatar_url": f"https://cdn.example.org/avatars/{i}.png",
        "iat": now - 5,
        "exp": now + 7200,
        "extra_values": {"customer_id": f"C{i % 1_000_000:06d}", "mobile": "+33612345678", "vip": True},
    }


def _event(i: int, token: str) -> bytes:
    return json.dumps(
        {
            "event_id": f"e-{i}",
            "community_id": examples.COMMUNITY_ID,
            "received_at": RECEIVED_AT,
            "signed_identity": token,
            "gateway": {"name": "gw-eu-1", "version": "3.2.1"},
        }
    ).encode()


class Tokens:
    """Fresh signed tokens, numbered so that no two are alike across the whole run."""

    def __init__(self) -> None:
        private = examples.rsa_key()
        secret = examples.HMAC_SECRET.encode("ascii")
        self.keys = {
            "HS256": (examples.HS_KID, secret, secret),
            "RS256": (examples.RS_KID, private, private.public_key()),
        }
        self.serial = 0

    def verify_key(self, alg: str) -> object:
        return self.keys[alg][2]

    def take(self, alg: str, n: int) -> list[str]:
        kid, signing_key, _ = self.keys[alg]
        first, self.serial = self.serial, self.serial + n
        with warnings.catch_warnings():  # signing setup only: 24-byte secrets are the product's format
            warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
            return [
                jwt.encode(_claims(i), signing_key, algorithm=alg, headers={"kid": kid, "typ": "JWT"})
                for i in range(first, first + n)
            ]


def _cpu_per_item(fn: Callable[[], None], n: int) -> float:
    """CPU seconds per item of one run of `fn` (which handles `n` items); collector on."""
    started = time.process_time()
    fn()
    return (time.process_time() - started) / n


def _repeated_stream(tokens: Tokens, pool: list[str], n: int, rng: random.Random) -> list[str]:
    """`n` tokens: REPEAT_SHARE of them drawn from `pool` (tokens already seen), the rest new
    (which join the pool, as a visitor's next page view would reuse them)."""
    fresh = iter(tokens.take("HS256", n))
    out = []
    for _ in range(n):
        if rng.random() < REPEAT_SHARE:
            out.append(pool[rng.randrange(len(pool))])
        else:
            token = next(fresh)
            pool.append(token)
            out.append(token)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=2000, help="HS256 events per timed run")
    parser.add_argument("--rs-events", type=int, default=400, help="RS256 events per timed run")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--max-ratio", type=float, default=1.25)
    parser.add_argument(
        "--cache-fill", type=int, default=DEFAULT_MAX_ENTRIES, help="tokens put in the cache before timing"
    )
    args = parser.parse_args(argv)
    for name in ("events", "rs_events", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")

    # The worker process's collector setting (worker.runtime.processes.run_one): start-up frozen.
    gc.set_threshold(GC_GEN0_THRESHOLD, 10, 10)
    communities = prepare(parse_yaml(examples.config_yaml(examples.community())))
    cache = TokenCache(DEFAULT_MAX_ENTRIES)
    process = pipeline_processor(communities, Settings().limits, cache)
    tokens = Tokens()
    counter = iter(range(1 << 62))
    gc.collect()
    gc.freeze()

    def run_pipeline(values: list[bytes]) -> Callable[[], None]:
        def run() -> None:
            for value in values:
                process(value, Source("bench", 0, next(counter)), NOW).to_json()

        return run

    def run_bare(values: list[bytes]) -> Callable[[], None]:
        def run() -> None:
            for value in values:
                process_event(value, lookup=communities, now=NOW).to_json()

        return run

    def run_decode(batch: list[str], alg: str) -> Callable[[], None]:
        key = tokens.verify_key(alg)

        def run() -> None:
            with warnings.catch_warnings():  # PyJWT warns on 24-byte HMAC keys; the product mandates them
                warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
                for token in batch:
                    jwt.decode(token, key, algorithms=[alg])  # type: ignore[arg-type]

        return run

    def events(batch: list[str]) -> list[bytes]:
        return [_event(next(counter), token) for token in batch]

    # Fill the cache to capacity with other unique tokens (the long-running worker's state).
    started = time.time()
    filler = events(tokens.take("HS256", args.cache_fill))
    sample = [process(v, Source("bench", 0, 0), NOW) for v in filler[:10]]
    assert all(o.outcome.value == "enriched" for o in sample), sample[0].record
    run_pipeline(filler[10:])()
    del filler
    print(f"cache filled with {len(cache)} tokens in {time.time() - started:.0f} s", file=sys.stderr)

    rng = random.Random(24)
    pool = tokens.take("HS256", 1000)
    run_pipeline(events(pool))()  # seen once: in the cache

    def unique(alg: str, n: int) -> Iterator[tuple[Callable[[], None], Callable[[], None]]]:
        while True:
            batch = tokens.take(alg, n)
            yield run_pipeline(events(batch)), run_decode(batch, alg)

    cases: dict[str, tuple[int, Iterator[tuple[Callable[[], None], Callable[[], None] | None]]]] = {
        "HS256 unique": (args.events, unique("HS256", args.events)),
        "RS256 unique": (args.rs_events, unique("RS256", args.rs_events)),
        "HS256 90 % repeated": (
            args.events,
            iter(
                lambda: (run_pipeline(events(_repeated_stream(tokens, pool, args.events, rng))), None), None
            ),
        ),
        "HS256 unique, no cache": (
            args.events,
            iter(lambda: (run_bare(events(tokens.take("HS256", args.events))), None), None),
        ),
    }
    best: dict[str, list[float]] = {name: [float("inf"), float("inf")] for name in cases}
    for _n, runs in cases.values():  # warm-up: first-call costs, C4 memo of the pool
        next(runs)[0]()
    for _ in range(args.repeats):  # interleaved, so drift hits every case alike
        for name, (n, runs) in cases.items():
            pipeline, reference = next(runs)
            best[name][0] = min(best[name][0], _cpu_per_item(pipeline, n))
            if reference is not None:
                best[name][1] = min(best[name][1], _cpu_per_item(reference, n))

    hits = cache.hits / max(cache.hits + cache.misses, 1)
    print(
        f"CPU time per event, min of {args.repeats} runs; Python {sys.version.split()[0]}; "
        f"token cache {len(cache)}/{DEFAULT_MAX_ENTRIES} entries ({hits:.0%} hits overall)"
    )
    print(f"{'case':<24} {'events':>6} {'pipeline µs/ev':>15} {'jwt.decode µs/ev':>17} {'ratio':>7}  "
          f"target ≤ {args.max_ratio} (unique cases)")  # fmt: skip
    failed = False
    for name, (n, _) in cases.items():
        pipe_s, ref_s = best[name]
        if ref_s == float("inf"):
            print(f"{name:<24} {n:>6} {pipe_s * 1e6:>15.1f} {'—':>17} {'—':>7}")
            continue
        ratio = pipe_s / ref_s
        failed |= ratio > args.max_ratio
        mark = "ok" if ratio <= args.max_ratio else "OVER"
        print(f"{name:<24} {n:>6} {pipe_s * 1e6:>15.1f} {ref_s * 1e6:>17.1f} {ratio:>7.3f}  {mark}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
