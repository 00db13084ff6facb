"""Kafka benchmark of the identity worker against the real local broker (issue 6).

    eval "$(deploy/local/stack up)"
    .venv/bin/python bench/kafka_bench.py --events 100000 --hs-share 0.8 --repeat-share 0.0 \
        --invalid-share 0.05 --partitions 4          # full run (`make bench`), ~4-5 min on 2 cores
    .venv/bin/python bench/kafka_bench.py --quick    # ~1 min smoke run, bench/results/quick.*

What one run does (all topics fresh, named bench-<stamp>-...; nothing else on the broker is
touched):
  1. writes a config YAML with one community (HS256 + RS256 keys, a regex custom field,
     mappings) and generates the raw events of each workload once;
  2. backlog scenarios: produce N events, start the worker (`identity-worker run`), measure
     throughput (outputs seen by a read_committed consumer, from the worker's last partition
     assignment -- start-up and the start-up rebalance excluded -- to the last output), CPU
     seconds/event (the worker's process tree, /proc/<pid>/stat, same window) and how many of
     the machine's cores were busy (/proc/stat: is the machine saturated?);
       mix        the command-line workload, exactly-once, 1 process (headline)
       unique     unique HS256 tokens, exactly-once, 1 process           targets a, b, c, d
       repeat90   90% repeated HS256 tokens, exactly-once, 1 process     target b
       unique-p2  unique HS256, --processes 2                            target c
       unique-alo unique HS256, at-least-once                            target d
       rs256      unique RS256 tokens (the mix's), exactly-once, 1 process   issue 24
  3. references on the same machine, same run: a bare jwt.decode loop over the unique tokens
     (CPU/event in this process) and a pass-through aiokafka consumer→transactional producer
     copying the same raw records (CPU/event of its process, same batch/transaction settings);
     the floor (kbench/floor.py, issue 24): a lean consumer → verify → producer over the same
     raw records, run right after the worker on each of mix, unique, repeat90 and rs256; the
     bare HMAC-SHA256 and RSA-2048 verify costs (kbench/floor_report.py);
  4. paced scenario: the mix workload produced at fractions of the measured maximum (default
     10, 25, 50, 75 %); delay = output consumption time by a read_committed consumer − raw record
     timestamp (send time; the consumption time is the commit time plus one fetch round trip);
     p50/p95/p99 per load level;
  5. prints the table of figures and target ratios and issue 24's tables (markdown, as
     docs/performance.md takes them), writes docs/performance.png and a JSON file;
  6. exits 1 when any run's outputs are missing, duplicated or wrongly enriched (every run is
     counted against its workload: inputs answered, valid tokens enriched).

`--worker auto` runs `identity-worker run`; `--worker standin` runs bench/kbench/relay.py
--mode standin (the pure pipeline in a plain exactly-once loop), kept to compare runtimes.
The worker's stderr goes to bench/results/<scenario>-worker.stderr.log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))  # kbench.kafka_io extends the suite's tests.support.worker.Topics

import jwt  # noqa: E402
from aiokafka.errors import KafkaConnectionError  # noqa: E402
from kbench import floor_report, kafka_io, workload  # noqa: E402
from kbench.procstat import self_cpu  # noqa: E402
from kbench.runs import BacklogResult, PacedResult, backlog_run, paced_runs, say  # noqa: E402

CLI = [sys.executable, "-m", "worker.cli.main"]


# ------------------------------------------------------------------------------ the worker


@dataclass
class WorkerLauncher:
    """How to start the worker under test: the real CLI or the stand-in relay."""

    kind: str  # "cli" or "standin"
    bootstrap: str
    config_path: str
    batch_size: int
    linger_ms: int
    retry_backoff_ms: int = 100
    worker_linger_ms: int | None = None
    run_help: str = ""

    @classmethod
    def detect(cls, choice: str, **kw: Any) -> WorkerLauncher:
        help_text = ""
        if choice in ("auto", "cli"):
            result = subprocess.run([*CLI, "run", "--help"], capture_output=True, text=True, cwd=ROOT)
            if result.returncode == 0:
                help_text = result.stdout
            elif choice == "cli":
                raise SystemExit(f"bench: `identity-worker run` is not available: {result.stderr.strip()}")
        kind = "cli" if help_text else "standin"
        return cls(kind=kind, run_help=help_text, **kw)

    def describe(self) -> str:
        if self.kind == "cli":
            return "identity-worker run (the real worker)"
        return "STAND-IN worker (bench/kbench/relay.py --mode standin: process_event in an EOS loop)"

    def _has(self, flag: str) -> bool:
        return flag in self.run_help

    def command(
        self, topics: kafka_io.Topics, group: str, guarantee: str, processes: int
    ) -> tuple[list[str], dict[str, str]]:
        env = dict(os.environ)
        if self.kind == "standin":
            env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT), env.get("PYTHONPATH", "")])
            argv = [
                sys.executable, "-m", "kbench.relay", "--mode", "standin", "--bootstrap", self.bootstrap,
                "--input", topics.raw, "--enriched", topics.enriched, "--rejected", topics.rejected,
                "--dlq", topics.dlq, "--config", self.config_path, "--group", group, "--guarantee", guarantee,
                "--batch-size", str(self.batch_size), "--linger-ms", str(self.linger_ms),
                "--processes", str(processes), "--retry-backoff-ms", str(self.retry_backoff_ms),
            ]  # fmt: skip
            return argv, env
        env.update(
            {
                "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                "IDENTITY_WORKER_INPUT_TOPIC": topics.raw,
                "IDENTITY_WORKER_ENRICHED_TOPIC": topics.enriched,
                "IDENTITY_WORKER_REJECTED_TOPIC": topics.rejected,
                "IDENTITY_WORKER_DLQ_TOPIC": topics.dlq,
                "IDENTITY_WORKER_GROUP_ID": group,
                "IDENTITY_WORKER_GUARANTEE": guarantee,
                "IDENTITY_WORKER_CONFIG_FILE": self.config_path,
                "IDENTITY_WORKER_PROCESSES": str(processes),
                "IDENTITY_WORKER_METRICS_PORT": "0",  # --processes N would need N free ports
                "IDENTITY_WORKER_BATCH_SIZE": str(self.batch_size),
                "IDENTITY_WORKER_LOG_LEVEL": "info",
            }
        )
        if self.worker_linger_ms is not None:
            env["IDENTITY_WORKER_BATCH_LINGER_MS"] = str(self.worker_linger_ms)
        argv = [*CLI, "run"]
        if self._has("--config"):
            argv += ["--config", self.config_path]
        for flag, value in (
            ("--input-topic", topics.raw),
            ("--enriched-topic", topics.enriched),
            ("--rejected-topic", topics.rejected),
            ("--dlq-topic", topics.dlq),
            ("--group-id", group),
            ("--guarantee", guarantee),
            ("--batch-size", str(self.batch_size)),
        ):
            if self._has(flag):
                argv += [flag, value]
        if processes != 1:
            if not self._has("--processes"):
                raise SystemExit("bench: the worker has no --processes option")
            argv += ["--processes", str(processes)]
        return argv, env


# ------------------------------------------------------------------------------ references


def jwt_decode_reference(
    tokens: list[tuple[str, str]], keys: workload.Keys, min_seconds: float = 1.0
) -> float:
    """CPU seconds per bare jwt.decode (key prepared once, as the worker's registry does)."""
    hs_key = workload.HMAC_SECRET.encode()
    key_of = {"HS256": hs_key, "RS256": keys.public_rsa}
    rounds = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        start = self_cpu()
        while True:
            for token, alg in tokens:
                jwt.decode(token, key_of[alg], algorithms=[alg])
            rounds += 1
            used = self_cpu() - start
            if used >= min_seconds:
                break
    return used / (rounds * len(tokens))


# ------------------------------------------------------------------------------ report


def machine_info() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import aiokafka

    kafka_version = os.environ.get("KAFKA_VERSION") or "see deploy/local/stack"
    try:
        text = (ROOT / "deploy/local/stack").read_text()
        for line in text.splitlines():
            if line.startswith("DEFAULT_KAFKA_VERSION="):
                kafka_version = os.environ.get("KAFKA_VERSION") or line.split("=", 1)[1]
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "pyjwt": jwt.__version__,
        "aiokafka": aiokafka.__version__,
        "kafka": kafka_version,
        "loadavg_at_start": os.getloadavg(),
    }


