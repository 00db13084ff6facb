"""Key usage and integration health through the real worker (DESIGN §11, issue 15): real Kafka,
real PostgreSQL, `identity-worker run` as a process.

- `keys list` shows the uses within the flush interval (L1, L2); two processes add up;
- `report` gives the exact counts of known traffic (L5);
- a key removed with --force leaves a tombstone the running worker names in `unknown_kid` (L3);
- PostgreSQL stopped during a run: events keep flowing, the counts arrive once it is back (L1).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from tests.support.private_stack import private_postgres
from tests.support.worker import (
    OTHER_SECRET,
    Case,
    Outputs,
    Store,
    WorkerProcess,
    cli,
    every_reason,
    new_topics,
    own_store,
    produce,
    raw_event,
    sign,
    start_worker,
    wait_ready,
)

pytestmark = pytest.mark.integration

FLUSH_SECONDS = 5.0  # the default


def own_communities(url: str, tmp: Path) -> tuple[str, str]:
    """Communities of this test alone (keys get removed here), applied with the real CLI."""
    store = own_store(url, "l1", tmp)
    return store.acme, store.shop


def keys_list(url: str, community: str) -> dict[str, list[str]]:
    out = cli("keys", "list", community, env=Store(url, community, "").env())
    return {line.split()[0]: line.split() for line in out.splitlines()[1:]}


async def wait_for_uses(url: str, community: str, kid: str, uses: int, timeout: float) -> float:
    """Poll `keys list` until KID shows USES_24H == uses; returns the seconds it took."""
    started = time.monotonic()
    while True:
        row = (await asyncio.to_thread(keys_list, url, community))[kid]
        if row[5] == str(uses):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{community}/{kid}: USES_24H {row[5]}, expected {uses} after {timeout} s")
        await asyncio.sleep(0.2)


def metric(text: str, name: str) -> float:
    found = re.findall(rf"^identity_worker_{name}(?:_total)? (\S+)$", text, re.M)
    return float(found[0]) if found else 0.0


def valid_values(community: str, count: int, now: float, kid: str = "hs_1") -> list[bytes]:
    tokens = [sign({"uuid": f"v-{i}", "exp": int(now) + 7200}, kid=kid) for i in range(50)]
    return [raw_event(f"u-{i}", community, now, signed_identity=tokens[i % 50]) for i in range(count)]


async def test_uses_reach_keys_list_within_the_flush_interval_and_two_processes_add_up(
    kafka_bootstrap: str, database_url: str, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    acme, shop = own_communities(database_url, tmp_path)
    topics = await new_topics(kafka_bootstrap, unique_topic("l1-usage"), 4)
    now = time.time()
    cases: list[Case] = every_reason(acme, shop, now)
    extra = valid_values(acme, 2000, now)  # 50 tokens, mostly C4 cache hits
    parent = start_worker(tmp_path, "usage", kafka_bootstrap, database_url, topics, processes="2")
    second = WorkerProcess(parent.process, parent.log, parent.metrics_port + 1)
    try:
        await wait_ready(parent)
        await wait_ready(second)
        await asyncio.sleep(2)  # both joined: the group splits the 4 partitions
        items = [(None, c.value, None) for c in cases] + [
            (f"k{i}".encode(), v, None) for i, v in enumerate(extra)
        ]
        inputs = await produce(kafka_bootstrap, topics.raw, items)
        async with Outputs(kafka_bootstrap, topics) as outputs:
            await outputs.wait_for(len(inputs), 90)
        # hs_1 verified (V7 passed, not expired): enriched-hs256, missing_exp, invalid_exp,
        # expiry_too_soon, expiry_too_far, token_not_yet_valid, missing_uuid, invalid_claims, the 2000.
        took = await wait_for_uses(database_url, acme, "hs_1", 8 + 2000, FLUSH_SECONDS + 10)
        metrics = [(await asyncio.to_thread(w.http, "/metrics"))[1] for w in (parent, second)]
    finally:
        assert parent.stop() == 0, parent.tail()
    assert outputs.check_exactly_once(inputs) == (0, 0)
    listed = keys_list(database_url, acme)
    assert listed["rs_1"][5] == "1" and listed["hs_2"][4:] == ["never", "0"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", listed["hs_1"][4])
    # Both processes counted and flushed: their counts added up in the store.
    events = [metric(text, "usage_flushes") for text in metrics]
    assert all(n >= 1 for n in events), events
    assert took <= FLUSH_SECONDS + 2, took  # from the last output to `keys list` (a CLI run ~1 s)
    print(f"\nusage: in `keys list` {took:.2f} s after the last output (flush every {FLUSH_SECONDS:g} s)")

    conn = await asyncpg.connect(database_url)
    try:
        total = await conn.fetchrow(
            "SELECT verified, signature_failures FROM key_usage_total WHERE community_id = $1 AND kid = $2",
            acme,
            "hs_1",
        )
    finally:
        await conn.close()
    assert (total["verified"], total["signature_failures"]) == (2008, 1)

    # L5: the report of this traffic, exactly.
    report = cli("report", "--community", acme, "--since", "1h", env=Store(database_url, acme, shop).env())
    rows = {tuple(line.split()[1:3]): int(line.split()[3]) for line in report.splitlines()[1:]}
    expected: Counter[tuple[str, str]] = Counter()
    for case in cases:
        if f'"community_id": "{acme}"'.encode() in case.value:
            expected[(case.outcome, case.reason or "-")] += 1
    expected[("enriched", "-")] += len(extra)
    assert rows == dict(expected)
    shop_report = cli("report", "--community", shop, env=Store(database_url, acme, shop).env())
    assert {tuple(line.split()[1:4]) for line in shop_report.splitlines()[1:]} == {
        ("enriched", "-", "1"),
        ("rejected", "signed_identity_rejected", "1"),
    }


async def test_a_forced_removal_leaves_a_tombstone_the_running_worker_names(
    kafka_bootstrap: str, database_url: str, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    acme, shop = own_communities(database_url, tmp_path)
    env = Store(database_url, acme, shop).env()
    topics = await new_topics(kafka_bootstrap, unique_topic("l3-tomb"), 1)
    now = time.time()
    token = sign({"uuid": "v-1", "exp": int(now) + 7200}, kid="hs_2", key=OTHER_SECRET)
    worker = start_worker(tmp_path, "tomb", kafka_bootstrap, database_url, topics)
    try:
        await wait_ready(worker)
        await produce(
            kafka_bootstrap, topics.raw, [(None, raw_event("before", acme, now, signed_identity=token), None)]
        )
        async with Outputs(kafka_bootstrap, topics) as outputs:
            await outputs.wait_for(1, 60)
        assert outputs.records[0][2]["outcome"] == "enriched"
        await wait_for_uses(database_url, acme, "hs_2", 1, FLUSH_SECONDS + 10)
        refused = await asyncio.to_thread(_cli_result, ["keys", "remove", acme, "hs_2"], env)
        assert refused[0] == 2 and "last verified a token at" in refused[2] and "1 token(s)" in refused[2]
        forced = await asyncio.to_thread(_cli_result, ["keys", "remove", acme, "hs_2", "--force"], env)
        assert forced[0] == 0 and "forced: key" in forced[1]
        await asyncio.sleep(1.0)  # C2: the worker follows within a second
        await produce(
            kafka_bootstrap,
            topics.raw,
            [(None, raw_event("after", acme, time.time(), signed_identity=token), None)],
        )
        async with Outputs(kafka_bootstrap, topics) as outputs:
            await outputs.wait_for(2, 60)
        after = next(r for _, _, r in outputs.records if r["event_id"] == "after")
    finally:
        assert worker.stop() == 0, worker.tail()
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert after["reason"] == "unknown_kid"
    assert after["detail"].startswith(f"key 'hs_2' was removed on {today}T") and acme in after["detail"]


def _cli_result(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    import subprocess

    from tests.support.worker import CLI

    done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60, check=False)
    return done.returncode, done.stdout, done.stderr


async def test_postgresql_stopped_during_a_run(
    kafka_bootstrap: str, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    """Events keep flowing while the store is down; the counts wait and arrive once it is back."""
    with private_postgres() as pg:
        acme, _ = own_communities(pg.dsn, tmp_path)
        topics = await new_topics(kafka_bootstrap, unique_topic("l1-outage"), 2)
        worker = start_worker(tmp_path, "outage", kafka_bootstrap, pg.dsn, topics)
        try:
            await wait_ready(worker)
            first = valid_values(acme, 1000, time.time())
            inputs = await produce(kafka_bootstrap, topics.raw, [(None, v, None) for v in first])
            async with Outputs(kafka_bootstrap, topics) as outputs:
                before_s = await _answer_time(outputs, len(inputs))
            await wait_for_uses(pg.dsn, acme, "hs_1", 1000, FLUSH_SECONDS + 10)

            await asyncio.to_thread(pg.stop)
            second = valid_values(acme, 1000, time.time())
            inputs += await produce(kafka_bootstrap, topics.raw, [(None, v, None) for v in second])
            async with Outputs(kafka_bootstrap, topics) as outputs:
                during_s = await _answer_time(outputs, len(inputs))
            await asyncio.sleep(FLUSH_SECONDS + 1)  # at least one flush fails meanwhile
            during = (await asyncio.to_thread(worker.http, "/metrics"))[1]
            assert metric(during, "usage_flush_failures") >= 1
            assert metric(during, "usage_pending_buckets") >= 1
            assert metric(during, "usage_dropped_events") == 0

            await asyncio.to_thread(pg.start)
            await wait_for_uses(pg.dsn, acme, "hs_1", 2000, 3 * FLUSH_SECONDS + 10)
            after = (await asyncio.to_thread(worker.http, "/metrics"))[1]
        finally:
            code = worker.stop()
        assert code == 0, worker.tail()
        assert outputs.check_exactly_once(inputs) == (0, 0)
        assert metric(after, "usage_dropped_events") == 0
        # Full speed: the 1000 events of the outage were answered about as fast as those before.
        assert during_s < max(3 * before_s, 5.0), (before_s, during_s)
        assert "usage counts not written; kept for the next flush" in worker.log.read_text()


async def _answer_time(outputs: Outputs, count: int) -> float:
    """Seconds until `count` inputs in all have an output."""
    begun = time.monotonic()
    await outputs.wait_for(count, 90)
    return time.monotonic() - begun
