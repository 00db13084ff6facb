"""Helpers of the Kafka worker tests: topics, events for every reason, worker processes,
and a read_committed reader that counts outputs by their input position (K1).

An input record is identified by its (partition, offset): every output carries it in
`source`, whatever the outcome — even a value that is not JSON.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import warnings
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.support.kafka import client_options, create_topics, worker_env
from tests.support.ports import free_port
from worker.core.times import format_time
from worker.devtools import examples
from worker.devtools.examples import HMAC_SECRET, OTHER_SECRET

CLI = [sys.executable, "-m", "worker.cli.main"]
RSA_KEY = examples.rsa_key()


# ------------------------------------------------------------------------------ topics


@dataclass(frozen=True)
class Topics:
    raw: str
    enriched: str
    rejected: str
    dlq: str

    @property
    def outputs(self) -> list[str]:
        return [self.enriched, self.rejected, self.dlq]

    def env(self) -> dict[str, str]:
        """The worker's environment variables naming these topics."""
        return {f"IDENTITY_WORKER_{name.upper()}": topic for name, topic in self.settings().items()}

    def settings(self) -> dict[str, str]:
        return {
            "input_topic": self.raw,
            "enriched_topic": self.enriched,
            "rejected_topic": self.rejected,
            "dlq_topic": self.dlq,
        }


async def new_topics(
    bootstrap: str, prefix: str, partitions: int, **configs: dict[str, str] | None
) -> Topics:
    """Fresh topics `<prefix>.raw|enriched|rejected|dlq`, visible once this returns; `configs`
    by role (raw, enriched, rejected, dlq): topic settings (e.g. `dlq={"max.message.bytes": …}`)."""
    topics = Topics(f"{prefix}.raw", f"{prefix}.enriched", f"{prefix}.rejected", f"{prefix}.dlq")
    await create_topics(
        bootstrap,
        {name: partitions for name in (topics.raw, *topics.outputs)},
        {getattr(topics, role): config or {} for role, config in configs.items()},
    )
    return topics


# ------------------------------------------------------------------------- the store


@dataclass(frozen=True)
class Store:
    url: str
    acme: str  # require mode: HS256 hs_1/hs_2, RS256 rs_1
    shop: str  # reject mode

    def env(self) -> dict[str, str]:
        return {**os.environ, "DATABASE_URL": self.url}


def community_yaml(require_id: str, reject_id: str) -> str:
    """`require_id`: HS256 + RS256 keys, a regex custom field, mappings, tokens valid at most a day
    (V9 expiry_too_far); `reject_id`: reject mode."""
    return examples.config_yaml(
        examples.community(
            require_id,
            max_validity_seconds=86400,
            hmac_keys={"hs_1": HMAC_SECRET, "hs_2": OTHER_SECRET},
            rsa_kid="rs_1",
            mappings=(examples.CUSTOMER_ID_MAPPING, examples.NOTES_MAPPING),
        ),
        examples.unsigned_community(reject_id),
    )


def own_store(url: str, prefix: str, folder: Path) -> Store:
    """Two communities of the caller's own (`<prefix>-acme-<suffix>`, `<prefix>-shop-<suffix>`,
    see `community_yaml`) in the database at `url`: migrated and applied with the real CLI."""
    suffix = uuid.uuid4().hex[:8]
    store = Store(url, f"{prefix}-acme-{suffix}", f"{prefix}-shop-{suffix}")
    config = folder / f"{store.acme}.yaml"
    config.write_text(community_yaml(store.acme, store.shop))
    cli("db", "migrate", env=store.env())
    cli("config", "apply", str(config), env=store.env())
    return store


