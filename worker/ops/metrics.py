"""Prometheus metrics of one worker process (DESIGN §7, K8).

Each `Metrics` owns its registry, so several runtimes in one test process never clash and
`--processes N` children each expose their own (one port per child).
"""

from __future__ import annotations

import asyncio
import platform
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import accumulate
from typing import Any

import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import INF, floatToGoString

from worker.core.reasons import Outcome, Reason
from worker.core.tokencache import TokenCache
from worker.exitcodes import PROG
from worker.ops.memory import token_cache_bytes

# Every counter and histogram of prometheus_client adds a `<name>_created` series (the Unix time
# it was made): noise on every scrape that no alert or panel reads (docs/operations.md).
disable_created_metrics()  # type: ignore[no-untyped-call]

PREFIX = "identity_worker"
VERIFICATION_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0)
# Event delay: p99 at half of the bench's maximum throughput is 100-160 ms (docs/performance.md);
# the upper buckets tell a backlog (seconds to minutes) apart from a slow commit.
#: T1: how long the event loop was held beyond a timer's due time; 0.05 s is the rule's bound.
LOOP_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DELAY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)


class _Live:
    """Values read when scraped: token-cache counters, configuration age, health (C4, C3, K8)."""

    def __init__(self) -> None:
        # name -> (family: counter or gauge, documentation, read; a gauge read as None is left out)
        self.values: dict[str, tuple[type[Any], str, Callable[[], float | None]]] = {}

    def collect(self) -> Iterator[Any]:
        for name, (family, doc, read) in self.values.items():
            value = read()
            if value is not None:
                yield family(name, doc, value=value)

    def describe(self) -> Iterator[Any]:
        return iter(())


class LoopHistogram:
    """A histogram for once-per-event observations made on the event loop's one thread.

    prometheus_client's `Histogram.observe` takes a lock for its sum and again for its bucket:
    3.5 µs, 9 % of a cached token's whole cost in the worker (py-spy, docs/performance.md). Here an
    observation is a bisect and two additions; the exposition is a `Histogram`'s with the same
    buckets, less its `_created` timestamp series (tests/ops/test_metrics.py). Not for use from
    several threads: it is observed and scraped on the event loop's thread.
    """

    def __init__(self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry):
        bounds = sorted(float(b) for b in buckets)
        if not bounds or bounds[-1] != INF:
            bounds.append(INF)
        self.name, self.documentation = name, documentation
        self._bounds = bounds
        # Labels as prometheus_client writes them ("0.0005", "+Inf"); it ships no type hints here.
        self._labels: list[str] = [floatToGoString(b) for b in bounds]  # type: ignore[no-untyped-call]
        self._counts = [0] * len(bounds)
        self._sum = 0.0
        registry.register(self)

    def observe(self, amount: float) -> None:
        self._counts[bisect_left(self._bounds, amount)] += 1  # "le": a value on a bound is in it
        self._sum += amount

    def observe_all(self, amounts: Iterable[float]) -> None:
        """`observe` for each amount, with the lookups hoisted out of the loop (once per batch)."""
        bounds, counts, total = self._bounds, self._counts, 0.0
        for amount in amounts:
            counts[bisect_left(bounds, amount)] += 1
            total += amount
        self._sum += total

    def collect(self) -> Iterator[HistogramMetricFamily]:
        cumulative = accumulate(self._counts)
        buckets = [(label, float(n)) for label, n in zip(self._labels, cumulative, strict=True)]
        yield HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=self._sum)

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.name, self.documentation)


