"""CPU per event of the worker's per-record path, in one process, without Kafka (issue 24, item 3).

What it times, per workload (the Kafka benchmark's `unique` and `repeat90` events, bench/kbench),
with the worker's own objects: `Decider.decide` over batches of `--batch` records (the pure
pipeline with the verified-token cache as the worker sizes it, the metrics observation, the
dead-letter guard), each output's `to_json()` (what the producer is given) and the usage
counting of each batch (`UsageRecorder.count`, no database). Garbage collection runs as in the
worker (its thresholds, `gc.freeze()` after start-up), so its cost is counted, unlike `bench/pipeline.py`.

Figures are CPU time (`time.process_time`) per event: the minimum over `--repeats` runs, each
on a fresh token cache; the machine's load average is printed beside them.

    .venv/bin/python bench/cost_cuts.py [--events 100000] [--batch 500] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
from pathlib import Path
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kbench import workload

from worker.core.community import prepare
from worker.core.pipeline import DEFAULT_LIMITS
from worker.core.tokencache import TokenCache
from worker.ops.metrics import Metrics
from worker.runtime.decide import Decider, pipeline_processor
from worker.runtime.processes import GC_GEN0_THRESHOLD
from worker.runtime.usage_recorder import UsageRecorder
from worker.store.yaml_io import parse_yaml

COMMUNITY = "bench_cuts"


def _records(values: list[bytes], batch: int) -> list[dict[TopicPartition, list[Any]]]:
    tp = TopicPartition("identity.raw", 0)
    records = [
        ConsumerRecord("identity.raw", 0, offset, 0, 0, None, value, None, 0, len(value), ())
        for offset, value in enumerate(values)
    ]
    return [{tp: records[i : i + batch]} for i in range(0, len(records), batch)]


def _run(batches: list[dict[TopicPartition, list[Any]]], lookup: Any, *, collect: bool = True) -> float:
    """CPU seconds to decide, encode and count every batch, on a fresh cache."""
    metrics = Metrics()
    cache = TokenCache()
    decider = Decider(pipeline_processor(lookup, DEFAULT_LIMITS, cache), metrics=metrics, max_attempts=3)
    usage = UsageRecorder(None, configured=lambda _: True)
    loop = asyncio.new_event_loop()
    try:
        gc.set_threshold(GC_GEN0_THRESHOLD, 10, 10)  # as `run_one` sets it
        gc.collect()
        gc.freeze()  # as the worker does at start-up
        if not collect:
            gc.disable()
        started = time.process_time()
        for batch in batches:
            decided, _ = loop.run_until_complete(decider.decide(batch))
            for item in decided:
                item.output.to_json()
            usage.count([item.output for item in decided], time.time())
        elapsed = time.process_time() - started
    finally:
        loop.close()
        gc.enable()
        gc.unfreeze()
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-gc", action="store_true", help="the collector off while timing (diagnosis)")
    parser.add_argument("--only", default="unique,repeat90", help="comma list: unique, repeat90")
    args = parser.parse_args(argv)

    keys = workload.Keys.generate()
    lookup = prepare(parse_yaml(workload.community_yaml(COMMUNITY, keys)))
    specs = {
        "unique": workload.WorkloadSpec(args.events, 1.0, 0.0, 0.0, seed=7),
        "repeat90": workload.WorkloadSpec(args.events, 1.0, 0.9, 0.0, seed=8),
    }
    print(f"load before: {os.getloadavg()[0]:.2f}; {args.events} events, batches of {args.batch}")
    for name in args.only.split(","):
        work = workload.build(specs[name], COMMUNITY, keys)
        batches = _records(work.values, args.batch)
        runs = [_run(batches, lookup, collect=not args.no_gc) for _ in range(args.repeats)]
        per_event = [run / args.events * 1e6 for run in runs]
        shown = " ".join(f"{us:.1f}" for us in per_event)
        print(f"{name:<9} CPU µs/event min {min(per_event):.1f}  (runs: {shown})")
    print(f"load after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
