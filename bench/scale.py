"""A platform's worth of tenants (DESIGN §12, T1–T6): the real worker with N communities.

    eval "$(deploy/local/stack up)"
    .venv/bin/python bench/scale.py --sizes 1000,10000,100000     # `make bench-scale`

For each N, on a database and topics of its own:
  1. builds N communities (require mode, HS256 keys k1 and k2, 1 in 10 also an RS256 key, 2
     custom fields with regexes, 3 mappings) through the public paths: `config apply` of a
     generated file (timed, with its CPU), then of the same file with one community changed
     (T4: ≤ 5 s); times `config export`; starts `admin serve` and times --api-creates
     communities created by POST and pages of the listing (first, after a cursor, a prefix
     search; T5: ≤ 100 ms);
  2. starts `identity-worker run` on that store with the safety-net refresh every
     --refresh seconds: start-up = process start → "worker ready"; RSS sampled throughout;
  3. a steady stream (--rate events/s for --seconds) spread over all N communities, each event a
     fresh HS256 token; a third of the way in, a NOTIFY '*' forces a full read (what a lost
     LISTEN connection causes); key removals (`keys remove --force`, the public path) during
     that read and elsewhere, each followed by tokens of the removed key until one is refused.
     C2 "applied" = the worker's log line for that community − when the removal's notification
     reached the bench's own LISTEN connection (the worker's share); "refusal seen" = first
     refused output read back − the command's end (adds Kafka and the output's transaction);
  4. CPU per event (the worker's process, /proc) over a backlog of --backlog events spread over
     all N communities, then the same backlog on one community (T6's ratio), --cpu-windows times
     each, the median of each kind (bench/scale_cpu.py says how it is read);
  5. from /metrics: the longest event-loop pause (T1) and the usage rows written per second.
--cpu-only runs steps 1 (`config apply` only), 2 and 4; --code runs another tree's worker.
Delay = output seen by a read_committed consumer − the input's timestamp; "near" a read = sent
while a full or periodic read logged by the worker ran (±0.5 s), "far" = the others.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402
from kbench import kafka_io  # noqa: E402
from kbench.procstat import tree_cpu  # noqa: E402
from kbench.runs import percentile, start_worker, stop_process  # noqa: E402
from scale_cpu import cpu_per_event  # noqa: E402

from worker.core.keys import sign_token  # noqa: E402
from worker.devtools import examples  # noqa: E402
from worker.devtools.demo import free_port  # noqa: E402
from worker.kafka.security import client_options  # noqa: E402

CLI = [sys.executable, "-m", "worker.cli.main"]
#: The source tree whose worker and commands run (--code: another commit's worktree, to compare).
CODE = ROOT
FIELDS = (("customer_id", "Customer ID", "C[0-9]{6}"), ("region", "Region", "[A-Z]{2}"))
MAPPINGS = (
    ("extra_values.customer_id", "custom_fields.customer_id"),
    ("extra_values.region", "custom_fields.region"),
    ("uuid", "identity_group.notes"),
)


def say(text: str) -> None:
    print(f"scale: {text}", file=sys.stderr, flush=True)


def cid(i: int) -> str:
    return f"c{i:06d}"


def secret(i: int, kid: str) -> str:
    return f"{i + (0 if kid == 'k1' else 10**12):024x}"


# ------------------------------------------------------------------------------ the store


def cli(db: str, *args: str, timeout: float = 3600) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.monotonic()
    env = {**os.environ, "DATABASE_URL": db}
    done = subprocess.run([*CLI, *args], env=env, cwd=CODE, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise SystemExit(f"scale: `identity-worker {' '.join(args)}` failed: {done.stderr.strip()[-500:]}")
    return time.monotonic() - started, done


def config_yaml(n: int, pem: str) -> str:
    lines = ["communities:"]
    rsa = "".join(f"\n          {line}" for line in pem.strip().splitlines())
    for i in range(n):
        lines += [f"  - id: {cid(i)}", "    signed_identities: require", "    jwt_keys:"]
        lines += [f"      - kid: {kid}\n        hmac_secret: '{secret(i, kid)}'" for kid in ("k1", "k2")]
        if i % 10 == 0:
            lines.append(f"      - kid: r1\n        rsa_public_key: |{rsa}")
        lines.append("    custom_fields:")
        lines += [
            f"      - key: {k}\n        label: {label}\n        regex: '{rx}'" for k, label, rx in FIELDS
        ]
        lines.append("    mappings:")
        lines += [f"      - from: {s}\n        to: {t}" for s, t in MAPPINGS]
    return "\n".join(lines) + "\n"


def children_cpu() -> float:
    """CPU seconds of this process's ended children (the commands run so far)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_changed(text: str, i: int) -> str:
    """The file with community i's `region` field relabelled: a file that changes one community."""
    at = text.index(f"  - id: {cid(i)}\n")
    label = text.index("label: Region\n", at)
    return text[:label] + "label: Area\n" + text[label + len("label: Region\n") :]