#: The metrics read from another component at each scrape, declared here like every other one;
#: the runtime binds each to its reader (`Metrics.read_live`).
LIVE: dict[str, tuple[type[CounterMetricFamily] | type[GaugeMetricFamily], str]] = {
    "token_cache_hits": (CounterMetricFamily, "Verified-token cache hits (C4)"),
    "token_cache_misses": (CounterMetricFamily, "Verified-token cache misses (C4)"),
    "config_age_seconds": (GaugeMetricFamily, "Age of the loaded configuration (C1, C3)"),
    "ready": (GaugeMetricFamily, "1 when /readyz answers 200"),
    "usage_dropped_events": (
        CounterMetricFamily,
        "Events whose usage counts were dropped: the buffer was full (L1)",
    ),
    "usage_flushes": (CounterMetricFamily, "Usage count flushes written to the store (L1)"),
    "usage_flush_failures": (CounterMetricFamily, "Usage count flushes the store did not take; retried (L1)"),
    "usage_rows_written": (CounterMetricFamily, "Usage count rows added to the store (L1)"),
    "usage_flush_statements": (CounterMetricFamily, "Statements usage count flushes ran (L1, T6: bounded)"),
    "usage_pending_buckets": (GaugeMetricFamily, "Usage count buckets waiting to be written (L1)"),
    "token_cache_entries": (GaugeMetricFamily, "Entries in the verified-token cache (C4)"),
    "token_cache_bytes": (
        GaugeMetricFamily,
        "Estimated memory of the verified-token cache's entries (C4; a sample's deep size x entries)",
    ),
    # The configuration cache's counters (worker.store.following.CacheStats), C1–C3, T1, V2:
    "config_communities": (GaugeMetricFamily, "Communities the worker holds from the store (C1)"),
    "config_full_reads": (CounterMetricFamily, "Reads of every community: at start, after a reconnect (C1)"),
    "config_changed_reads": (CounterMetricFamily, "Periodic reads of what changed in the store (C1, T1)"),
    "config_community_reads": (CounterMetricFamily, "Communities read again after a notification (C2)"),
    "config_notifications": (CounterMetricFamily, "Change notifications received from the store (C2)"),
    "config_store_failures": (
        CounterMetricFamily,
        "Failed store reads and connections (C3: last loaded kept)",
    ),
    "config_store_reconnects": (CounterMetricFamily, "Connections to the store made again after a loss (C1)"),
    "config_unknown_hits": (CounterMetricFamily, "Lookups answered by the cache of unknown communities (V2)"),
    "config_direct_reads": (CounterMetricFamily, "Reads of one community not in the cache (V2's recheck)"),
    "config_direct_reads_limited": (CounterMetricFamily, "V2 rechecks not made: over their rate limit"),
    "config_rows_read": (CounterMetricFamily, "Community rows read by full and periodic reads (T1)"),
    "config_last_read_rows": (
        GaugeMetricFamily,
        "Community rows read by the last full or periodic read (T1)",
    ),
    "event_loop_lag_max_seconds": (GaugeMetricFamily, "The longest pause of the event loop since start (T1)"),
    "event_loop_held_max_seconds": (
        GaugeMetricFamily,
        "The longest pause of the event loop since start, counting only its thread's CPU time (T1)",
    ),
}