def cli(*args: str, env: dict[str, str], stdin: str | None = None) -> str:
    result = subprocess.run([*CLI, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise AssertionError(
            f"identity-worker {' '.join(args)} failed ({result.returncode}): {result.stderr}"
        )
    return result.stdout


# ------------------------------------------------------------------------------ events


def sign(claims: dict[str, Any], key: Any = HMAC_SECRET, alg: str = "HS256", **header: Any) -> str:
    headers = {"typ": "JWT", **header}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return jwt.encode(claims, key, algorithm=alg, headers=headers)


def raw_event(event_id: str, community_id: str, now: float, **body: Any) -> bytes:
    value = {"event_id": event_id, "community_id": community_id, "received_at": format_time(now), **body}
    return json.dumps(value).encode()


@dataclass(frozen=True)
class Case:
    """One input and the output it must produce."""

    name: str
    value: bytes
    outcome: str  # enriched | rejected | dead_letter
    reason: str | None = None
    action: str | None = None


def every_reason(acme: str, shop: str, now: float) -> list[Case]:
    """At least one event for every outcome but dead_letter and every reason of DESIGN §2.3."""
    exp = int(now) + 7200
    good = {"uuid": "v-1", "firstname": "Ada", "email": "ada@example.com", "exp": exp}
    good_hs = sign({**good, "extra_values": {"customer_id": "C123456"}}, kid="hs_1")
    head, body, sig = good_hs.split(".")
    b64 = base64.urlsafe_b64encode

    def ev(name: str, **body: Any) -> bytes:
        return raw_event(name, acme, now, **body)

    def signed(name: str, token: str) -> bytes:
        return ev(name, signed_identity=token)

    def block(name: str, value: bytes, reason: str) -> Case:
        return Case(name, value, "rejected", reason, "block")

    bad_header = b64(json.dumps({"alg": "HS256", "typ": "JOSE+JSON", "kid": "hs_1"}).encode()).rstrip(b"=")
    return [
        Case("enriched-hs256", signed("enriched-hs256", good_hs), "enriched"),
        Case(
            "enriched-rs256", signed("enriched-rs256", sign(good, RSA_KEY, "RS256", kid="rs_1")), "enriched"
        ),
        Case(
            "enriched-unsigned",
            raw_event("enriched-unsigned", shop, now, identity={"uuid": "v-9", "firstname": "Grace"}),
            "enriched",
        ),
        block("malformed_event", b"\xff this is not JSON", "malformed_event"),
        block(
            "unknown_community",
            raw_event("unknown_community", "k5-ghost", now, identity={}),
            "unknown_community",
        ),
        block("signature_required", ev("signature_required", identity={"uuid": "v"}), "signature_required"),
        Case(
            "signed_identity_rejected",
            raw_event("signed_identity_rejected", shop, now, signed_identity=good_hs),
            "rejected",
            "signed_identity_rejected",
            "anonymous",
        ),
        block("malformed_token", signed("malformed_token", "abc.def"), "malformed_token"),
        block(
            "invalid_header",
            signed("invalid_header", f"{bad_header.decode()}.{body}.{sig}"),
            "invalid_header",
        ),
        block(
            "unsupported_algorithm",
            signed("unsupported_algorithm", sign(good, alg="HS512", kid="hs_1")),
            "unsupported_algorithm",
        ),
        block("missing_kid", signed("missing_kid", sign(good)), "missing_kid"),
        block("unknown_kid", signed("unknown_kid", sign(good, kid="hs_9")), "unknown_kid"),
        block(
            "algorithm_key_mismatch",
            signed("algorithm_key_mismatch", sign(good, RSA_KEY, "RS256", kid="hs_1")),
            "algorithm_key_mismatch",
        ),
        block(
            "invalid_signature",
            signed("invalid_signature", f"{head}.{body}.{sig[:-6]}AAAAAA"),
            "invalid_signature",
        ),
        block("missing_exp", signed("missing_exp", sign({"uuid": "v"}, kid="hs_1")), "missing_exp"),
        block(
            "invalid_exp",
            signed("invalid_exp", sign({"uuid": "v", "exp": "soon"}, kid="hs_1")),
            "invalid_exp",
        ),
        block(
            "token_expired",
            signed("token_expired", sign({"uuid": "v", "exp": int(now) - 600}, kid="hs_1")),
            "token_expired",
        ),
        block(
            "expiry_too_soon",
            signed("expiry_too_soon", sign({"uuid": "v", "exp": int(now) + 1800}, kid="hs_1")),
            "expiry_too_soon",
        ),
        block(
            "expiry_too_far",
            signed("expiry_too_far", sign({"uuid": "v", "exp": int(now) + 2 * 86400}, kid="hs_1")),
            "expiry_too_far",
        ),
        block(
            "token_not_yet_valid",
            signed("token_not_yet_valid", sign({**good, "nbf": int(now) + 3600}, kid="hs_1")),
            "token_not_yet_valid",
        ),
        block("missing_uuid", signed("missing_uuid", sign({"exp": exp}, kid="hs_1")), "missing_uuid"),
        block(
            "invalid_claims",
            signed("invalid_claims", sign({**good, "firstname": 42}, kid="hs_1")),
            "invalid_claims",
        ),
    ]


def signed_events(prefix: str, count: int, community_id: str = "acme") -> list[bytes]:
    """`count` valid signed events named `prefix-i` (one HS256 token, kid hs_1)."""
    now = time.time()
    token = sign({"uuid": "v", "exp": int(now) + 7200}, kid="hs_1")
    return [raw_event(f"{prefix}-{i}", community_id, now, signed_identity=token) for i in range(count)]


def communities_file(tmp: Path) -> Path:
    """`community_yaml("acme", "shop")` written to a file, for `run --config` (no store)."""
    config = tmp / "communities.yaml"
    config.write_text(community_yaml("acme", "shop"))
    return config


def stream_values(acme: str, count: int, now: float, *, unique_tokens: int = 1000) -> list[bytes]:
    """A load of mostly valid signed events (`unique_tokens` distinct tokens, repeats hit C4)."""
    tokens = [sign({"uuid": f"v-{i}", "exp": int(now) + 7200}, kid="hs_1") for i in range(unique_tokens)]
    values = []
    for i in range(count):
        if i % 50 == 7:
            values.append(raw_event(f"s-{i}", acme, now, identity={"uuid": "x"}))  # signature_required
        else:
            values.append(raw_event(f"s-{i}", acme, now, signed_identity=tokens[i % unique_tokens]))
    return values


async def produce(
    bootstrap: str,
    topic: str,
    items: Iterable[tuple[bytes | None, bytes | None, list[tuple[str, bytes]] | None]],
    *,
    partition: int | None = None,
) -> list[tuple[int, int]]:
    """Send (key, value, headers) items in order; returns their (partition, offset)."""
    producer = AIOKafkaProducer(
        **client_options(bootstrap), enable_idempotence=True, linger_ms=5, max_batch_size=256 * 1024
    )
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value, key=key, headers=headers, partition=partition)
            for key, value, headers in items
        ]
        sent = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [(meta.partition, meta.offset) for meta in sent]


