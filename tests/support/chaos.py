"""Broker restart campaigns (K2, K5, K8): a worker streams while brokers are stopped, killed or
frozen then killed, and come back; every input must be answered exactly once.

One run: a private cluster (`deploy/local/stack`, one node or `brokers=3`: replication 3,
`min.insync.replicas` 2), fresh topics (3 partitions), one `identity-worker run` process
(batch 100). For each restart: produce a chunk, wait a random moment (mid-stream), fault a
broker — `graceful` (SIGTERM, as `stack stop`), `kill` (SIGKILL), `freeze` (SIGSTOP, a few
seconds, then SIGKILL) — keep it down 1–5 s, start it again. Then the rest of the inputs, and
the one checker: the outputs read `read_committed`, by source (partition, offset), duplicates
and missing counted separately. A worker that refused to produce (a dangling transaction it
may not close, `worker.kafka.transactions`) is counted apart, with its log line.

Missing outputs are told apart by the group's committed offsets (read once the worker stopped):
an input *below* its partition's committed offset without an output is **lost** — outputs and
offsets commit in one transaction (K2), so nothing but a real loss makes one; an input at or
past it is **pending** — not answered yet, which only a refusal excuses. The wait for the
outputs ends when all are there, at a refusal, or after `STALL_SECONDS` without a new output
(so a loaded machine makes a run slower, never a false loss).

`python -m tests.support.chaos --restarts 200` (`make chaos`) runs campaigns until that many
restarts are done and prints one line per run and a total; tests/broker/test_broker_restart_campaign.py
runs a few restarts in the suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.support.kafka import client_options, create_topics
from tests.support.private_stack import PrivateBroker
from tests.support.worker import Outputs, Store, Topics, produce, start_worker, stream_values, wait_ready

MODES = ("graceful", "kill", "freeze")
REFUSAL = "dangling transaction: not producing"  # the worker's refusal line (kafka/transactions.py)
STALL_SECONDS = 120.0  # no new output for this long: the worker is not coming (it is reported)
WAIT_CAP_SECONDS = 900.0
PARTITIONS = 3


@dataclass
class RunResult:
    brokers: int
    restarts: list[str]
    inputs: int = 0
    answered: int = 0
    missing: int = 0
    lost: int = 0  # missing below the group's committed offset: a real loss
    pending: int = 0  # missing at or past it: not answered (yet)
    duplicates: int = 0
    refused: list[str] = field(default_factory=list)  # the worker's refusal lines
    exit_code: int | None = None
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # seconds: where a run's time goes

    def lap(self, phase: str, since: float) -> float:
        """Add the time since `since` (monotonic) to `phase`; returns now."""
        now = time.monotonic()
        self.phases[phase] = round(self.phases.get(phase, 0.0) + now - since, 1)
        return now

    @property
    def ok(self) -> bool:
        return self.duplicates == 0 and self.lost == 0 and (self.pending == 0 or bool(self.refused))

    def line(self) -> str:
        return json.dumps(
            {
                "brokers": self.brokers,
                "restarts": self.restarts,
                "inputs": self.inputs,
                "answered": self.answered,
                "missing": self.missing,
                "lost": self.lost,
                "pending": self.pending,
                "duplicates": self.duplicates,
                "refused": self.refused,
                "exit": self.exit_code,
                "seconds": round(self.seconds, 1),
                "phases": self.phases,
            }
        )


class Cluster(PrivateBroker):
    """A private broker, or `brokers` of them (KRaft, each broker+controller), faulted one at a time."""

    def __init__(self, brokers: int) -> None:
        super().__init__()
        self.brokers = brokers
        self.env["STACK_KAFKA_NODES"] = str(brokers)
        # C1 only: a broker (re)starts about a third faster on a busy 2-core machine (measured
        # 11-19 s vs 22-29 s at load 17-20); the JIT level changes nothing Kafka decides.
        self.env["KAFKA_HEAP_OPTS"] = self.env.get("KAFKA_HEAP_OPTS", "") + " -XX:TieredStopAtLevel=1"

    def pid(self, node: int) -> int:
        return int((self.folder / _node_dir(node) / "pid").read_text())

    def fault(self, node: int, mode: str, rng: random.Random, frozen: tuple[float, float]) -> None:
        """Take `node` down the `mode` way (returns once it is down); `frozen`: seconds range."""
        if mode == "graceful":
            self._run(f"stop-node={node}" if self.brokers > 1 else "stop")
            return
        pid = self.pid(node)
        if mode == "freeze":
            os.kill(pid, signal.SIGSTOP)
            time.sleep(rng.uniform(*frozen))
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.3)

    def revive(self) -> None:
        self._run("start")


def _node_dir(node: int) -> str:
    return "kafka" if node == 1 else f"kafka-{node}"


async def run_campaign(
    store: Store,
    folder: Path,
    *,
    brokers: int,
    restarts: int,
    seed: int,
    events: int = 6000,
    unclean: bool = False,
    down: tuple[float, float] = (1.0, 5.0),
    frozen: tuple[float, float] = (1.0, 6.0),
) -> RunResult:
    """One stream of `events` inputs through `restarts` broker faults (see the module);
    `unclean`: only SIGKILL and SIGSTOP-then-SIGKILL; `down`, `frozen`: seconds ranges a broker
    stays down, resp. frozen before its SIGKILL."""
    rng = random.Random(seed)
    modes = [rng.choice(MODES[1:] if unclean else MODES) for _ in range(restarts)]
    result = RunResult(brokers, modes)
    started = time.monotonic()
    cluster = Cluster(brokers)
    try:
        await asyncio.to_thread(cluster.start)
        bootstrap = cluster.bootstrap
        prefix = f"chaos-{seed}-{int(time.time())}"
        topics = Topics(f"{prefix}.raw", f"{prefix}.enriched", f"{prefix}.rejected", f"{prefix}.dlq")
        await create_topics(
            bootstrap,
            {name: PARTITIONS for name in (topics.raw, *topics.outputs)},
            replication_factor=min(brokers, 3),
        )
        values = stream_values(store.acme, events, time.time(), unique_tokens=events // 2)
        worker = start_worker(
            folder,
            f"chaos-{seed}",
            bootstrap,
            store.url,
            topics,
            batch_size="100",
            retry_backoff_max_ms="2000",
        )
        inputs: list[tuple[int, int]] = []
        chunk = len(values) // (restarts + 1)
        try:
            await wait_ready(worker, 90)
            mark = result.lap("start", started)
            for number, mode in enumerate(modes):
                part = values[number * chunk : (number + 1) * chunk]
                inputs += await produce(bootstrap, topics.raw, [(None, v, None) for v in part])
                await asyncio.sleep(rng.uniform(0.0, 1.5))  # mid-stream: batches in flight
                node = rng.randint(1, brokers)
                await asyncio.to_thread(cluster.fault, node, mode, rng, frozen)
                await asyncio.sleep(rng.uniform(*down))
                mark = result.lap("stream_and_faults", mark)
                await asyncio.to_thread(cluster.revive)
                mark = result.lap("broker_starts", mark)
            inputs += await produce(
                bootstrap, topics.raw, [(None, v, None) for v in values[restarts * chunk :]]
            )
            async with Outputs(bootstrap, topics) as outputs:
                await _wait_for_outputs(outputs, len(inputs), worker.log)
            mark = result.lap("catch_up", mark)
        finally:
            result.exit_code = worker.stop(timeout=90)
        result.inputs = len(inputs)
        result.answered = len(set(outputs.by_source) & set(inputs))
        result.missing, result.duplicates = outputs.check_exactly_once(inputs)
        answered = {p for p, _ in set(outputs.by_source) & set(inputs)}
        committed = await group_offsets(bootstrap, topics.raw, answered)
        unanswered = set(inputs) - set(outputs.by_source)
        result.lost = sum(1 for p, o in unanswered if committed is None or o < committed.get(p, 0))
        result.pending = result.missing - result.lost
        result.refused = [
            line[:400] for line in worker.log.read_text(errors="replace").splitlines() if REFUSAL in line
        ]
    finally:
        await asyncio.to_thread(cluster.destroy)
        result.seconds = time.monotonic() - started
        result.phases["end"] = round(result.seconds - sum(result.phases.values()), 1)
    return result


async def _wait_for_outputs(outputs: Outputs, count: int, log: Path) -> None:
    """Read outputs until `count` inputs are answered, a refusal, or `STALL_SECONDS` without a
    new one (capped at `WAIT_CAP_SECONDS`); then a few seconds more for late duplicates."""
    started = last_progress = time.monotonic()
    seen = 0
    while len(outputs.by_source) < count:
        now = time.monotonic()
        if now - last_progress > STALL_SECONDS or now - started > WAIT_CAP_SECONDS:
            break
        await outputs.poll()
        if len(outputs.records) > seen:
            seen, last_progress = len(outputs.records), time.monotonic()
        if REFUSAL in log.read_text(errors="replace"):
            await outputs.settle(10.0)  # what it had committed; it produces no more
            break
    await outputs.settle(3.0)


async def group_offsets(bootstrap: str, topic: str, answered: set[int]) -> dict[int, int] | None:
    """The group `topic`'s (the worker's group here) committed offsets: those of committed
    transactions only (OffsetFetch without `require_stable`: a dangling offset commit is not
    one). A partition with answered inputs must have one; aiokafka reads a coordinator's
    top-level error as "none" (worker.kafka.offsets), so it is asked again; None when it never
    answers for all of them (then every missing output counts as lost: no false comfort)."""
    consumer = AIOKafkaConsumer(**client_options(bootstrap), group_id=topic, enable_auto_commit=False)
    await consumer.start()
    try:
        for _ in range(30):
            found = {p: await consumer.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)}
            if all(found[p] is not None for p in answered):
                return {p: offset for p, offset in found.items() if offset is not None}
            await asyncio.sleep(1.0)
    finally:
        await consumer.stop()
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.chaos",
        description="Broker restart campaigns: every input answered exactly once (DESIGN K2, K8).",
    )
    parser.add_argument("--restarts", type=int, default=200, help="total broker restarts (default 200)")
    parser.add_argument("--per-run", type=int, default=10, help="restarts per worker stream (default 10)")
    parser.add_argument(
        "--brokers", default="1,3", help="cluster sizes to alternate, comma-separated (default 1,3)"
    )
    parser.add_argument("--seed", type=int, default=int(time.time()), help="first run's seed")
    parser.add_argument("--events", type=int, default=3000, help="inputs per run (default 3000)")
    args = parser.parse_args(argv)
    try:
        sizes = [int(size) for size in args.brokers.split(",")]
    except ValueError:
        parser.error(f"--brokers: not a comma-separated list of numbers: {args.brokers!r}")
    if args.restarts < 1 or args.per_run < 1 or any(size not in (1, 3) for size in sizes):
        parser.error("--restarts and --per-run must be at least 1; --brokers takes 1 and 3")
    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        parser.error('DATABASE_URL is not set: eval "$(deploy/local/stack up)" first')
    from tests.support.worker import own_store

    folder = Path(tempfile.mkdtemp(prefix="identity-worker-chaos."))
    store = own_store(database_url, "chaos", folder)
    done = failed = 0
    totals = {"duplicates": 0, "missing": 0, "lost": 0, "pending": 0, "refused_runs": 0, "runs": 0}
    seed = args.seed
    while done < args.restarts:
        restarts = min(args.per_run, args.restarts - done)
        brokers = sizes[totals["runs"] % len(sizes)]
        result = asyncio.run(
            run_campaign(store, folder, brokers=brokers, restarts=restarts, seed=seed, events=args.events)
        )
        print(result.line(), flush=True)
        done += restarts
        seed += 1
        totals["runs"] += 1
        totals["duplicates"] += result.duplicates
        totals["missing"] += result.missing
        totals["lost"] += result.lost
        totals["pending"] += result.pending
        totals["refused_runs"] += bool(result.refused)
        failed += not result.ok
        print(f"# {done} restarts so far: {json.dumps(totals)}", file=sys.stderr, flush=True)
    print(json.dumps({"restarts": done, **totals, "failed_runs": failed}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
