"""`identity-worker run` for one process: wires configuration, member, metrics, health and signals.

`serve()` is the whole service as a coroutine, so tests run the real runtime in-process
against the real broker, with their own processor (a poison record) and their own stop event.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import structlog

from worker.backoff import RetryPolicy
from worker.core.community import CommunityLookup, ConfigUnavailable
from worker.core.tokencache import TokenCache
from worker.exitcodes import EXIT_BUG, EXIT_FATAL, EXIT_OK, EXIT_UNCLEAN
from worker.ops.http import OpsServer
from worker.ops.logging import ProgressGate, client_started
from worker.ops.metrics import LoopLag, Metrics
from worker.ops.probes import Health
from worker.runtime.decide import Decider, Processor, pipeline_processor
from worker.runtime.faults import FatalFault
from worker.runtime.member import Member
from worker.runtime.startup import StartupError
from worker.runtime.usage_recorder import UsageRecorder
from worker.settings import Settings
from worker.store.yaml_io import load_config_file

if TYPE_CHECKING:  # the store is optional at run time (--config FILE)
    from worker.store.cache import CacheStats, ConfigCache

log = structlog.get_logger(__name__)

#: Each `CacheStats` counter and the metric it is served as (declared in `worker.ops.metrics.LIVE`).
CACHE_METRICS: dict[str, Callable[[CacheStats], float]] = {
    "config_full_reads": lambda stats: stats.full_reloads,
    "config_changed_reads": lambda stats: stats.refreshes,
    "config_community_reads": lambda stats: stats.community_reloads,
    "config_notifications": lambda stats: stats.notifications,
    "config_store_failures": lambda stats: stats.failures,
    "config_store_reconnects": lambda stats: stats.reconnects,
    "config_unknown_hits": lambda stats: stats.negative_hits,
    "config_direct_reads": lambda stats: stats.direct_reads,
    "config_direct_reads_limited": lambda stats: stats.direct_reads_limited,
    "config_rows_read": lambda stats: stats.rows_read,
    "config_last_read_rows": lambda stats: stats.last_refresh_rows,
}

#: At exit, the last usage flush may take this long; what it could not write is logged as pending.
USAGE_SHUTDOWN_SECONDS = 5.0


class CommunitySource:
    """Where communities come from: the PostgreSQL cache (C1–C4) or a YAML file (no store)."""

    def __init__(self, lookup: CommunityLookup, cache: ConfigCache | None = None) -> None:
        self.lookup = lookup
        self.cache = cache

    @classmethod
    async def open(cls, settings: Settings, token_cache: TokenCache) -> CommunitySource:
        if settings.config_file is not None:
            try:
                return cls(load_config_file(str(settings.config_file)))
            except Exception as exc:
                raise StartupError(f"cannot load {settings.config_file}: {exc}") from None
        dsn = settings.dsn()
        if dsn is None:
            raise StartupError("set DATABASE_URL (or --database-url), or give --config FILE")
        from worker.store.cache import ConfigCache  # the store is optional with --config
        from worker.store.db import StoreError, check_url

        try:
            check_url(dsn)  # a typo is one line now, not retries until the start-up timeout
        except StoreError as exc:
            raise StartupError(f"configuration store at {settings.redacted_dsn()}: {exc.message}") from None

        cache = ConfigCache(
            dsn,
            refresh_interval=settings.config_refresh_seconds,
            retry=RetryPolicy.from_settings(settings),
            on_keys_changed=token_cache_invalidator(token_cache),
        )
        try:
            await cache.start(timeout=settings.startup_timeout_seconds)
        except Exception as exc:
            with contextlib.suppress(Exception):
                await cache.close()
            raise StartupError(
                f"configuration store at {settings.redacted_dsn()}: {_first_line(exc)}"
            ) from None
        return cls(cache, cache)

    def recheck(self) -> Callable[[str], Awaitable[bool]] | None:
        cache = self.cache
        if cache is None:
            return None

        async def recheck(community_id: str) -> bool:
            await cache.refresh_community(community_id)
            return cache.get(community_id) is not None

        return recheck

    def export_stats(self, metrics: Metrics) -> None:
        """The cache's counters as the `config_*` metrics, read at each scrape (none without a store)."""
        if self.cache is not None:
            cache, stats = self.cache, self.cache.stats
            metrics.read_live("config_communities", lambda: len(cache))
            for name, read in CACHE_METRICS.items():
                metrics.read_live(name, functools.partial(read, stats))

    def degraded(self) -> bool:
        return bool(self.cache is not None and self.cache.degraded)

    def age(self) -> float | None:
        if self.cache is None:
            return None
        age = self.cache.config_age_seconds()
        return None if age is None else float(age)

    async def close(self) -> None:
        if self.cache is not None:
            with contextlib.suppress(Exception):
                await self.cache.close()


