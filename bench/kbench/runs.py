"""The bench's runs of a process under test (bench/kafka_bench.py): start it, time its drain or
its delay under paced load, stop it.

- `backlog_run`: the raw topic holds N records; start the process, count its outputs with a
  read_committed collector, CPU seconds of its process tree over the steady-state window.
- `paced_runs`: one worker, successive phases at offered rates; end-to-end delay per phase.

The process's stderr goes to bench/results/<name>-worker.stderr.log, never to a pipe.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from kbench import kafka_io
from kbench.procstat import CpuSampler

HERE = Path(__file__).resolve().parents[1]  # bench/
ROOT = HERE.parent


def say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def start_worker(name: str, argv: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
    """The worker's stderr goes to bench/results/<name>-worker.stderr.log, never to a pipe.

    A pipe nobody reads fills at 64 KiB; the worker's next log write then blocks its event loop
    (a retry-warning burst did exactly that: a 40 s "stall" that was the harness's).
    """
    log = HERE / "results" / f"{name}-worker.stderr.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=sink)
    return proc, log


def last_assignment(log: Path) -> float | None:
    """Epoch time of the worker's last "partitions assigned" log line (its JSON `timestamp`)."""
    last = None
    for line in log.read_text(errors="replace").splitlines():
        if '"partitions assigned"' not in line:
            continue
        try:
            stamp = datetime.fromisoformat(json.loads(line)["timestamp"]).timestamp()
        except (ValueError, KeyError, TypeError):
            continue
        last = stamp if last is None else max(last, stamp)
    return last


def stop_process(proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> str:
    """SIGTERM, wait (kill after `timeout`); returns the tail of the worker's log."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return log.read_text(errors="replace")[-2000:]


# ------------------------------------------------------------------------------ scenarios


@dataclass
class BacklogResult:
    name: str
    description: str
    events: int
    received: int
    duplicates: int
    seconds: float
    throughput: float
    cpu_per_event: float
    cpu_utilisation: float  # CPU seconds per wall second in the window (1.0 = one core)
    machine_utilisation: float = float("nan")  # the same for every process on the machine
    by_topic: dict[str, int] = field(default_factory=dict)
    loadavg: float = float("nan")  # the machine's 1-minute load average when the run started
    counted: int = 0  # outputs inside the measured window (the CPU/event is over these)


async def backlog_run(
    name: str,
    description: str,
    bootstrap: str,
    topics: kafka_io.Topics,
    expected: int,
    argv: list[str],
    env: dict[str, str],
    output_topics: list[str],
    timeout: float,
) -> BacklogResult:
    """The raw topic already holds `expected` records: start the process, time the drain."""
    collector = kafka_io.Collector(bootstrap, output_topics)
    await collector.start()
    load = os.getloadavg()[0]
    proc, log = start_worker(name, argv, env)
    try:
        with CpuSampler(proc.pid) as sampler:
            res = await collector.until(expected, timeout=timeout, idle_timeout=30)
            await asyncio.sleep(0.1)
    finally:
        await collector.stop()
        tail = stop_process(proc, log)
    received = len(res.received)
    if received < expected:
        say(f"{name}: only {received}/{expected} outputs; full worker stderr in {log}; tail:\n{tail}")
    # Steady state: from the group's last assignment (with --processes 2 the first child takes all
    # partitions, then the second joins and the group rebalances) or the first output, whichever is
    # later, to the last output. Outputs received at the window's start are not counted.
    start = max(res.first, last_assignment(log) or 0.0)
    if start >= res.last:
        start = res.first
    counted = max(sum(1 for t in res.received.values() if t > start), 1)
    window = max(res.last - start, 1e-6)
    cpu = sampler.at(res.last) - sampler.at(start)
    result = BacklogResult(
        name=name,
        description=description,
        events=expected,
        received=received,
        duplicates=res.duplicates,
        seconds=window,
        throughput=counted / window,
        cpu_per_event=cpu / counted,
        cpu_utilisation=cpu / window,
        machine_utilisation=(sampler.at(res.last, sampler.machine) - sampler.at(start, sampler.machine))
        / window,
        by_topic={t.rsplit(".", 1)[-1]: n for t, n in res.by_topic.items()},
        loadavg=load,
        counted=counted,
    )
    say(
        f"{name}: {result.throughput:,.0f} events/s, {result.cpu_per_event * 1e6:,.1f} µs CPU/event, "
        f"{result.cpu_utilisation:.2f} cores busy ({result.machine_utilisation:.2f} of "
        f"{os.cpu_count()} on the machine), outputs {result.by_topic}, load {load:.2f} at start"
    )
    return result


@dataclass
class PacedResult:
    offered: float
    achieved_input: float
    throughput: float
    received: int
    sent: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    loadavg: float = float("nan")  # 1-minute load average when the level started
    # With `parts`: each part's p50 / p99 ms and its mean over the slowest 1 % of records
    # (`delay_parts`): what the tail is made of.
    parts: dict[str, dict[str, float]] = field(default_factory=dict)


# A record's delay in three parts (`kafka_io.Collected.parts`): sent -> the worker's decision
# (`processed_at`: input append, the worker's fetch, its wait for the batch ahead), decision ->
# its output's append (the rest of the batch decided, the previous transaction ended), append ->
# the collector (produce, commit, markers, the collector's fetch).
PARTS = ("to_decide", "to_append", "to_seen")


def delay_parts(
    sent: dict[int, float], got: dict[int, float], parts: dict[int, tuple[float, float]]
) -> dict[str, dict[str, float]]:
    """p50 / p99 ms of each part over the level, and each part's mean over the slowest 1 %."""
    rows = []
    for key, seen in got.items():
        decided, appended = parts[key]
        rows.append((seen - sent[key], (decided - sent[key], appended - decided, seen - appended)))
    if not rows:
        return {}
    rows.sort(key=lambda row: row[0])
    tail = rows[len(rows) - max(1, len(rows) // 100) :]
    out = {}
    for i, name in enumerate(PARTS):
        values = [row[1][i] * 1000 for row in rows]
        out[name] = {
            "p50": percentile(values, 50),
            "p99": percentile(values, 99),
            "tail_mean": sum(row[1][i] for row in tail) * 1000 / len(tail),
        }
    return out


def write_parts(
    path: Path, sent: dict[int, float], got: dict[int, float], parts: dict[int, tuple[float, float]]
) -> None:
    """One line per record, in send order: key, sent, decided, appended, seen (epoch seconds)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        out.write("key,sent,decided,appended,seen\n")
        for key in sorted(got):
            decided, appended = parts[key]
            out.write(f"{key},{sent[key]:.3f},{decided:.6f},{appended:.3f},{got[key]:.6f}\n")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


async def paced_runs(
    bootstrap: str,
    topics: kafka_io.Topics,
    values: list[bytes],
    rates: list[float],
    seconds: float,
    argv: list[str],
    env: dict[str, str],
    parts: bool = False,
) -> list[PacedResult]:
    """One worker on fresh topics; successive phases at each offered rate; delays per phase.

    `parts`: each delay also split in its parts (`delay_parts`; the collector reads each
    output's `processed_at`)."""
    collector = kafka_io.Collector(bootstrap, topics.outputs, parts=parts)
    await collector.start()
    proc, log = start_worker("paced", argv, env)
    results: list[PacedResult] = []
    sent: dict[int, float] = {}
    key = 0
    # The paced producer runs in a process of its own: the collector's timestamps are then the
    # outputs' arrival, not when a loop busy sending got to them (kafka_io.produce_paced_apart).
    producers = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    try:
        # The producer's process starts now: spawned during the first level, its start-up (a
        # Python process importing aiokafka) took the cores the worker needed then.
        await asyncio.get_running_loop().run_in_executor(producers, kafka_io.ready)
        # warm-up: until the worker has joined the group and answered a few events
        warm = values[:200]
        await kafka_io.produce_paced(bootstrap, topics.raw, warm, 200, sent, first_key=key)
        await collector.until(len(warm), timeout=120)
        key += len(warm)
        cursor = 0
        for rate in rates:
            n = max(50, int(rate * seconds))
            phase = [values[(cursor + i) % len(values)] for i in range(n)]
            cursor += n
            first = key
            load = os.getloadavg()[0]
            start = time.time()
            produce = asyncio.get_running_loop().run_in_executor(
                producers, kafka_io.produce_paced_apart, bootstrap, topics.raw, phase, rate, first
            )
            await collector.until(first + n, timeout=seconds * 4 + 30, idle_timeout=20)
            phase_sent, achieved = await produce
            sent.update(phase_sent)
            got = {k: t for k, t in collector.result.received.items() if first <= k < first + n}
            delays = [(t - sent[k]) * 1000 for k, t in got.items()]
            end = max(got.values()) if got else time.time()
            r = PacedResult(
                offered=rate,
                achieved_input=achieved,
                throughput=len(got) / max(end - start, 1e-6),
                received=len(got),
                sent=n,
                p50_ms=percentile(delays, 50),
                p95_ms=percentile(delays, 95),
                p99_ms=percentile(delays, 99),
                max_ms=max(delays) if delays else float("nan"),
                loadavg=load,
                parts=delay_parts(sent, got, collector.result.parts) if parts else {},
            )
            if parts:
                write_parts(
                    HERE / "results" / f"paced-{len(results)}-parts.csv", sent, got, collector.result.parts
                )
            say(
                f"paced {rate:,.0f}/s: output {r.throughput:,.0f}/s, delay p50 {r.p50_ms:.0f} ms, "
                f"p95 {r.p95_ms:.0f} ms, p99 {r.p99_ms:.0f} ms ({r.received}/{n})"
            )
            for name, part in r.parts.items():
                say(
                    f"  {name}: p50 {part['p50']:.1f} ms, p99 {part['p99']:.1f} ms, "
                    f"mean over the slowest 1 %: {part['tail_mean']:.1f} ms"
                )
            results.append(r)
            key += n
    finally:
        producers.shutdown(cancel_futures=True)
        await collector.stop()
        tail = stop_process(proc, log)
        if any(r.received < r.sent for r in results):
            say(f"paced: missing outputs; full worker stderr in {log}; tail:\n{tail}")
    return results
