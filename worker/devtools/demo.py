"""`make demo`: one example community, the real worker, example events through Kafka, a table.

Expects KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL (the Makefile starts the local stack), and the
Kafka security variables of a secured cluster if any (`deploy/local/stack up --secure` prints them).
Every step is a real command of the product; topics get a per-run suffix so runs never mix.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from worker.core.jws import segment_object
from worker.core.keys import sign_token
from worker.core.times import format_time
from worker.devtools.examples import (
    COMMUNITY_ID,
    HMAC_SECRET,
    HS_KID,
    RS_KID,
    UNSIGNED_COMMUNITY_ID,
    config_yaml,
    rsa_key,
)
from worker.kafka.security import client_options

CLI = [sys.executable, "-m", "worker.cli.main"]


def say(text: str) -> None:
    print(f"demo: {text}", file=sys.stderr, flush=True)


def example_events(private_key: Any, now: int) -> list[tuple[str, bytes]]:
    """The demo's nine raw events (key, value), one per kind of case the worker decides, signed
    with the example community's keys (worker.devtools.examples; `private_key`: its RS256 key; None: the
    RS256 event is left out, for a sender that does not hold the key the store was given)."""
    visitor = {"firstname": "Ada", "lastname": "Lovelace", "email": "ada@example.com"}
    extra = {"customer_id": "C123456", "mobile": "+44 7700 900123"}
    received = format_time(now)

    def event(event_id: str, **body: Any) -> tuple[str, bytes]:
        value = {"event_id": event_id, "community_id": COMMUNITY_ID, "received_at": received, **body}
        return event_id, json.dumps(value).encode()

    good_hs = sign_token(
        {"uuid": "v-1", **visitor, "extra_values": extra, "exp": now + 7200},
        HMAC_SECRET,
        "HS256",
        HS_KID,
    )
    rs_claims = {"uuid": "v-2", **visitor, "extra_values": {"customer_id": "X1"}, "exp": now + 7200}
    good_rs = sign_token(rs_claims, private_key, "RS256", RS_KID) if private_key is not None else None
    # Tampered: the payload now claims another visitor; header and signature are the original's.
    head, body, sig = good_hs.split(".")
    claims = segment_object(body)
    assert claims is not None
    forged = json.dumps({**claims, "uuid": "v-admin"}).encode()
    tampered = f"{head}.{base64.urlsafe_b64encode(forged).decode().rstrip('=')}.{sig}"
    return [
        event("valid-hs256", signed_identity=good_hs),
        *([event("valid-rs256", signed_identity=good_rs)] if good_rs is not None else []),
        event(
            "expired",
            signed_identity=sign_token({"uuid": "v-3", "exp": now - 600}, HMAC_SECRET, "HS256", HS_KID),
        ),
        event(
            "expires-soon",
            signed_identity=sign_token({"uuid": "v-4", "exp": now + 1800}, HMAC_SECRET, "HS256", HS_KID),
        ),
        event("tampered", signed_identity=tampered),
        event(
            "unknown-kid",
            signed_identity=sign_token({"uuid": "v-5", "exp": now + 7200}, HMAC_SECRET, "HS256", "acme_2019"),
        ),
        event("unsigned", identity={"uuid": "v-6", **visitor}),
        (
            "unsigned-openshop",
            json.dumps(
                {
                    "event_id": "unsigned-openshop",
                    "community_id": UNSIGNED_COMMUNITY_ID,
                    "received_at": received,
                    "identity": {"uuid": "v-7", "firstname": "Grace"},
                }
            ).encode(),
        ),
        ("not-json", b"this line is not JSON"),
    ]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now, for the development tools (tests: tests.support.ports)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli_output(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"demo: `identity-worker {' '.join(args)}` failed: {result.stderr.strip()}")
    return result.stdout


def run_cli(*args: str, env: dict[str, str]) -> None:
    for line in cli_output(*args, env=env).strip().splitlines():
        say(f"  {line}")


async def exchange(
    bootstrap: str, topics: dict[str, str], events: list[tuple[str, bytes]]
) -> list[dict[str, Any]]:
    producer = AIOKafkaProducer(**client_options(bootstrap), enable_idempotence=True)
    await producer.start()
    try:
        for key, value in events:
            await producer.send_and_wait(topics["input"], value, key=key.encode())
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topics["enriched"],
        topics["rejected"],
        topics["dlq"],
        **client_options(bootstrap),
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        group_id=None,
        enable_auto_commit=False,
    )
    await consumer.start()
    results: list[dict[str, Any]] = []
    deadline = time.monotonic() + 90
    try:
        while len(results) < len(events) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    results.append(
                        {"key": record.key.decode() if record.key else "", **json.loads(record.value)}
                    )
    finally:
        await consumer.stop()
    return results


def print_table(results: list[dict[str, Any]], order: list[str]) -> None:
    rows = sorted(results, key=lambda r: order.index(r["key"]) if r["key"] in order else len(order))
    print(f"{'event':<18} {'outcome':<9} {'reason / action':<34} details")
    print("-" * 110)
    for r in rows:
        if r["outcome"] == "enriched":
            group = r["identity_group"]
            verification = r["verification"]
            how = f"{verification['alg']} kid={verification['kid']}" if verification else "unsigned"
            details = (
                f"{how}; {group.get('firstname')} {group.get('lastname') or ''}; emails={group['emails']} "
                f"mobiles={group['mobile_phones']} notes={group.get('notes')} custom={r['custom_fields']}"
                + (f" skipped={[s['reason'] for s in r['mapping_skipped']]}" if r["mapping_skipped"] else "")
            )
            print(f"{r['key']:<18} {'enriched':<9} {'':<34} {details}")
        elif r["outcome"] == "rejected":
            print(f"{r['key']:<18} {'rejected':<9} {r['reason'] + ' / ' + r['action']:<34} {r['detail']}")
        else:
            print(
                f"{r['key']:<18} {r['outcome']:<9} {r.get('error_type', ''):<34} {r.get('error_message', '')}"
            )


def main() -> int:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    database_url = os.environ.get("DATABASE_URL")
    if not bootstrap or not database_url:
        print("demo: set KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL (`make demo` does)", file=sys.stderr)
        return 2
    suffix = time.strftime("%Y%m%d%H%M%S")
    topics = {name: f"demo-{suffix}.identity.{name}" for name in ("raw", "enriched", "rejected", "dlq")}
    env = {
        **os.environ,
        "IDENTITY_WORKER_INPUT_TOPIC": topics["raw"],
        "IDENTITY_WORKER_ENRICHED_TOPIC": topics["enriched"],
        "IDENTITY_WORKER_REJECTED_TOPIC": topics["rejected"],
        "IDENTITY_WORKER_DLQ_TOPIC": topics["dlq"],
        "IDENTITY_WORKER_GROUP_ID": f"demo-{suffix}",
        "IDENTITY_WORKER_METRICS_PORT": str(free_port()),
    }
    private_key = rsa_key()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp, "communities.yaml")
        config.write_text(config_yaml())
        say("migrating the configuration store")
        run_cli("db", "migrate", env=env)
        say("loading the example communities (acme: HS256 + RS256 keys, a regex custom field, mappings)")
        run_cli("config", "apply", str(config), env=env)
    say(f"creating topics {', '.join(topics.values())}")
    run_cli("topics", "create", "--partitions", "2", env=env)
    say("starting the worker (exactly-once)")
    worker = subprocess.Popen([*CLI, "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        events = example_events(private_key, int(time.time()))
        say(f"sending {len(events)} example events through Kafka")
        results = asyncio.run(exchange(bootstrap, {"input": topics["raw"], **topics}, events))
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            _, stderr = worker.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            _, stderr = worker.communicate()
    print()
    print_table(results, [key for key, _ in events])
    print()
    if len(results) != len(events):
        say(f"expected {len(events)} results, got {len(results)}; worker log tail:")
        print(stderr.decode(errors="replace")[-3000:], file=sys.stderr)
        return 1
    # L2: the worker wrote its usage counts as it went and once more on exit (L1).
    for title, args in (
        ("keys of acme, with their use (L2)", ("keys", "list", "acme")),
        ("integration health of acme over the last hour (L5)", ("report", "--community", "acme")),
    ):
        print(f"$ identity-worker {' '.join(args)}    # {title}")
        print(cli_output(*args, env=env))
    say(f"all {len(events)} events answered; worker exited with {worker.returncode}")
    return 0 if worker.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