def token_cache_invalidator(token_cache: TokenCache) -> Callable[[str], None]:
    """C4: a community's key change drops its verified tokens."""

    def invalidate(community_id: str) -> None:
        token_cache.invalidate(community_id)

    return invalidate


def usage_recorder(settings: Settings, source: CommunitySource, metrics: Metrics) -> UsageRecorder | None:
    """L1, L5: counts for the store the configuration comes from; none with --config (no store)."""
    dsn = settings.dsn()
    if source.cache is None or dsn is None or not settings.usage_counting:
        return None
    lookup = source.lookup

    def configured(community_id: str) -> bool:
        try:
            return lookup.get(community_id) is not None
        except ConfigUnavailable:
            return False

    allowed = settings.metrics_community_ids
    labelled = metrics.community_events

    def allow_listed(community: str, outcome: str, reason: str, n: int) -> None:
        if community in allowed:
            labelled.labels(community, outcome, reason).inc(n)

    usage = UsageRecorder(
        dsn,
        configured=configured,
        flush_seconds=settings.usage_flush_seconds,
        max_pending=settings.usage_max_pending,
        on_counts=allow_listed if allowed else None,
    )
    for name, read in (
        ("usage_dropped_events", lambda: usage.dropped),
        ("usage_flushes", lambda: usage.flushes),
        ("usage_flush_failures", lambda: usage.flush_failures),
        ("usage_rows_written", lambda: usage.rows_written),
        ("usage_flush_statements", lambda: usage.statements),
        ("usage_pending_buckets", lambda: usage.pending),
    ):
        metrics.read_live(name, read)
    return usage


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


async def serve(
    settings: Settings,
    *,
    processor: Processor | None = None,
    stop: asyncio.Event | None = None,
    handle_signals: bool = True,
    on_ready: Callable[[Member, int], None] | None = None,
) -> int:
    """Run until SIGTERM/SIGINT (or `stop`); returns the exit code. Raises StartupError."""
    stop = stop or asyncio.Event()
    metrics = Metrics()
    token_cache = TokenCache(settings.token_cache_size)
    if handle_signals:
        _install_signals(stop)
    loop_lag = asyncio.create_task(LoopLag(metrics).run(stop), name="loop-lag")  # T1, from start-up on
    try:
        source = await CommunitySource.open(settings, token_cache)
    except BaseException:
        loop_lag.cancel()
        raise
    metrics.read_live("token_cache_hits", lambda: token_cache.hits)
    metrics.read_live("token_cache_misses", lambda: token_cache.misses)
    metrics.watch_token_cache(token_cache)
    metrics.read_live("config_age_seconds", source.age)
    source.export_stats(metrics)
    decider = Decider(
        processor or pipeline_processor(source.lookup, settings.limits, token_cache),
        metrics=metrics,
        max_attempts=settings.max_processing_attempts,
        recheck_community=source.recheck(),
    )
    usage = usage_recorder(settings, source, metrics)
    member = Member(settings, decider, metrics, usage, store_degraded=source.degraded)
    health = member.health
    metrics.read_live("ready", lambda: 1.0 if health.ready() else 0.0)
    usage_stop = asyncio.Event()
    usage_task: asyncio.Task[None] | None = None
    if usage is not None:
        usage_task = asyncio.create_task(usage.run(usage_stop), name="usage-flush")
    server = None
    try:
        if settings.metrics_port:
            server = OpsServer(metrics, health, settings.metrics_host, settings.metrics_port)
            try:
                port = await server.start()
            except OSError as exc:
                server = None
                raise StartupError(
                    f"cannot listen on {settings.metrics_host}:{settings.metrics_port}: {exc.strerror}"
                ) from None
        else:
            port = 0
        await member.start(stop)
        health.started = True
        log.info("worker ready", metrics_port=port or None, database=settings.redacted_dsn())
        client_started()
        if on_ready is not None:
            on_ready(member, port)
        monitor = asyncio.create_task(_monitor(member, metrics, health, source, settings, stop))
        code = await _run_until_stopped(member, stop, settings.shutdown_timeout_seconds)
        health.stopping = True
        monitor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await monitor
        return code
    finally:
        loop_lag.cancel()
        await member.close()
        if usage is not None and usage_task is not None:
            usage_stop.set()  # one last flush of what the final batch counted, bounded (K6)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(usage_task, USAGE_SHUTDOWN_SECONDS)
            await usage.close()
        await source.close()
        if server is not None:
            await server.close()