class Metrics:
    """The worker's metrics, each named `identity_worker_<name>` (the names alerts and dashboards use)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        counter, gauge = self._counter, self._gauge
        self.events = counter(
            "events", "Output records committed, by outcome and rejection reason (K1)", "outcome", "reason"
        )
        self.verification_seconds = self._loop_histogram(
            "verification_seconds", "Time to decide one event (V1-V12, M1-M6)", VERIFICATION_BUCKETS
        )
        self.batch_size = Histogram(
            f"{PREFIX}_batch_size",
            "Records per committed batch (K4)",
            buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            f"{PREFIX}_batch_commit_seconds",
            "Time from the first decision of a batch to its commit (K2)",
            registry=self.registry,
        )
        self.transactions = counter("commits", "Batch commits by result (committed, aborted)", "result")
        self.event_loop_lag_seconds = self._loop_histogram(
            "event_loop_lag_seconds",
            "How late the event loop ran a timer: the pauses of event processing (T1)",
            LOOP_LAG_BUCKETS,
        )
        self.event_delay_seconds = self._loop_histogram(
            "event_delay_seconds",
            "Time from an input record's Kafka timestamp to the commit of its output (K2)",
            DELAY_BUCKETS,
        )
        self.infrastructure_retries = counter(
            "infrastructure_retries",
            "Retries after an infrastructure fault, by component and error type (K8)",
            "component",
            "error",
        )
        self.processing_errors = counter(
            "processing_errors",
            "Unexpected exceptions while deciding one event (each attempt), by type",
            "error",
        )
        self.unreadable_records = counter(
            "unreadable_records",
            "Input records the Kafka client could not decode, answered with malformed_event (K9)",
        )
        self.partitions_waiting = gauge(
            "partitions_waiting",
            "Input partitions held at a record whose configuration cannot be read now (K9)",
        )
        self.rewinds = counter("rewinds", "Seeks of every owned partition back to the committed offsets (K8)")
        self.fatal_errors = counter(
            "fatal_errors",
            "Fatal misconfigurations met at run time, by error type (K10): the worker exits 3",
            "error",
        )
        self.input_skipped = counter(
            "input_skipped_records",
            "Input records skipped because the broker no longer had them (offset reset, K8)",
            "topic",
            "partition",
        )
        self.dangling_transactions = counter(
            "dangling_transactions",
            "Open transactions of our producer id the broker left after a failed commit (K2, K8)",
            "topic",
            "partition",
        )
        self.rebalances = counter("rebalances", "Partition revocations (K5)")
        self.consumer_lag = gauge(
            "consumer_lag", "Records not yet committed per assigned input partition", "topic", "partition"
        )
        self.assigned_partitions = gauge("assigned_partitions", "Input partitions this member owns")
        self.kafka_up = gauge("kafka_up", "1 while Kafka answers (K8)")
        self.store_up = gauge("store_up", "1 while the configuration store is current (C3)")
        # Only for the communities the `metrics_communities` setting names (bounded cardinality, L5).
        self.community_events = counter(
            "community_events",
            "Output records committed for the allow-listed communities, by outcome and reason",
            "community",
            "outcome",
            "reason",
        )
        self._live = _Live()
        self.registry.register(self._live)
        # process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds, … (Linux's
        # /proc; each `--processes` child reports itself), and what runs where.
        ProcessCollector(registry=self.registry)
        self._gauge(
            "build_info", "Always 1: the version running and its runtime", "version", "python"
        ).labels(_version(), platform.python_version()).set(1)
        for result in ("committed", "aborted"):  # both exist from the start: alerts compare them
            self.transactions.labels(result)
        for outcome in Outcome:
            if outcome is not Outcome.REJECTED:
                self.events.labels(outcome.value, "")
        for reason in Reason:
            self.events.labels(Outcome.REJECTED.value, reason.value)

    def watch_token_cache(self, cache: TokenCache) -> None:
        """Scrape-time gauges of the verified-token cache (C4): its entries and estimated bytes."""
        self.read_live("token_cache_entries", lambda: len(cache))
        self.read_live("token_cache_bytes", lambda: token_cache_bytes(cache))

    def _counter(self, name: str, doc: str, *labels: str) -> Counter:
        return Counter(f"{PREFIX}_{name}", doc, labels, registry=self.registry)

    def _gauge(self, name: str, doc: str, *labels: str) -> Gauge:
        return Gauge(f"{PREFIX}_{name}", doc, labels, registry=self.registry)

    def _loop_histogram(self, name: str, doc: str, buckets: Sequence[float]) -> LoopHistogram:
        return LoopHistogram(f"{PREFIX}_{name}", doc, buckets, registry=self.registry)

    def read_live(self, name: str, read: Callable[[], float | None]) -> None:
        """Serve `LIVE[name]` (declared there, with its help) from `read()` at each scrape."""
        kind, doc = LIVE[name]
        self._live.values[f"{PREFIX}_{name}"] = (kind, doc, read)

    def count_events(self, counts: dict[tuple[str, str], int]) -> None:
        for (outcome, reason), n in counts.items():
            self.events.labels(outcome, reason).inc(n)

    def observe_delays(self, timestamps_ms: Iterable[int], now: float | None = None) -> None:
        """Each committed record's delay: `now` (epoch s, default the clock) − its timestamp (ms).

        The timestamp is the record's CreateTime (or LogAppendTime, per topic); -1 (none) is
        skipped, and a producer clock ahead of ours counts as 0 s, not a negative delay.
        """
        now_ms = (time.time() if now is None else now) * 1000.0
        self.event_delay_seconds.observe_all(
            max(0.0, now_ms - timestamp) / 1000.0 for timestamp in timestamps_ms if timestamp >= 0
        )


class LoopLag:
    """T1: the event loop's pauses, measured as a timer's lateness (nothing that grows with the
    number of communities may hold the loop longer than `bound` seconds).

    Every `interval` seconds a sleep ends; how late it ends is how long the loop was held by
    something else. Each lateness goes to the `event_loop_lag_seconds` histogram, the longest
    to the `event_loop_lag_max_seconds` gauge, and a pause over `bound` to a warning line (each
    one the loop spent computing; of the others at most one a second, counting those it did
    not print). On a machine short of cores a late
    timer may only mean the process was not scheduled: the part of a pause the loop's thread
    spent computing (its CPU time, at most the pause) is kept apart, `held` (the
    `event_loop_held_max_seconds` gauge): that part is the program's own doing.
    """

    def __init__(self, metrics: Metrics, *, interval: float = 0.01, bound: float = 0.05) -> None:
        self.interval, self.bound = interval, bound
        self.longest = 0.0
        self.longest_held = 0.0
        self._histogram = metrics.event_loop_lag_seconds
        self._log = structlog.get_logger(__name__)
        metrics.read_live("event_loop_lag_max_seconds", lambda: self.longest)
        metrics.read_live("event_loop_held_max_seconds", lambda: self.longest_held)

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        unreported, reported_at = 0, 0.0
        while not stop.is_set():
            due = loop.time() + self.interval
            cpu = time.thread_time()
            await asyncio.sleep(self.interval)
            now = loop.time()
            lag = max(0.0, now - due)
            held = min(lag, time.thread_time() - cpu)
            self._histogram.observe(lag)
            self.longest = max(self.longest, lag)
            self.longest_held = max(self.longest_held, held)
            if lag <= self.bound:
                continue
            unreported += 1
            if held > self.bound or now - reported_at >= 1.0:  # the program's own pauses, each
                self._log.warning(
                    "event loop paused longer than the bound (T1)",
                    seconds=round(lag, 3),
                    computing_seconds=round(held, 3),
                    bound=self.bound,
                    pauses=unreported,
                )
                unreported, reported_at = 0, now


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PROG)
    except PackageNotFoundError:  # run from a source tree that was not installed
        return "unknown"