def ratio_line(name: str, value: float, op: str, target: float, how: str) -> dict[str, Any]:
    ok = value <= target if op == "<=" else value >= target
    return {"target": name, "ratio": value, "op": op, "goal": target, "met": ok, "how": how}


def heading(out: TextIO, columns: str, width: int) -> None:
    """A table's column names after a blank line, underlined `width` characters wide."""
    print(f"\n{columns}\n{'-' * width}", file=out)


def print_report(report: dict[str, Any]) -> None:
    out = sys.stdout
    m = report["machine"]
    print(f"\nWorker under test: {report['worker']}", file=out)
    print(
        f"Machine: {m['nproc']} cores, {m['cpu_model']}; Python {m['python']}, PyJWT {m['pyjwt']}, "
        f"aiokafka {m['aiokafka']}, Kafka {m['kafka']}; load avg at start {m['loadavg_at_start'][0]:.2f}",
        file=out,
    )
    heading(
        out,
        f"{'scenario':<12} {'events':>7} {'events/s':>10} {'CPU µs/ev':>10} {'cores':>6} {'machine':>8} "
        f"{'load':>6}  description",
        107,
    )
    for r in report["backlog"]:
        print(
            f"{r['name']:<12} {r['received']:>7} {r['throughput']:>10,.0f} "
            f"{r['cpu_per_event'] * 1e6:>10,.0f} "
            f"{r['cpu_utilisation']:>6.2f} {r.get('machine_utilisation', float('nan')):>8.2f} "
            f"{r.get('loadavg', float('nan')):>6.2f}  "
            f"{r['description']}",
            file=out,
        )
    ref = report["references"]
    print(f"{'jwt.decode':<12} {ref['jwt_tokens']:>7} {1 / ref['jwt_decode_cpu']:>10,.0f} "
          f"{ref['jwt_decode_cpu'] * 1e6:>10,.1f} {'1.00':>6} {'':>8} {'':>6}  "
          "bare jwt.decode loop, unique HS256 tokens (in-process)", file=out)  # fmt: skip
    if "jwt_decode_cpu_mix" in ref:
        print(f"{'jwt.dec mix':<12} {ref['jwt_tokens_mix']:>7} {1 / ref['jwt_decode_cpu_mix']:>10,.0f} "
              f"{ref['jwt_decode_cpu_mix'] * 1e6:>10,.1f} {'1.00':>6} {'':>8} {'':>6}  "
              "bare jwt.decode loop, the mix workload's valid tokens", file=out)  # fmt: skip
    if report["paced"]:
        heading(
            out,
            f"{'offered/s':>10} {'output/s':>10} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} "
            f"{'load':>6}",
            65,
        )
        for p in report["paced"]:
            print(f"{p['offered']:>10,.0f} {p['throughput']:>10,.0f} {p['p50_ms']:>8.0f} {p['p95_ms']:>8.0f} "
                  f"{p['p99_ms']:>8.0f} {p['max_ms']:>8.0f} {p.get('loadavg', float('nan')):>6.2f}",
                  file=out)  # fmt: skip
    heading(out, f"{'target':<58} {'ratio':>8} {'goal':>8}  result", 90)
    for t in report["targets"]:
        print(f"{t['target']:<58} {t['ratio']:>8.2f} {t['op'] + format(t['goal'], 'g'):>8}  "
              f"{'met' if t['met'] else 'MISSED'}   ({t['how']})", file=out)  # fmt: skip


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paced = report["paced"]
    fig, ax1 = plt.subplots(figsize=(8, 4.8))
    offered = [p["offered"] for p in paced]
    ax1.plot(offered, [p["throughput"] for p in paced], "o-", color="tab:blue", label="output throughput")
    ax1.plot(offered, offered, ":", color="grey", label="offered = output")
    ax1.set_xlabel("offered load (events/s)")
    ax1.set_ylabel("throughput (events/s)", color="tab:blue")
    ax2 = ax1.twinx()
    ax2.plot(offered, [p["p99_ms"] for p in paced], "s-", color="tab:red", label="p99 delay")
    ax2.plot(offered, [p["p50_ms"] for p in paced], "^--", color="tab:orange", label="p50 delay")
    for fraction, goal in floor_report.DELAY_TARGETS_MS.items():  # issue 24's p99 targets
        ax2.plot([fraction * report["max_throughput"]], [goal], "x", color="tab:red", markersize=9)
    ax2.set_ylabel("end-to-end delay (ms)", color="tab:red")
    ax2.set_yscale("log")
    max_tp = report["max_throughput"]
    ax1.axvline(max_tp / 2, color="green", linestyle="--", linewidth=1, label="half of max throughput")
    lines = ax1.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax1.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper left", fontsize=8)
    m = report["machine"]
    ax1.set_title(
        f"identity worker, exactly-once, 1 process — {report['mix_label']}\n"
        f"{m['nproc']} cores {m['cpu_model']}; max {max_tp:,.0f} ev/s (backlog)",
        fontsize=9,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------ main


# Kafka's own `log.segment.bytes` (1 GiB). The local stack's broker rolls every 16 MiB (fast
# feedback for the tests); at the paced levels an output or input partition then rolled every
# few seconds, and each roll's flush of a segment the kernel had not yet written back held the
# broker's appends, hence the worker's transaction, 40-210 ms (docs/performance.md).
KAFKA_SEGMENT_BYTES = 1 << 30


def topic_configs(args: argparse.Namespace) -> dict[str, str]:
    """The bench topics' settings: the segment size unless `--segment-bytes 0`."""
    return {"segment.bytes": str(args.segment_bytes)} if args.segment_bytes else {}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=100000, help="events per backlog scenario (N)")
    p.add_argument(
        "--hs-share", type=float, default=0.8, help="share of HS256 tokens in the mix (rest RS256)"
    )
    p.add_argument("--repeat-share", type=float, default=0.0, help="share of repeated tokens in the mix")
    p.add_argument("--invalid-share", type=float, default=0.05, help="share of invalid events in the mix")
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument(
        "--batch-size",
        type=int,
        default=2000,
        help="worker and pass-through batch size (the worker's default)",
    )
    p.add_argument("--linger-ms", type=int, default=20, help="pass-through/stand-in batch linger")
    p.add_argument(
        "--worker-linger-ms",
        type=int,
        default=None,
        help="IDENTITY_WORKER_BATCH_LINGER_MS (default: the worker's)",
    )
    p.add_argument(
        "--retry-backoff-ms",
        type=int,
        default=10,
        help="pass-through/stand-in producer retry backoff (aiokafka's 100 ms default stalls each "
        "transaction after a commit: CONCURRENT_TRANSACTIONS retries)",
    )
    p.add_argument("--loads", default="0.1,0.25,0.5,0.75", help="paced loads as fractions of max throughput")
    p.add_argument("--phase-seconds", type=float, default=8.0, help="seconds per paced load level")
    p.add_argument(
        "--delay-parts",
        action="store_true",
        help="split each paced delay in its parts (sent -> decided -> appended -> seen), p50 / p99 "
        "and the slowest 1 %%'s mean of each (the collector reads every output's processed_at)",
    )
    p.add_argument(
        "--max-throughput",
        type=float,
        default=None,
        help="events/s the paced levels are fractions of, instead of this run's mix (for paced-only runs)",
    )
    p.add_argument(
        "--segment-bytes",
        type=int,
        default=KAFKA_SEGMENT_BYTES,
        help="log segment size of the bench's topics (default Kafka's own, 1 GiB; the local "
        "stack's broker default of 16 MiB is for the tests): 0 keeps the broker's",
    )
    p.add_argument("--worker", choices=["auto", "cli", "standin"], default="auto")
    p.add_argument(
        "--only",
        default="",
        help="comma list of scenarios to run (mix,unique,repeat90,rs256,p2,alo,floor,paced)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run (~30 s): N=3000, 3 short load levels; its figures are too small to quote, "
        "so it writes bench/results/quick.{png,json} and leaves docs/performance.png alone",
    )
    p.add_argument("--plot", default=None, help="PNG path (default docs/performance.png)")
    p.add_argument("--json", default=None, help="JSON path (default bench/results/latest.json)")
    args = p.parse_args(argv)
    stem = "latest"
    if args.quick:
        args.events = min(args.events, 3000)
        args.loads = "0.1,0.25,0.5"
        args.phase_seconds = 3.0
        stem = "quick"
    if args.plot is None:
        args.plot = str(HERE / "results/quick.png" if args.quick else ROOT / "docs/performance.png")
    if args.json is None:
        args.json = str(HERE / f"results/{stem}.json")
    return args


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        raise SystemExit('bench: set KAFKA_BOOTSTRAP_SERVERS (eval "$(deploy/local/stack up)")')
    only = set(filter(None, args.only.split(",")))

    def wanted(name: str) -> bool:
        return not only or name in only

    stamp = time.strftime("%Y%m%d%H%M%S") + f"-{os.getpid()}"
    prefix = f"bench-{stamp}"
    community = f"bench_{stamp.replace('-', '_')}"
    machine = machine_info()
    say(f"machine: {machine['nproc']} cores, {machine['cpu_model']}, load avg {machine['loadavg_at_start']}")

    tmp = tempfile.TemporaryDirectory(prefix="kafka-bench-")
    keys = workload.Keys.generate()
    config_path = Path(tmp.name, "bench-community.yaml")
    config_path.write_text(workload.community_yaml(community, keys))
    launcher = WorkerLauncher.detect(
        args.worker, bootstrap=bootstrap, config_path=str(config_path),
        batch_size=args.batch_size, linger_ms=args.linger_ms, retry_backoff_ms=args.retry_backoff_ms,
        worker_linger_ms=args.worker_linger_ms,
    )  # fmt: skip
    say(f"worker under test: {launcher.describe()}")
    if launcher.kind == "cli" and "config" not in launcher.run_help.lower():
        if not os.environ.get("DATABASE_URL"):
            raise SystemExit("bench: the worker needs DATABASE_URL (no --config option)")
        for cmd in (["db", "migrate"], ["config", "apply", str(config_path)]):
            r = subprocess.run([*CLI, *cmd], capture_output=True, text=True, cwd=ROOT)
            if r.returncode != 0:
                raise SystemExit(f"bench: identity-worker {' '.join(cmd)} failed: {r.stderr.strip()}")

    mix_spec = workload.WorkloadSpec(args.events, args.hs_share, args.repeat_share, args.invalid_share)
    unique_spec = workload.WorkloadSpec(args.events, 1.0, 0.0, 0.0, seed=7)
    repeat_spec = workload.WorkloadSpec(args.events, 1.0, 0.9, 0.0, seed=8)
    t0 = time.time()
    mix = workload.build(mix_spec, community, keys)
    unique = workload.build(unique_spec, community, keys)
    repeat = workload.build(repeat_spec, community, keys)
    rs256 = workload.rs256_only(mix, community, args.events)  # the mix's RS256 tokens, re-enveloped
    say(f"generated workloads in {time.time() - t0:.1f} s; mix: {mix.kinds}; RS256 only: {len(rs256.values)}")
    pem_path = Path(tmp.name, "rs256-public.pem")
    pem_path.write_text(keys.public_pem)

    # Fresh topics: one raw topic per workload, fresh output topics per scenario.
    data = {"mix": mix, "unique": unique, "repeat": repeat, "rs256": rs256}
    raw_topics = {name: f"{prefix}.{name}.identity.raw" for name, work in data.items() if work.values}
    scenarios = [
        ("mix", "mix", "exactly_once", 1, mix_spec.label() + ", exactly-once, 1 process"),
        ("unique", "unique", "exactly_once", 1, "unique HS256 tokens, exactly-once, 1 process"),
        ("repeat90", "repeat", "exactly_once", 1, "90% repeated HS256 tokens, exactly-once, 1 process"),
        ("rs256", "rs256", "exactly_once", 1, "unique RS256 tokens (the mix's), exactly-once, 1 process"),
        ("unique-p2", "unique", "exactly_once", 2, "unique HS256 tokens, exactly-once, --processes 2"),
        ("unique-alo", "unique", "at_least_once", 1, "unique HS256 tokens, at-least-once, 1 process"),
    ]
    selected = {"unique-p2": "p2", "unique-alo": "alo"}
    scenarios = [s for s in scenarios if wanted(selected.get(s[0], s[0])) and s[1] in raw_topics]
    # The floor reference (issue 24) runs over each workload a 1-process exactly-once scenario used.
    floors = [d for d in ("mix", "unique", "repeat", "rs256") if wanted("floor") and d in raw_topics]
    floors = [d for d in floors if any(s[1] == d and s[3] == 1 and s[2] == "exactly_once" for s in scenarios)]
    paced_topics = kafka_io.Topics.fresh(f"{prefix}.paced")
    names = list(raw_topics.values())
    for s in scenarios:
        t = kafka_io.Topics.fresh(f"{prefix}.{s[0]}")
        names += t.outputs
    names += [f"{prefix}.passthrough.copy", paced_topics.raw, *paced_topics.outputs]
    names += [f"{prefix}.floor-{d}.{outcome}" for d in floors for outcome in ("enriched", "rejected")]
    try:
        await kafka_io.create_topics(bootstrap, names, args.partitions, topic_configs(args))
    except KafkaConnectionError as exc:  # a missing stack: one line, exit 1
        raise SystemExit(f"bench: no Kafka broker at {bootstrap} ({exc}); start it: make stack-up") from None
    await asyncio.sleep(1.0)  # let the partition leaders settle before producing
    say(f"created {len(names)} topics {prefix}.* with {args.partitions} partitions")
    for name, topic in raw_topics.items():
        await kafka_io.produce_backlog(bootstrap, topic, data[name].values)
    say(f"produced the raw events to {', '.join(raw_topics.values())}")

    timeout = max(120.0, args.events / 200)
    backlog: list[BacklogResult] = []
    problems: list[str] = []

    def check(result: BacklogResult, data_name: str | None) -> None:
        work = data[data_name] if data_name else unique
        found = floor_report.output_problems(
            asdict(result), len(work.values), len(work.good_tokens) if data_name else None
        )
        for problem in found:
            say(f"WRONG OUTPUT: {problem}")
        problems.extend(found)

    for name, data_name, guarantee, processes, description in scenarios:
        t = kafka_io.Topics.fresh(f"{prefix}.{name}")
        topics = kafka_io.Topics(raw_topics[data_name], t.enriched, t.rejected, t.dlq, t.passthrough)
        argv, env = launcher.command(topics, f"{prefix}-{name}", guarantee, processes)
        expected = len(data[data_name].values)
        result = await backlog_run(
            name, description, bootstrap, topics, expected, argv, env, topics.outputs, timeout
        )
        backlog.append(result)
        check(result, data_name)
        if data_name in floors:  # right after the worker, so drift of the machine hits both alike
            floors.remove(data_name)
            out = f"{prefix}.floor-{data_name}"
            fl_env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT)]))
            fl_argv = [
                sys.executable, "-m", "kbench.floor", "--bootstrap", bootstrap,
                "--input", raw_topics[data_name], "--output", out, "--group", f"{out}-group",
                "--public-pem", str(pem_path),
                "--batch-size", str(args.batch_size), "--linger-ms", str(args.linger_ms),
                "--partitions", str(args.partitions), "--retry-backoff-ms", str(args.retry_backoff_ms),
            ]  # fmt: skip
            result = await backlog_run(
                f"floor-{data_name}", f"floor reference (lean consumer→verify→producer, EOS), {data_name}",
                bootstrap, topics, expected, fl_argv, fl_env, [f"{out}.enriched", f"{out}.rejected"], timeout,
            )  # fmt: skip
            backlog.append(result)
            check(result, data_name)

    # References, same run, same machine.
    say("reference: pass-through consumer→transactional producer over the unique-HS256 raw records")
    copy_topic = f"{prefix}.passthrough.copy"
    pt_env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT)]))
    pt_argv = [
        sys.executable, "-m", "kbench.relay", "--mode", "passthrough", "--bootstrap", bootstrap,
        "--input", raw_topics["unique"], "--output", copy_topic, "--group", f"{prefix}-passthrough",
        "--guarantee", "exactly_once", "--batch-size", str(args.batch_size),
        "--linger-ms", str(args.linger_ms), "--retry-backoff-ms", str(args.retry_backoff_ms),
    ]  # fmt: skip
    pt = await backlog_run(
        "passthrough", "pass-through aiokafka consumer→producer, exactly-once batches, no verification",
        bootstrap, kafka_io.Topics.fresh("unused"), args.events, pt_argv, pt_env, [copy_topic], timeout,
    )  # fmt: skip
    backlog.append(pt)
    check(pt, None)
    say("reference: bare jwt.decode loop")
    jwt_cpu = jwt_decode_reference(unique.good_tokens, keys)
    jwt_cpu_mix = jwt_decode_reference(mix.good_tokens, keys) if mix.good_tokens else float("nan")
    say(f"jwt.decode: {jwt_cpu * 1e6:.1f} µs CPU/token (unique HS256), {jwt_cpu_mix * 1e6:.1f} µs (mix)")

    rsa_cpu = hs_cpu = None
    if rs256.good_tokens:
        rsa_cpu = floor_report.rsa_verify_cpu([t for t, _ in rs256.good_tokens[:2000]], keys.public_rsa)
    hs_cpu = floor_report.hmac_cpu([t for t, _ in unique.good_tokens[:5000]], workload.HMAC_SECRET.encode())
    say(f"primitives: HMAC-SHA256 {hs_cpu * 1e6:.2f} µs, RSA-2048 verify "
        f"{rsa_cpu * 1e6 if rsa_cpu else float('nan'):.1f} µs CPU/token")  # fmt: skip

    by = {r.name: r for r in backlog}
    max_tp = by["mix"].throughput if "mix" in by else (by["unique"].throughput if "unique" in by else 1000.0)
    if args.max_throughput is not None:
        max_tp = args.max_throughput
    paced: list[PacedResult] = []
    if wanted("paced"):
        rates = [max(20.0, float(f) * max_tp) for f in args.loads.split(",")]
        if not any(abs(r - max_tp / 2) < 1e-6 for r in rates):
            rates.append(max_tp / 2)
        rates.sort()
        argv, env = launcher.command(paced_topics, f"{prefix}-paced", "exactly_once", 1)
        say(f"paced loads (events/s): {', '.join(f'{r:,.0f}' for r in rates)}, {args.phase_seconds:g} s each")
        paced = await paced_runs(
            bootstrap, paced_topics, mix.values, rates, args.phase_seconds, argv, env, parts=args.delay_parts
        )
        problems += [
            f"paced {p.offered:,.0f}/s: {p.received} of {p.sent} answered"
            for p in paced
            if p.received != p.sent
        ]

    targets = []
    if "unique" in by:
        u = by["unique"]
        targets.append(ratio_line(
            "(a) unique HS256: worker CPU/ev ÷ (jwt.decode + pass-through)",
            u.cpu_per_event / (jwt_cpu + pt.cpu_per_event), "<=", 1.3,
            f"{u.cpu_per_event * 1e6:.0f} µs ÷ ({jwt_cpu * 1e6:.0f} + {pt.cpu_per_event * 1e6:.0f}) µs",
        ))  # fmt: skip
        # Throughput ratios: (scenario, label, target, whether the scenario is the numerator).
        for key, label, target, numerator in (
            ("repeat90", "(b) 90% repeated ÷ unique throughput", 3, True),
            ("unique-p2", "(c) --processes 2 ÷ 1 process throughput", 1.6, True),
            ("unique-alo", "(d) exactly-once ÷ at-least-once throughput", 0.8, False),
        ):
            if key in by:
                top, bottom = (by[key], u) if numerator else (u, by[key])
                targets.append(ratio_line(
                    label, top.throughput / bottom.throughput, ">=", target,
                    f"{top.throughput:,.0f} ÷ {bottom.throughput:,.0f} ev/s",
                ))  # fmt: skip
    if paced:
        half = min(paced, key=lambda p: abs(p.offered - max_tp / 2))
        targets.append(ratio_line(
            "(d) p99 delay (ms) at half of max throughput, exactly-once", half.p99_ms, "<=", 250,
            f"offered {half.offered:,.0f}/s = half of {max_tp:,.0f}/s",
        ))  # fmt: skip

    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "worker": launcher.describe(),
        "machine": machine,
        "loadavg_at_end": os.getloadavg(),
        "mix_label": mix_spec.label(),
        "partitions": args.partitions,
        "batch_size": args.batch_size,
        "backlog": [asdict(r) for r in backlog],
        "references": {
            "jwt_decode_cpu": jwt_cpu,
            "jwt_tokens": len(unique.good_tokens),
            "jwt_decode_cpu_mix": jwt_cpu_mix,
            "jwt_tokens_mix": len(mix.good_tokens),
            "passthrough_cpu": pt.cpu_per_event,
            "passthrough_throughput": pt.throughput,
        },
        "max_throughput": max_tp,
        "paced": [asdict(p) for p in paced],
        "targets": targets,
        "primitives": {"hmac_sha256_cpu": hs_cpu, "rsa_verify_cpu": rsa_cpu},
        "problems": problems,
    }
    rows = floor_report.floor_rows({r.name: asdict(r) for r in backlog}, rsa_cpu)
    delays = floor_report.delay_rows(report["paced"], max_tp)
    report["floor"] = {"rows": rows, "delays": delays, "markdown": floor_report.markdown(rows, delays)}
    tmp.cleanup()
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    report = asyncio.run(amain(args))
    report["wall_seconds"] = time.time() - started
    print_report(report)
    print(
        f"\nIssue 24 targets (CPU time of the processes; load = 1-min load average at each run's start; "
        f"max rate = the mix's {report['max_throughput']:,.0f} ev/s):\n"
    )
    print(report["floor"]["markdown"])
    if report["paced"]:
        plot(report, Path(args.plot))
        say(f"plot written to {args.plot}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    say(f"figures written to {args.json}; total {report['wall_seconds']:.0f} s")
    if report["problems"]:
        for problem in report["problems"]:
            say(f"FAILED: {problem}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