async def _run_until_stopped(member: Member, stop: asyncio.Event, bound: float) -> int:
    """K6: once stopped, the current batch has `bound` seconds to commit; then we leave regardless."""
    task = asyncio.create_task(member.run(stop))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not task.done():
        try:
            await asyncio.wait_for(asyncio.shield(task), bound)
        except TimeoutError:
            log.error("shutdown bound reached; leaving without committing the batch in flight", bound=bound)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            return EXIT_UNCLEAN
    exc = task.exception()
    if isinstance(exc, FatalFault):  # K10: one clear line, nothing committed, non-zero exit
        log.error(f"fatal: {exc}", error_type=exc.error_type, exit_code=EXIT_FATAL)
        return EXIT_FATAL
    if exc is not None:
        log.error("worker failed", error_type=type(exc).__name__, error=str(exc)[:300], exc_info=exc)
        return EXIT_BUG
    return EXIT_OK if member.recovery.clean else EXIT_UNCLEAN  # K6: the batch in hand redone


async def _monitor(
    member: Member,
    metrics: Metrics,
    health: Health,
    source: CommunitySource,
    settings: Settings,
    stop: asyncio.Event,
) -> None:
    """Every few seconds: consumer lag (also a Kafka probe), store health, the progress line."""
    interval = settings.progress_interval_seconds or 5.0
    gate = ProgressGate(idle_every=max(60.0, 12 * interval))  # idle: a line a minute, not every 5 s
    last_count, last_time = member.processed, time.monotonic()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
        if stop.is_set():
            return
        lag = await member.sample_lag()
        metrics.kafka_up.set(0 if health.kafka_error else 1)
        metrics.store_up.set(0 if source.degraded() else 1)
        now = time.monotonic()
        rate = (member.processed - last_count) / max(now - last_time, 1e-9)
        last_count, last_time = member.processed, now
        problems = health.problems()
        if settings.progress_interval_seconds and gate.due((member.processed, lag, problems), now):
            log.info(
                f"progress: {rate:.0f} events/s, lag {lag if lag is not None else '?'}, "
                f"{member.processed} processed" + (f"; not ready: {'; '.join(problems)}" if problems else ""),
                events_per_second=round(rate, 1),
                lag=lag,
                processed=member.processed,
                ready=not problems,
            )


def _install_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()

    def requested(signum: int) -> None:
        if stop.is_set():
            log.info("already stopping", signal=signal.Signals(signum).name)
            return
        log.info("stopping: finishing the current batch", signal=signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, requested, signum)
