"""What key-usage counting (issue 15, L1) costs the real worker, and its write rate to PostgreSQL.

    eval "$(deploy/local/stack up)"
    .venv/bin/python bench/usage_load.py [--events 50000] [--rounds 2] [--repeat-share 0.9]

A/B on the same backlog (`make bench`'s backlog scenario, kafka_bench.backlog_run): the worker
reading its configuration from the store with usage counted and flushed every
`IDENTITY_WORKER_USAGE_FLUSH_SECONDS`, against the same worker with
`IDENTITY_WORKER_USAGE_COUNTING=false`; rounds interleaved (ABBA) so drift hits both. 90 %
repeated tokens by default: the cheapest events, where a fixed per-event cost weighs most.
The write rate is read from PostgreSQL's own statistics (pg_stat_user_tables: rows inserted or
updated in the usage tables) and from the worker's exit line (flushes = statements).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # kbench.kafka_io extends the suite's tests.support.worker.Topics

import asyncpg  # noqa: E402
import kafka_bench  # noqa: E402
from kbench import kafka_io, workload  # noqa: E402

USAGE_TABLES = ("key_usage_total", "key_usage_hourly", "integration_health_minute")


async def table_writes(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        total = await conn.fetchval(
            "SELECT coalesce(sum(n_tup_ins + n_tup_upd), 0) FROM pg_stat_user_tables WHERE relname = ANY($1)",
            list(USAGE_TABLES),
        )
        return int(total)
    finally:
        await conn.close()


def exit_line(log: Path) -> dict[str, Any]:
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if '"usage counts: totals"' in line:
            return dict(json.loads(line))
    return {}


async def main(args: argparse.Namespace) -> None:
    bootstrap, url = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("DATABASE_URL")
    if not bootstrap or not url:
        raise SystemExit('set KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL (eval "$(deploy/local/stack up)")')
    stamp = time.strftime("%Y%m%d%H%M%S") + f"-{os.getpid()}"
    community = f"usage_{stamp.replace('-', '_')}"
    keys = workload.Keys.generate()
    tmp = tempfile.TemporaryDirectory(prefix="usage-bench-")
    config = Path(tmp.name, "community.yaml")
    config.write_text(workload.community_yaml(community, keys))
    for command in (["db", "migrate"], ["config", "apply", str(config)]):
        subprocess.run([*kafka_bench.CLI, *command], check=True, capture_output=True)
    spec = workload.WorkloadSpec(args.events, 1.0, args.repeat_share, 0.05, seed=15)
    data = workload.build(spec, community, keys)
    launcher = kafka_bench.WorkerLauncher.detect(
        "cli", bootstrap=bootstrap, config_path=str(config), batch_size=2000, linger_ms=20
    )
    modes = {
        "counting": {"DATABASE_URL": url, "IDENTITY_WORKER_USAGE_FLUSH_SECONDS": str(args.flush_seconds)},
        "no-counting": {"DATABASE_URL": url, "IDENTITY_WORKER_USAGE_COUNTING": "false"},
    }
    results: dict[str, list[float]] = {mode: [] for mode in modes}
    cpu: dict[str, list[float]] = {mode: [] for mode in modes}
    for round_ in range(args.rounds):
        order = list(modes) if round_ % 2 == 0 else list(reversed(modes))
        for mode in order:
            prefix = f"usage-bench-{stamp}-{round_}-{mode}"
            topics = kafka_io.Topics.fresh(prefix)
            await kafka_io.create_topics(bootstrap, [topics.raw, *topics.outputs], args.partitions)
            await asyncio.sleep(1.0)
            await kafka_io.produce_backlog(bootstrap, topics.raw, data.values)
            argv, env = launcher.command(topics, prefix, "exactly_once", 1)
            env.pop("IDENTITY_WORKER_CONFIG_FILE", None)  # both read the store; only counting differs
            argv = [a for a in argv if a not in ("--config", str(config))]
            env.update(modes[mode])
            writes_before = await table_writes(url)
            result = await kafka_bench.backlog_run(
                f"usage-{mode}", mode, bootstrap, topics, args.events, argv, env, topics.outputs, 300
            )
            await asyncio.sleep(1.0)  # statistics are reported by the backends asynchronously
            writes = await table_writes(url) - writes_before
            results[mode].append(result.throughput)
            cpu[mode].append(result.cpu_per_event)
            line = (
                f"round {round_} {mode}: {result.throughput:,.0f} ev/s over {result.seconds:.1f} s, "
                f"{result.cpu_per_event * 1e6:.1f} µs CPU/event, "
                f"machine {result.machine_utilisation:.2f} cores busy"
            )
            if mode == "counting":
                totals = exit_line(kafka_bench.HERE / "results" / f"usage-{mode}-worker.stderr.log")
                line += (
                    f"; flushes (statements) {totals.get('flushes')}, rows {totals.get('rows_written')} "
                    f"(PostgreSQL saw {writes} row writes), dropped {totals.get('dropped_events')}"
                )
            print(line, flush=True)
    on, off = statistics.median(results["counting"]), statistics.median(results["no-counting"])
    print(
        f"median: counting {on:,.0f} ev/s, no counting {off:,.0f} ev/s, ratio {on / off:.3f} ({spec.label()})"
    )
    on_cpu, off_cpu = statistics.median(cpu["counting"]), statistics.median(cpu["no-counting"])
    print(
        f"median CPU/event: counting {on_cpu * 1e6:.1f} µs, no counting {off_cpu * 1e6:.1f} µs, "
        f"ratio {on_cpu / off_cpu:.3f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=50000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeat-share", type=float, default=0.9)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--flush-seconds", type=float, default=5.0)
    asyncio.run(main(parser.parse_args()))
