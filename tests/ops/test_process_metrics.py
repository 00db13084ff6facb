"""`/metrics` shows the process, the build and the token cache's memory, without `_created`
series (DESIGN §7, C4)."""

from __future__ import annotations

import gc
import platform
import tracemalloc

from prometheus_client import generate_latest

from tests.support.core import NOW, acme_lookup, event, good_claims, make_token
from worker.core.pipeline import process_event
from worker.core.tokencache import TokenCache
from worker.ops.memory import token_cache_bytes
from worker.ops.metrics import Metrics


def test_process_and_build_metrics_are_exposed_and_no_created_series() -> None:
    metrics = Metrics()
    metrics.events.labels("enriched", "").inc()
    metrics.batch_seconds.observe(0.1)
    text = generate_latest(metrics.registry).decode()
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if not line.startswith("#")}
    for wanted in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"):
        assert wanted in names
    assert metrics.registry.get_sample_value("process_resident_memory_bytes") > 10 * 2**20
    build_info = metrics.registry.get_sample_value(
        "identity_worker_build_info", {"version": "0.1.0", "python": platform.python_version()}
    )
    assert build_info == 1.0
    assert not [name for name in names if name.endswith("_created")], "prometheus_client's _created noise"


def _filled(entries: int) -> TokenCache:
    lookup, cache = acme_lookup(), TokenCache()
    for n in range(entries):
        token = make_token(good_claims(uuid=f"visitor-{n}", email=f"visitor-{n}@example.org"))
        for _ in range(2):  # admitted on its second sighting (C4)
            process_event(event(token), lookup=lookup, now=NOW, token_cache=cache)
    return cache


def test_token_cache_bytes_estimate_is_within_a_third_of_what_the_entries_allocate() -> None:
    """The estimate against tracemalloc's count of what filling the cache allocated and kept."""
    lookup, cache = acme_lookup(), TokenCache()
    tokens = [
        make_token(good_claims(uuid=f"visitor-{n}", email=f"visitor-{n}@example.org")) for n in range(2000)
    ]
    events = [event(token) for token in tokens]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for value in events + events:  # admitted on the second sighting (C4)
            process_event(value, lookup=lookup, now=NOW, token_cache=cache)
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(cache) == 2000
    estimate = token_cache_bytes(cache)
    assert 0.67 * kept <= estimate <= 1.33 * kept, (estimate, kept)


def test_the_token_cache_gauges_follow_the_cache() -> None:
    metrics, cache = Metrics(), _filled(50)
    metrics.watch_token_cache(cache)
    sample = metrics.registry.get_sample_value
    assert sample("identity_worker_token_cache_entries") == 50
    fifty = sample("identity_worker_token_cache_bytes")
    assert fifty is not None and fifty > 50 * 500
    cache.invalidate("acme")
    assert sample("identity_worker_token_cache_entries") == 0
    # what stays is the table and the admission notes (50 digests: they hold no verdict, C4)
    assert sample("identity_worker_token_cache_bytes") < fifty / 5