async def build(db: str, n: int, args: argparse.Namespace, label: str) -> dict[str, Any]:
    """N communities through the public paths (T4, T5): `config apply` of a generated file (new
    communities), the same file with one community changed, `config export`; then the admin
    API: --api-creates communities created one request each, and pages of the listing timed
    (the first, one after a cursor, a prefix search)."""
    row: dict[str, Any] = {}
    path = HERE / "results" / f"{label}.yaml"
    path.parent.mkdir(exist_ok=True)
    text = config_yaml(n, examples.public_pem())
    path.write_text(text)
    try:
        cpu = children_cpu()
        row["apply_s"], _ = cli(db, "config", "apply", str(path))
        row["apply_cpu_s"], cpu = children_cpu() - cpu, children_cpu()
        say(f"N={n}: config apply of {n} new communities: {row['apply_s']:.1f} s")
        path.write_text(one_changed(text, n // 2))
        del text
        row["apply_one_s"], done = cli(db, "config", "apply", str(path))
        row["apply_one_cpu_s"] = children_cpu() - cpu
        assert "applied: 0 added, 1 changed, 0 removed" in done.stdout, done.stdout
    finally:
        path.unlink(missing_ok=True)
    if args.cpu_only:
        return row
    try:
        row["export_s"] = (
            cli(db, "config", "export", "-o", os.devnull, timeout=args.export_timeout)[0]
            if args.export_timeout > 0
            else float("nan")
        )
    except subprocess.TimeoutExpired:
        row["export_s"] = float("inf")
    row.update(await api_figures(db, n, args.api_creates))
    return row


async def api_figures(db: str, n: int, creates: int) -> dict[str, Any]:
    """The admin API on this store: `creates` communities by POST (seconds each, p50 / max),
    and page latency (T5: ≤ 100 ms): 10 times each of the first page, the page after it (a
    cursor) and a prefix search (and the page after it), 100 rows each; p50 / max over all."""
    import httpx

    _, made = cli(db, "admin", "token", "create", "scale-bench", "--platform")
    token = made.stdout.strip()
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db}
    server = subprocess.Popen(
        [*CLI, "admin", "serve", "--port", str(port)], env=env, cwd=CODE,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as api:
            for _ in range(300):
                try:
                    if (await api.get(f"{base}/communities", params={"limit": 1})).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            created = []
            for k in range(creates):
                body = {"id": f"api{k:04d}", "signed_identities": "require"}
                body["jwt_keys"] = [{"kid": "k1", "hmac_secret": secret(10**9 + k, "k1")}]
                started = time.monotonic()
                answer = await api.post(f"{base}/communities", json=body)
                created.append(time.monotonic() - started)
                assert answer.status_code == 201, answer.text
            pages = []
            prefix = cid(n // 2)[:-3] if n >= 2000 else "c"  # 1 000 ids in the middle of the store
            for _ in range(10):
                for params in ({"limit": 100}, {"limit": 100, "prefix": prefix}):
                    started = time.monotonic()
                    page = await api.get(f"{base}/communities", params=params)
                    pages.append(time.monotonic() - started)
                    assert page.status_code == 200 and page.json()["items"], page.text
                    if page.json()["next"] is None:
                        continue
                    started = time.monotonic()
                    cursor = {**params, "after": page.json()["next"]}
                    after = await api.get(f"{base}/communities", params=cursor)
                    pages.append(time.monotonic() - started)
                    assert after.status_code == 200, after.text
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {
        "api_create_s": [percentile(created, 50), max(created, default=float("nan"))],
        "page_s": [percentile(pages, 50), max(pages)],
    }


async def fresh_database(admin_url: str, name: str) -> str:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return admin_url.rsplit("/", 1)[0] + "/" + name


# ------------------------------------------------------------------------------ events


def event(key: str, community: str, token: str) -> bytes:
    value = {
        "event_id": key,
        "community_id": community,
        "received_at": datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "gateway": {"name": "scale"},
        "signed_identity": token,
    }
    return json.dumps(value, separators=(",", ":")).encode()


def token(i: int, kid: str, n: int) -> str:
    now = int(time.time())
    claims = {
        "uuid": f"v-{n}",
        "exp": now + 4 * 3600,
        "extra_values": {"customer_id": f"C{n % 1000000:06d}", "region": "FR"},
    }
    return sign_token(claims, secret(i, kid).encode(), "HS256", kid)


class Outputs:
    """A read_committed consumer of the enriched and rejected topics: key → (seen at, topic)."""

    def __init__(self, bootstrap: str, topics: kafka_io.Topics) -> None:
        self.seen: dict[str, tuple[float, str]] = {}
        self._consumer = AIOKafkaConsumer(
            topics.enriched, topics.rejected, topics.dlq, **client_options(bootstrap),
            isolation_level="read_committed", auto_offset_reset="earliest", group_id=None,
            enable_auto_commit=False, fetch_max_wait_ms=20,
        )  # fmt: skip
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for record in self._consumer:
            self.seen[record.key.decode()] = (time.time(), record.topic.rsplit(".", 1)[-1])

    async def wait_for(self, keys: list[str], timeout: float) -> None:
        deadline = time.time() + timeout
        while any(k not in self.seen for k in keys) and time.time() < deadline:
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self._consumer.stop()


# ------------------------------------------------------------------------------ the worker


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            try:
                text = Path(f"/proc/{self.pid}/status").read_text()
            except OSError:
                return
            match = re.search(r"VmRSS:\s+(\d+) kB", text)
            if match:
                self.peak = max(self.peak, int(match[1]) * 1024)


def start_code(label: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
    """`identity-worker run` from the --code tree (`start_worker` runs this tree's), its stderr
    in bench/results/<label>-worker.stderr.log."""
    log = HERE / "results" / f"{label}-worker.stderr.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen([*CLI, "run"], env=env, cwd=CODE, stdout=subprocess.DEVNULL, stderr=sink)
    return proc, log


def log_events(log: Path) -> list[dict[str, Any]]:
    found = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def stamp(entry: dict[str, Any]) -> float:
    return datetime.fromisoformat(entry["timestamp"]).timestamp()


def held_after(log: Path, since: float) -> float:
    """The longest pause the worker's loop spent computing after `since` (its T1 warning lines;
    each such pause over 50 ms is logged; 0.0: none over 50 ms)."""
    return max(
        (
            float(e.get("computing_seconds", 0.0))
            for e in log_events(log)
            if str(e.get("event", "")).startswith("event loop paused") and stamp(e) >= since
        ),
        default=0.0,
    )


def metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    match = re.search(rf"^{name}(?:_total)? ([0-9.e+-]+)$", text, re.M)
    return float(match[1]) if match else float("nan")


async def removal_probe(
    db: str,
    i: int,
    producer: AIOKafkaProducer,
    topics: kafka_io.Topics,
    outputs: Outputs,
    label: str,
    notified: dict[str, float],
) -> tuple[float, float, int]:
    """`keys remove` of community i's k2, then its tokens until one is refused: (when the removal's
    notification reached this process's own LISTEN connection, i.e. its commit as the worker
    can first know it; seconds from the command's end to the first refusal seen; i)."""
    notified.pop(cid(i), None)
    await asyncio.to_thread(cli, db, "keys", "remove", cid(i), "k2", "--force")
    ended = time.time()
    while cid(i) not in notified and time.time() - ended < 10:
        await asyncio.sleep(0.01)
    removed = notified.get(cid(i), ended)
    return removed, await first_refusal(i, ended, producer, topics, outputs, label), i


async def first_refusal(
    i: int, removed: float, producer: AIOKafkaProducer, topics: kafka_io.Topics, outputs: Outputs, label: str
) -> float:
    sent = []
    while time.time() - removed < 15:
        key = f"p-{label}-{len(sent)}"
        sent.append(key)
        await producer.send(topics.raw, event(key, cid(i), token(i, "k2", len(sent))), key=key.encode())
        await asyncio.sleep(0.02)
        refused = [outputs.seen[k][0] for k in sent if k in outputs.seen and outputs.seen[k][1] == "rejected"]
        if refused:
            return min(refused) - removed
    return float("inf")


async def run_size(n: int, args: argparse.Namespace, admin_url: str, bootstrap: str) -> dict[str, Any]:
    label = f"scale{n}-{int(time.time())}"
    db = await fresh_database(admin_url, label.replace("-", "_"))
    cli(db, "db", "migrate")
    row: dict[str, Any] = {"n": n, "load": os.getloadavg()[0]}
    row.update(await build(db, n, args, label))
    row["load_built"] = os.getloadavg()[0]
    say(f"N={n}: built ({row})")

    topics = kafka_io.Topics.fresh(label)
    await kafka_io.create_topics(bootstrap, [topics.raw, *topics.outputs], 4)
    port = free_port()
    env = {
        **os.environ, "DATABASE_URL": db, "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "IDENTITY_WORKER_INPUT_TOPIC": topics.raw, "IDENTITY_WORKER_ENRICHED_TOPIC": topics.enriched,
        "IDENTITY_WORKER_REJECTED_TOPIC": topics.rejected, "IDENTITY_WORKER_DLQ_TOPIC": topics.dlq,
        "IDENTITY_WORKER_GROUP_ID": label, "IDENTITY_WORKER_METRICS_PORT": str(port),
        "IDENTITY_WORKER_CONFIG_REFRESH_SECONDS": str(args.refresh), "IDENTITY_WORKER_LOG_LEVEL": "info",
    }  # fmt: skip
    outputs = Outputs(bootstrap, topics)
    await outputs.start()
    notified: dict[str, float] = {}  # community id -> when its first notification reached us
    listener = await asyncpg.connect(db)
    await listener.add_listener(
        "identity_config", lambda conn, pid, channel, payload: notified.setdefault(payload, time.time())
    )
    producer = AIOKafkaProducer(**client_options(bootstrap), linger_ms=5)
    await producer.start()
    started = time.time()
    proc, log = start_worker(label, [*CLI, "run"], env) if CODE == ROOT else start_code(label, env)
    rss = RssSampler(proc.pid)
    rss.start()
    try:
        while not any(e.get("event") == "worker ready" for e in log_events(log)):
            if proc.poll() is not None or time.time() - started > 300:
                raise SystemExit(f"scale: the worker did not start; see {log}")
            await asyncio.sleep(0.2)
        ready = stamp(next(e for e in log_events(log) if e.get("event") == "worker ready"))
        row["startup_s"] = ready - started
        row["startup_cpu_s"] = tree_cpu(proc.pid)  # what start-up costs without other load
        row["rss_ready_mib"] = rss.peak / 2**20
        warm = [f"w-{k}" for k in range(20)]
        for k in warm:
            await producer.send(topics.raw, event(k, cid(0), token(0, "k1", 0)), key=k.encode())
        await outputs.wait_for(warm, 120)

        if not args.cpu_only:  # 3. the steady stream, spread; a full read a third of the way; removals
            total = int(args.rate * args.seconds)
            sent: dict[str, float] = {}
            probes: list[tuple[str, asyncio.Task[float]]] = []
            begin = time.time()
            for k in range(total):
                due = begin + k / args.rate
                if due - time.time() > 0.002:
                    await asyncio.sleep(due - time.time())
                i = (k * 7919) % n
                key = f"s-{k}"
                sent[key] = time.time()
                await producer.send(topics.raw, event(key, cid(i), token(i, "k1", k)), key=key.encode())
                if k == total // 3:
                    conn = await asyncpg.connect(db)
                    await conn.execute("SELECT pg_notify('identity_config', '*')")
                    await conn.close()
                    args_probe = (db, n - 1, producer, topics, outputs, "during-full-read", notified)
                    probes.append(("during full read", asyncio.create_task(removal_probe(*args_probe))))
                if k in (total // 6, (2 * total) // 3, (5 * total) // 6):
                    j = n - 2 - len(probes)
                    probes.append(
                        (
                            "elsewhere",
                            asyncio.create_task(
                                removal_probe(db, j, producer, topics, outputs, f"x{k}", notified)
                            ),
                        )
                    )
            await outputs.wait_for(list(sent), 120)
            for _ in range(1500):  # the forced full read's end (its line says how long it took)
                if any(e.get("event") == "config_loaded" and stamp(e) > begin for e in log_events(log)):
                    break
                await asyncio.sleep(0.2)
            row["c2_s"], row["c2_applied_s"] = {}, {}
            for what, task in probes:
                removed, seen, i = await task
                applied = [
                    stamp(e) for e in log_events(log)
                    if e.get("event") == "config_community_reloaded" and e.get("community_id") == cid(i)
                ]  # fmt: skip
                row["c2_s"][what] = max(row["c2_s"].get(what, 0.0), seen)
                late = min(applied, default=float("inf")) - removed
                row["c2_applied_s"][what] = max(row["c2_applied_s"].get(what, 0.0), late)
            reads = [
                (stamp(e) - float(e.get("seconds", 0)) - 0.5, stamp(e) + 0.5)
                for e in log_events(log)
                if e.get("event") in ("config_loaded", "config_refreshed") and stamp(e) > begin
            ]
            near, far = [], []
            for key, at in sent.items():
                if key not in outputs.seen:
                    continue
                delay = outputs.seen[key][0] - at
                (near if any(a <= at <= b for a, b in reads) else far).append(delay)
            row["delay_near"] = [percentile(near, 50), percentile(near, 99), max(near, default=float("nan"))]
            row["delay_far"] = [percentile(far, 50), percentile(far, 99), max(far, default=float("nan"))]
            row["lost"] = sum(1 for k in sent if k not in outputs.seen)
            full = [e for e in log_events(log) if e.get("event") == "config_loaded" and stamp(e) > begin]
            row["full_read_s"] = float(full[-1]["seconds"]) if full else float("nan")
            row["loop_pause_max_s"] = metric(port, "identity_worker_event_loop_lag_max_seconds")
            row["loop_held_max_s"] = metric(port, "identity_worker_event_loop_held_max_seconds")
            row["loop_held_after_ready_s"] = held_after(log, ready + 1.0)

        # 4. CPU per event: backlogs spread over all N and on a single community (bench/scale_cpu.py)
        async def send(key: str, value: bytes) -> None:
            await producer.send(topics.raw, value, key=key.encode())

        row.update(
            await cpu_per_event(
                pid=proc.pid, n=n, backlog=args.backlog, windows=args.cpu_windows, flush=args.flush,
                make_event=lambda key, i, k: event(key, cid(i), token(i, "k1", k)), send=send,
                seen=outputs.seen, wait_for=outputs.wait_for,
                rows_written=lambda: metric(port, "identity_worker_usage_rows_written"),
            )
        )  # fmt: skip
        row["rss_peak_mib"] = rss.peak / 2**20
        row["load_end"] = os.getloadavg()[0]
    finally:
        rss.stop.set()
        await listener.close()
        await producer.stop()
        await outputs.stop()
        stop_process(proc, log)
    say(f"N={n}: {json.dumps(row, default=str)}")
    return row


def fmt(x: float, unit: str = "", digits: int = 2) -> str:
    if x != x:
        return "—"
    return "∞" if x == float("inf") else f"{x:.{digits}f}{unit}"


COLUMNS = (
    "N", "load", "apply: new / one change (their CPU)", "export", "API: create p50 / page p50, max",
    "start-up (its CPU)", "RSS ready / peak",
    "longest loop pause (computing; computing after ready + 1 s)", "full read",
    "delay near reads p50/p99/max",
    "delay elsewhere p50/p99/max", "C2 applied / refusal seen, during a full read",
    "C2 applied / refusal seen, elsewhere", "CPU/event spread / one (ratio; median of windows, ns reading)",
    "first window spread / one (ticks reading)", "count rows/s spread / one",
)  # fmt: skip


def cpu_cell(r: dict[str, Any]) -> str:
    """T6: the medians of the windows, read in nanoseconds (bench/scale_cpu.py)."""
    return f"{r['cpu_spread_us']:.1f} / {r['cpu_one_us']:.1f} µs ({r['cpu_spread_us'] / r['cpu_one_us']:.2f})"


def first_window_cell(r: dict[str, Any]) -> str:
    """The first window of each kind read in clock ticks: the bench's first-version figure."""
    if "cpu_first_window_ticks_us" not in r:  # a row of the first version
        return "—"
    spread, one = r["cpu_first_window_ticks_us"]
    return f"{spread:.0f} / {one:.0f} µs ({spread / one:.2f})"


def cells(r: dict[str, Any]) -> list[str]:
    build = (
        f"{fmt(r['apply_s'], ' s', 1)} / {fmt(r['apply_one_s'], ' s', 1)} "
        f"({fmt(r['apply_cpu_s'], ' s', 1)} / {fmt(r['apply_one_cpu_s'], ' s', 1)})"
    )
    api = (
        f"{fmt(r['api_create_s'][0] * 1000, ' ms', 0)} / "
        f"{fmt(r['page_s'][0] * 1000, '', 0)}, {fmt(r['page_s'][1] * 1000, ' ms', 0)}"
    )
    c2, applied = r["c2_s"], r["c2_applied_s"]
    startup = f"{fmt(r['startup_s'], ' s', 1)} ({fmt(r.get('startup_cpu_s', float('nan')), ' s', 1)})"
    after = r.get("loop_held_after_ready_s", float("nan"))
    after_text = "≤ 50 ms" if after == 0.0 else fmt(after * 1000, " ms", 0)
    pause = (
        f"{fmt(r['loop_pause_max_s'] * 1000, ' ms', 0)} ({fmt(r['loop_held_max_s'] * 1000, ' ms', 0)}; "
        f"after ready {after_text})"
    )
    return [
        f"{r['n']:,}", f"{r['load']:.1f}–{r.get('load_end', r['load']):.1f}", build,
        fmt(r["export_s"], " s", 1), api, startup,
        f"{r['rss_ready_mib']:.0f} / {r['rss_peak_mib']:.0f} MiB", pause, fmt(r["full_read_s"], " s", 1),
        " / ".join(fmt(v) for v in r["delay_near"]) + " s", " / ".join(fmt(v) for v in r["delay_far"]) + " s",
        f"{fmt(applied['during full read'])} / {fmt(c2['during full read'])} s",
        f"{fmt(applied['elsewhere'])} / {fmt(c2['elsewhere'])} s",
        cpu_cell(r), first_window_cell(r),
        f"{r['count_rows_spread_per_s']:.0f} / {r['count_rows_one_per_s']:.0f}",
    ]  # fmt: skip


def print_table(rows: list[dict[str, Any]]) -> None:
    if any("delay_far" not in r for r in rows):  # --cpu-only
        print(
            "| N | load | CPU/event spread / one (ratio) | windows spread; one (µs) | first window, ticks |"
        )
        print("|---|---|---|---|---|")
        for r in rows:
            windows = [
                " ".join(f"{w['us']:.1f}" for w in r["cpu_windows"] if w["kind"] == kind)
                for kind in ("spread", "one")
            ]
            print(
                f"| {r['n']:,} | {r['load']:.1f}–{r['load_end']:.1f} | {cpu_cell(r)} | {'; '.join(windows)} "
                f"| {first_window_cell(r)} |"
            )
        return
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for r in rows:
        print("| " + " | ".join(cells(r)) + " |")


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Start-up, RSS, the longest computing pause and C2 against N (log scale): docs/scale.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [r["n"] for r in rows]
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
    panels = (
        ("start-up to ready (s)", [r["startup_s"] for r in rows], 30.0),
        ("peak RSS (MiB)", [r["rss_peak_mib"] for r in rows], 1024.0),
        ("longest loop pause, computing (ms)", [r["loop_held_max_s"] * 1000 for r in rows], 50.0),
        ("C2: key removed → applied (s, max)", [max(r["c2_applied_s"].values()) for r in rows], 1.0),
    )
    for ax, (title, values, bound) in zip(axes, panels, strict=True):
        ax.plot(n, values, "o-")
        ax.axhline(bound, color="red", linestyle="--", linewidth=1, label="DESIGN §12 bound")
        ax.set_xscale("log")
        ax.set_xlabel("communities")
        ax.set_title(title, fontsize=9)
        ax.set_ylim(bottom=0)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,10000,100000", help="community counts, comma-separated")
    parser.add_argument("--rate", type=float, default=300.0, help="steady events/s")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the steady stream")
    parser.add_argument("--refresh", type=float, default=5.0, help="the worker's safety-net refresh, seconds")
    parser.add_argument("--backlog", type=int, default=10000, help="events of each CPU backlog")
    parser.add_argument(
        "--cpu-windows",
        type=int,
        default=3,
        help="backlogs of each kind (spread, one); the figure is their median",
    )
    parser.add_argument(
        "--cpu-only", action="store_true",
        help="only what step 4 needs: apply, the worker, CPU per event (no export, API, steady stream)",
    )  # fmt: skip
    parser.add_argument(
        "--flush", type=float, default=5.0, help="the worker's usage flush interval (default)"
    )
    parser.add_argument(
        "--api-creates", type=int, default=20, help="communities created through the admin API, timed"
    )
    parser.add_argument("--export-timeout", type=float, default=300.0, help="0: no `config export`")
    parser.add_argument(
        "--code", type=Path, default=ROOT,
        help="run the worker and the commands from this source tree (e.g. another commit's worktree)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, default=HERE / "results" / "scale.json")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "scale.png")
    parser.add_argument("--report-only", action="store_true", help="table and plot of --json; run nothing")
    args = parser.parse_args()
    global CODE
    CODE = args.code.resolve()
    if not (CODE / "worker" / "cli" / "main.py").is_file():
        raise SystemExit(f"scale: --code {args.code} holds no worker/cli/main.py")
    if args.report_only:
        rows = json.loads(args.json.read_text())
        print_table(rows)
        if all("delay_far" in r for r in rows):
            plot(rows, args.plot)
        return
    admin_url, bootstrap = os.environ.get("DATABASE_URL"), os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not admin_url or not bootstrap:
        raise SystemExit(
            'scale: set DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS (eval "$(deploy/local/stack up)")'
        )
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        raise SystemExit(f"scale: --sizes takes numbers separated by commas, not {args.sizes!r}") from None
    rows = []
    for n in sizes:
        rows.append(await run_size(n, args, admin_url, bootstrap))
        args.json.parent.mkdir(exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1, default=str))
    print_table(rows)
    if not args.cpu_only:
        plot(rows, args.plot)


if __name__ == "__main__":
    asyncio.run(main())