async def produce_signed(
    bootstrap: str, topic: str, prefix: str, count: int, *, partition: int | None = None
) -> list[tuple[int, int]]:
    """`signed_events(prefix, count)` sent in order under the key `k`, no headers; returns
    their (partition, offset)."""
    return await produce(
        bootstrap, topic, [(b"k", v, None) for v in signed_events(prefix, count)], partition=partition
    )


# ------------------------------------------------------------------------------ outputs


@dataclass
class Outputs:
    """Committed outputs (read_committed) of the three output topics, by input position."""

    bootstrap: str
    topics: Topics
    records: list[tuple[str, Any, dict[str, Any]]] = field(default_factory=list)  # (topic, record, json)
    by_source: Counter[tuple[int, int]] = field(default_factory=Counter)
    _consumer: Any = None

    async def __aenter__(self) -> Outputs:
        consumer = AIOKafkaConsumer(
            **client_options(self.bootstrap),
            isolation_level="read_committed",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            group_id=None,
        )
        await consumer.start()
        partitions = []
        for topic in self.topics.outputs:
            for _ in range(50):
                found = consumer.partitions_for_topic(topic)
                if found:
                    break
                await consumer._client.force_metadata_update()
                await asyncio.sleep(0.1)
            partitions += [TopicPartition(topic, p) for p in found or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        self._consumer = consumer
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def poll(self, timeout_ms: int = 200) -> None:
        batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=5000)
        for tp, records in batches.items():
            for record in records:
                data = json.loads(record.value)
                self.records.append((tp.topic, record, data))
                source = data["source"]
                self.by_source[(source["partition"], source["offset"])] += 1

    async def wait_for(self, count: int, timeout: float, *, what: str = "outputs") -> float:
        """Poll until `count` distinct inputs have an output; returns when (monotonic)."""
        deadline = time.monotonic() + timeout
        while len(self.by_source) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{what}: {len(self.by_source)} of {count} inputs answered after {timeout} s"
                )
            await self.poll()
        return time.monotonic()

    async def settle(self, seconds: float) -> None:
        """Keep reading a while, to catch late duplicates."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await self.poll()

    def first_refusal_after_removal(self, sent: list[tuple[float, int]], removed: float) -> float:
        """C2/A6: `sent` holds (monotonic send time, input offset) of one partition's events, the
        first 3 sent before a key was removed at `removed`. Asserts those 3 were enriched and every
        event sent 1 s or more after the removal got `unknown_kid`; returns how long after the
        removal the first `unknown_kid` event was sent (s)."""
        verdict = {}
        for topic, _, data in self.records:
            source = data["source"]["offset"]
            verdict[source] = "accepted" if topic == self.topics.enriched else data.get("reason")
        assert [verdict[offset] for _, offset in sent[:3]] == ["accepted"] * 3
        late = [verdict[offset] for at, offset in sent[3:] if at >= removed + 1.0]
        assert late and set(late) == {"unknown_kid"}, late
        return min(at for at, offset in sent[3:] if verdict[offset] == "unknown_kid") - removed

    def check_exactly_once(self, inputs: Iterable[tuple[int, int]]) -> tuple[int, int]:
        """(lost, duplicated): inputs without an output, extra outputs (K1, K2)."""
        lost = len(set(inputs) - set(self.by_source))
        duplicated = sum(n - 1 for n in self.by_source.values() if n > 1)
        return lost, duplicated


async def refusal_after_key_removal(
    worker: WorkerProcess,
    bootstrap: str,
    topics: Topics,
    event: tuple[str, str],
    remove_key: Callable[[], Awaitable[None]],
) -> float:
    """C2, A6: once `worker` is ready, send 3 events (`event`: community id and a token signed
    with the key about to go) and wait for their outputs (now in the verified-token cache, C4);
    call `remove_key`, then send one event every 50 ms for 2 s; stop the worker (exit 0).
    Returns how long after the removal the first `unknown_kid` event was sent (s), asserting
    what `Outputs.first_refusal_after_removal` does."""
    community_id, token = event
    sent: list[tuple[float, int]] = []  # (monotonic send time, offset)

    async def send(name: str) -> None:
        value = raw_event(name, community_id, time.time(), signed_identity=token)
        [(_, offset)] = await produce(bootstrap, topics.raw, [(None, value, None)])
        sent.append((time.monotonic(), offset))

    try:
        async with Outputs(bootstrap, topics) as outputs:
            await wait_ready(worker)
            for i in range(3):
                await send(f"before-{i}")
            await outputs.wait_for(3, 60)
            await remove_key()
            removed = time.monotonic()
            while time.monotonic() < removed + 2.0:
                await send(f"after-{len(sent)}")
                await asyncio.sleep(0.05)
            await outputs.wait_for(len(sent), 60)
    finally:
        assert worker.stop() == 0, worker.tail()
    return outputs.first_refusal_after_removal(sent, removed)


# ----------------------------------------------------------------------- worker processes


@dataclass
class WorkerProcess:
    """`identity-worker run` as a child process, its stderr (JSON logs) in a file."""

    process: subprocess.Popen[bytes]
    log: Path
    metrics_port: int

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"worker did not stop within {timeout} s; log tail:\n{self.tail()}"
            ) from None

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def http(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}{path}", timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


def start_worker(
    tmp: Path,
    name: str,
    bootstrap: Any,
    database_url: str,
    topics: Topics,
    *,
    group: str | None = None,
    **settings: str,
) -> WorkerProcess:
    """`identity-worker run` on `topics` (group: `topics.raw` unless given), the store at
    `database_url`, `settings` as IDENTITY_WORKER_* variables; `bootstrap`: "host:port" or a
    `Bootstrap` of a secured listener. Wait for it with `wait_ready`."""
    port = free_port(int(settings.get("processes", "1")))  # member i listens on port + i (K7)
    env = {
        **os.environ,
        **worker_env(bootstrap),
        "DATABASE_URL": database_url,
        **topics.env(),
        "IDENTITY_WORKER_GROUP_ID": group or topics.raw,
        "IDENTITY_WORKER_METRICS_PORT": str(port),
        "IDENTITY_WORKER_SESSION_TIMEOUT_MS": "6000",
        "IDENTITY_WORKER_HEARTBEAT_INTERVAL_MS": "1000",
        "IDENTITY_WORKER_PROGRESS_INTERVAL_SECONDS": "2",
        **{f"IDENTITY_WORKER_{key.upper()}": value for key, value in settings.items()},
    }
    log = tmp / f"{name}.log"
    with log.open("wb") as err:
        process = subprocess.Popen([*CLI, "run"], env=env, stdout=subprocess.DEVNULL, stderr=err)
    return WorkerProcess(process, log, port)


async def wait_ready(worker: WorkerProcess, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            raise AssertionError(f"worker exited with {worker.process.returncode}:\n{worker.tail()}")
        with contextlib.suppress(OSError):
            status, _ = await asyncio.to_thread(worker.http, "/readyz")
            if status == 200:
                return
        await asyncio.sleep(0.2)
    raise AssertionError(f"worker not ready after {timeout} s:\n{worker.tail()}")


# ------------------------------------------------------------------- in-process worker


@contextlib.asynccontextmanager
async def in_process_worker(
    bootstrap: str, topics: Topics, config: Path | None = None, *, processor: Any = None, **overrides: Any
) -> Any:
    """The real runtime (`serve`) in this process, communities from `config` (no store;
    `communities_file`'s acme and shop unless given), with the production processor or
    `processor` (a poison record, an outage).

    Yields the `Member` once it is ready; on exit stops it and checks it exited 0 (K6).
    """
    from worker.runtime.service import serve
    from worker.settings import load_settings

    folder = tempfile.TemporaryDirectory(prefix="in-process-worker-")  # the default config's
    settings = load_settings(
        **{
            "bootstrap_servers": bootstrap,
            "config_file": config or communities_file(Path(folder.name)),
            "group_id": topics.raw,
            "metrics_port": 0,
            "progress_interval_seconds": 0,
            **topics.settings(),
            **overrides,
        }
    )
    stop = asyncio.Event()
    ready: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    worker = asyncio.create_task(
        serve(
            settings,
            processor=processor,
            stop=stop,
            handle_signals=False,
            on_ready=lambda m, _: ready.set_result(m),
        )
    )
    done, _ = await asyncio.wait({worker, ready}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if ready not in done:
        stop.set()
        folder.cleanup()
        raise AssertionError(f"worker did not start: {worker.result() if worker.done() else 'timeout'}")
    try:
        yield ready.result()
        assert not worker.done(), f"the worker ended while running: {worker.result()}"
    finally:
        stop.set()
        code = await asyncio.wait_for(worker, 40)
        folder.cleanup()
    assert code == 0, f"worker exited {code}"


def kcat_produce(
    bootstrap: str,
    topic: str,
    values: list[bytes],
    *,
    partition: int = 0,
    codec: str = "none",
    headers: tuple[bytes, ...] = (),
    key: bytes = b"k",
) -> None:
    """Produce with kcat (librdkafka, a producer nobody on the project wrote), one run, in order.

    `headers` are raw `name=value` bytes given to every record (kcat's -H: any bytes).
    """
    command: list[str | bytes] = ["kcat", "-P", "-b", bootstrap, "-t", topic, "-p", str(partition)]
    command += ["-z", codec, "-K", "\t", "-X", "linger.ms=50"]
    for header in headers:
        command += [b"-H", header]
    data = b"".join(key + b"\t" + value + b"\n" for value in values)
    subprocess.run(command, input=data, check=True, timeout=60, capture_output=True)
