"""K7 `--processes N`: N members of the same consumer group on one machine.

Each child is a full single-process worker (its own consumer, producer, transactional id
and configuration cache) with metrics on `metrics_port + index`. The parent only
supervises: it starts child 0 and waits until it is ready (so a fail-fast error such as a
missing topic is reported once), then starts the others; it forwards SIGTERM/SIGINT to all
of them and waits for their clean exit (K6). When a child dies unexpectedly the parent
stops the others and exits with that child's code: one process supervisor (systemd,
Kubernetes) restarts the whole group, rather than a second supervisor hiding crashes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
from typing import Any

import structlog

from worker.exitcodes import EXIT_FATAL, PROG, error_line
from worker.kafka.security import KafkaMisconfiguration
from worker.ops.logging import configure_logging
from worker.runtime.service import serve
from worker.runtime.startup import StartupError
from worker.settings import Settings

log = structlog.get_logger(__name__)

# Young-generation GC threshold of a worker process (CPython's default is 700 allocations).
# Each event allocates dozens of short-lived containers, so the default runs a collection every
# ~15 events, and each older-generation pass walks the verified-token cache. Measured on the
# pipeline (60 000 unique HS256 events, Decider included): 63-68 µs/event with the defaults,
# 46-53 µs with this, 40 µs with the collector off. Reference counting still frees everything
# that is not a cycle at once; only cycles wait a little longer.
GC_GEN0_THRESHOLD = 10_000
# T1: a middle-generation pass walks every object of the young generations, up to
# GC_GEN0_THRESHOLD x (this + 1) allocations' survivors: batches in flight, new token-cache
# entries. With CPython's 10 it held the loop 33-54 ms at 100 000 communities under load
# (docs/scale.md); with 3, about a third of that. Full passes stay as rare as before: one is
# considered every (3 + 1) x (GC_GEN2_THRESHOLD + 1) young passes, ~ CPython's (10 + 1) x (10 + 1).
GC_GEN1_THRESHOLD = 3
GC_GEN2_THRESHOLD = 25


def run_one(settings: Settings, ready: Any = None, *, child: bool = False) -> int:
    """One member in this process: the code `run` exits with."""
    configure_logging(settings.log_level, member=settings.member_index if child else None)
    gc.set_threshold(GC_GEN0_THRESHOLD, GC_GEN1_THRESHOLD, GC_GEN2_THRESHOLD)

    def on_ready(*_: Any) -> None:
        # What start-up built (modules, configuration, clients) lives as long as the process:
        # out of the collector's sight, so the older-generation passes stop walking it.
        gc.collect()
        gc.freeze()
        if ready is not None:
            ready.set()

    try:
        return asyncio.run(serve(settings, on_ready=on_ready))
    except (StartupError, KafkaMisconfiguration) as exc:  # K10: fatal, one line
        print(error_line(str(exc)), file=sys.stderr, flush=True)
        return EXIT_FATAL


def _child(settings: Settings, ready: Any) -> None:
    sys.exit(run_one(settings, ready, child=True))


def run_processes(settings: Settings) -> int:
    """Supervise `settings.processes` children; returns the exit code of the group."""
    configure_logging(settings.log_level)
    context = multiprocessing.get_context("spawn")
    children: list[Any] = []
    stopping = False

    def forward(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.is_alive() and child.pid:
                with_signal(child.pid, signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        first_ready = context.Event()
        children.append(_start(context, settings.for_member(0), first_ready))
        while not first_ready.wait(0.2):
            if not children[0].is_alive():
                return int(children[0].exitcode or EXIT_FATAL)
        if not stopping:
            for index in range(1, settings.processes):
                children.append(_start(context, settings.for_member(index), None))
        log.info("members started", processes=len(children), pids=[c.pid for c in children])
        code = 0
        alive = list(children)
        while alive:
            multiprocessing.connection.wait([c.sentinel for c in alive], timeout=1.0)
            for child in [c for c in alive if not c.is_alive()]:
                alive.remove(child)
                child_code = child.exitcode if child.exitcode is not None else 1
                if child_code < 0:  # killed by a signal
                    child_code = 128 - child_code
                code = code or child_code
                if not stopping:
                    log.error(
                        "member exited unexpectedly; stopping the others", pid=child.pid, code=child_code
                    )
                    forward(signal.SIGTERM, None)
        deadline = settings.shutdown_timeout_seconds + 15
        for child in children:
            child.join(deadline)
            if child.is_alive():
                child.kill()
                code = code or 1
        return code
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _start(context: Any, settings: Settings, ready: Any) -> Any:
    process = context.Process(target=_child, args=(settings, ready), name=f"{PROG}-{settings.member_index}")
    process.start()
    return process


def with_signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
