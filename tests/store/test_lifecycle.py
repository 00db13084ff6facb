"""Key lifecycle in the store (DESIGN §11), on the real PostgreSQL: the lifecycle
settings (CLI, CHECKs), tombstones (L3), usage counts written by the worker's recorder (L1)
as `keys list` shows them (L2), retirement refused or forced (L3), and `report` (L5)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import pytest

from tests.support.store import SECRET, SECRET_2, Cli, cli_subprocess, hs256_token, run_sql
from worker.core.reasons import Outcome, Reason
from worker.core.records import Output
from worker.runtime.usage_recorder import UsageRecorder
from worker.store.lifecycle import read_tombstones
from worker.store.loading import load_all_communities
from worker.store.usage import health_report, key_usage, prune

pytestmark = pytest.mark.integration


@pytest.fixture
def acme(cli: Cli, store_url: str) -> Cli:
    """acme (require): HS256 keys k1 and k2; no usage counted yet (usage rows have no foreign key)."""
    run_sql(store_url, "TRUNCATE key_usage_total, key_usage_hourly, integration_health_minute")
    for args in (
        ("community", "add", "acme", "--mode", "reject"),
        ("keys", "add", "acme", "k1", "--hmac-secret", SECRET),
        ("keys", "add", "acme", "k2", "--hmac-secret", SECRET_2),
        ("community", "set-mode", "acme", "require"),
    ):
        assert cli(*args).code == 0, args
    return cli


def verdict(
    kid: str | None, reason: Reason | None = None, community: str | None = "acme", detail: str = "d"
) -> Output:
    """An output as the pipeline makes it, for the recorder (only the fields it reads)."""
    outcome = Outcome.ENRICHED if reason is None else Outcome.REJECTED
    record: dict[str, Any] = {"community_id": community}
    if reason is not None:
        record["detail"] = detail
    return Output(outcome, record, reason, kid=kid)


def recorder(url: str, **kwargs: Any) -> UsageRecorder:
    return UsageRecorder(url, configured=lambda cid: cid in {"acme", "other"}, **kwargs)


async def flush(usage: UsageRecorder) -> None:
    try:
        assert await usage.flush()
    finally:
        await usage.close()


def count_and_flush(
    url: str, outputs: list[Output], now: float | None = None, **kwargs: Any
) -> UsageRecorder:
    usage = recorder(url, **kwargs)
    usage.count(outputs, time.time() if now is None else now)
    asyncio.run(flush(usage))
    return usage


def usage_of(url: str, community: str = "acme") -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        conn = await asyncpg.connect(url)
        try:
            return await key_usage(conn, community)
        finally:
            await conn.close()

    return asyncio.run(go())


# ---------------------------------------------------------------- settings


def test_max_validity_and_retirement_window_through_the_cli(acme: Cli, store_url: str) -> None:
    changed = acme("community", "set", "acme", "--max-validity-seconds", "86400")
    assert changed.out == "~ community acme: max_validity_seconds unset -> 86400\n"
    changed = acme("community", "set", "acme", "--retirement-window-seconds", "3600")
    assert changed.out == "~ community acme: retirement_window_seconds 86400 -> 3600\n"
    row = run_sql(store_url, "SELECT max_validity_seconds, retirement_window_seconds FROM communities")[0]
    assert tuple(row) == (86400, 3600)
    listed = acme("community", "list").out.splitlines()[1].split()
    assert listed[4:6] == ["86400", "3600"]
    exported = acme("config", "export").out
    assert "max_validity_seconds: 86400" in exported and "retirement_window_seconds: 3600" in exported
    assert acme("community", "set", "acme", "--max-validity-seconds", "unset").out == (
        "~ community acme: max_validity_seconds 86400 -> unset\n"
    )
    added = acme("community", "add", "capped", "--mode", "reject", "--max-validity-seconds", "7200")
    assert added.out == (
        "+ community capped (signed_identities reject, min_validity_seconds 3600, leeway_seconds 10, "
        "max_validity_seconds 7200)\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--max-validity-seconds", "0"), "max_validity_seconds: Input should be greater than or equal to 1"),
        (
            ("--max-validity-seconds", "soon"),
            "--max-validity-seconds must be a whole number of seconds or `unset`",
        ),
        (
            ("--max-validity-seconds", "60"),
            "max_validity_seconds (60) must be at least min_validity_seconds (3600)",
        ),
        (("--retirement-window-seconds", "-1"), "retirement_window_seconds: Input should be greater"),
        (("--retirement-window-seconds", "2592001"), "retirement_window_seconds: Input should be less"),
    ],
)
def test_bad_lifecycle_settings_are_refused_and_change_nothing(
    acme: Cli, store_url: str, args: tuple[str, ...], message: str
) -> None:
    before = run_sql(store_url, "SELECT * FROM communities")
    refused = acme("community", "set", "acme", *args)
    assert refused.code == 2 and message in refused.err and len(refused.err.splitlines()) == 1
    assert run_sql(store_url, "SELECT * FROM communities") == before


@pytest.mark.parametrize(
    ("column", "value", "constraint"),
    [
        ("max_validity_seconds", 0, "communities_max_validity_seconds_range"),
        ("max_validity_seconds", 316224001, "communities_max_validity_seconds_range"),
        ("max_validity_seconds", 3599, "communities_max_validity_seconds_range"),  # below min validity
        ("retirement_window_seconds", -1, "communities_retirement_window_seconds_range"),
        ("retirement_window_seconds", 2592001, "communities_retirement_window_seconds_range"),
    ],
)
def test_the_database_checks_the_lifecycle_settings(
    acme: Cli, store_url: str, column: str, value: int, constraint: str
) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        run_sql(store_url, f"UPDATE communities SET {column} = $1", value)
    assert refused.value.constraint_name == constraint


# ---------------------------------------------------------------- tombstones


def test_a_removed_key_leaves_a_tombstone_the_worker_loads(acme: Cli, store_url: str) -> None:
    removed = acme("keys", "remove", "acme", "k1")
    assert removed.code == 0 and removed.out.startswith("- key acme/k1 (HS256 sha256:")
    rows = run_sql(store_url, "SELECT * FROM key_tombstones")
    assert [(r["community_id"], r["kid"], r["alg"]) for r in rows] == [("acme", "k1", "HS256")]
    assert removed.out.split("(HS256 ")[1].rstrip(")\n") == rows[0]["fingerprint"]
    assert SECRET not in str([tuple(r) for r in rows])

    async def load() -> Any:
        conn = await asyncpg.connect(store_url)
        try:
            return await load_all_communities(conn), await read_tombstones(conn)
        finally:
            await conn.close()

    communities, tombstones = asyncio.run(load())
    assert set(communities["acme"].tombstones) == {"k1"} and set(tombstones) == {"acme"}
    # token verify against the store says when the key went (L3, L4).
    token = hs256_token(SECRET, "k1", exp=int(time.time()) + 7200)
    verified = cli_subprocess("token", "verify", "--database-url", store_url, "--community", "acme", token)
    assert verified.code == 1
    day = rows[0]["removed_at"].strftime("%Y-%m-%d")
    assert f"key 'k1' was removed on {day}" in verified.out

    # The same kid added again is a key again: no tombstone.
    assert acme("keys", "add", "acme", "k1", "--hmac-secret", SECRET).code == 0
    assert run_sql(store_url, "SELECT * FROM key_tombstones") == []


def test_config_apply_leaves_tombstones_too(acme: Cli, store_url: str, tmp_path: Any) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        f'communities:\n  - id: acme\n    jwt_keys:\n      - kid: k2\n        hmac_secret: "{SECRET_2}"\n'
    )
    assert acme("config", "apply", str(config)).code == 0
    assert [r["kid"] for r in run_sql(store_url, "SELECT kid FROM key_tombstones")] == ["k1"]


# ---------------------------------------------------------------- usage (L1, L2) and retirement (L3)


def test_keys_list_shows_last_use_and_uses_in_24h(acme: Cli, store_url: str) -> None:
    now = time.time()
    count_and_flush(
        store_url,
        [verdict("k1")] * 3 + [verdict("k1", Reason.INVALID_SIGNATURE), verdict("k1", Reason.TOKEN_EXPIRED)],
        now,
    )
    count_and_flush(
        store_url, [verdict("k1", Reason.EXPIRY_TOO_SOON)] * 2, now - 3 * 86400
    )  # old: not in 24 h
    listed = acme("keys", "list", "acme").out.splitlines()
    assert listed[0].split() == ["KID", "ALG", "FINGERPRINT", "CREATED", "LAST_USED", "USES_24H"]
    k1, k2 = (line.split() for line in listed[1:])
    assert k1[0] == "k1" and k1[5] == "3"
    assert k1[4] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    assert k2[0] == "k2" and k2[4:] == ["never", "0"]
    used = usage_of(store_url)["k1"]
    assert (used.verified, used.signature_failures, used.uses_24h, used.failures_24h) == (5, 1, 3, 1)


def test_counts_of_several_processes_add_up(acme: Cli, store_url: str) -> None:
    now = time.time()
    first, second = recorder(store_url), recorder(store_url)
    first.count([verdict("k1")] * 7, now)
    second.count([verdict("k1")] * 5 + [verdict("k2", Reason.INVALID_SIGNATURE)], now)

    async def both() -> None:
        await asyncio.gather(flush(first), flush(second))

    asyncio.run(both())
    used = usage_of(store_url)
    assert used["k1"].verified == 12 and used["k1"].uses_24h == 12
    assert used["k2"].signature_failures == 1 and used["k2"].verified == 0
    assert first.statements == second.statements == 1  # one statement per flush


def test_keys_remove_is_refused_for_a_key_in_use(acme: Cli, store_url: str) -> None:
    now = time.time()
    count_and_flush(store_url, [verdict("k1")] * 4, now)
    refused = acme("keys", "remove", "acme", "k1")
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    assert refused.code == 2
    assert refused.err == (
        f"identity-worker: error: refused: key acme/k1 last verified a token at {when}, 4 token(s) in the "
        "last 24 h (the community's retirement window); move the website to another key first, or give "
        "--force to remove it anyway\n"
    )
    assert [r["kid"] for r in run_sql(store_url, "SELECT kid FROM jwt_keys ORDER BY kid")] == ["k1", "k2"]
    assert run_sql(store_url, "SELECT * FROM key_tombstones") == []

    forced = acme("keys", "remove", "acme", "k1", "--force")
    assert forced.code == 0
    assert forced.out.splitlines()[0].startswith("- key acme/k1 (HS256 sha256:")
    assert forced.out.splitlines()[
        1
    ] == f"forced: key acme/k1 last verified a token at {when}, 4 token(s) " + (
        "in the last 24 h (the community's retirement window)"
    )
    assert [r["kid"] for r in run_sql(store_url, "SELECT kid FROM key_tombstones")] == ["k1"]


def test_keys_remove_is_allowed_for_an_unused_key_or_outside_the_window(acme: Cli, store_url: str) -> None:
    assert acme("keys", "remove", "acme", "k2").code == 0  # never used
    assert acme("keys", "add", "acme", "k2", "--hmac-secret", SECRET_2).code == 0
    count_and_flush(store_url, [verdict("k1")], time.time() - 7200)  # two hours ago
    assert acme("keys", "remove", "acme", "k1").code == 2
    assert acme("community", "set", "acme", "--retirement-window-seconds", "3600").code == 0
    assert acme("keys", "remove", "acme", "k1").code == 0
    # Failures alone are not uses.
    count_and_flush(store_url, [verdict("k2", Reason.INVALID_SIGNATURE)] * 9)
    assert acme("community", "set-mode", "acme", "reject").code == 0
    assert acme("keys", "remove", "acme", "k2").code == 0


def test_the_buffer_is_bounded_and_drops_are_counted(acme: Cli, store_url: str) -> None:
    usage = recorder(store_url, max_pending=100)
    now = time.time()
    for minute in range(150):  # a new health bucket per minute: 150 > 100
        usage.count([verdict(None)] * 2, now - minute * 60)
    assert usage.pending == 100
    assert usage.dropped == 100  # 50 minutes of 2 events
    usage.count([verdict(None)] * 3, now)  # a bucket that exists still counts
    usage.count([verdict("k1")], now)  # a key bucket would be new: the event is not counted
    assert usage.dropped == 101
    asyncio.run(flush(usage))
    rows = run_sql(store_url, "SELECT sum(events) AS n FROM integration_health_minute")
    assert rows[0]["n"] == 2 * 100 + 3 + 1  # the dropped key event still counted as an outcome


# ---------------------------------------------------------------- report (L5)


def test_report_gives_exact_counts_and_the_last_detail(acme: Cli, store_url: str) -> None:
    now = time.time()
    count_and_flush(
        store_url,
        [verdict("k1")] * 5
        + [verdict("k1", Reason.INVALID_SIGNATURE, detail="first")]
        + [verdict("k1", Reason.INVALID_SIGNATURE, detail="second")]
        + [verdict(None, Reason.UNKNOWN_COMMUNITY, community="ghost-1", detail="community ghost-1 ...")]
        + [verdict(None, Reason.MALFORMED_EVENT, community=None, detail="value is not a JSON object")],
        now,
    )
    count_and_flush(store_url, [verdict("k1", Reason.INVALID_SIGNATURE, detail="third")], now + 1)
    count_and_flush(store_url, [verdict("k1")] * 100, now - 3 * 3600)  # outside the default hour
    report = acme("report")
    assert report.code == 0
    lines = [line.split(None, 6) for line in report.out.splitlines()]
    assert lines[0] == ["COMMUNITY", "OUTCOME", "REASON", "EVENTS", "SHARE", "LAST_AT", "LAST_DETAIL"]
    rows = {(line[0], line[1], line[2]): (line[3], line[4], line[6]) for line in lines[1:]}
    assert rows == {
        ("(none)", "rejected", "malformed_event"): ("1", "50.0%", "value is not a JSON object"),
        ("(none)", "rejected", "unknown_community"): ("1", "50.0%", "community ghost-1 ..."),
        ("acme", "enriched", "-"): ("5", "62.5%", "-"),
        ("acme", "rejected", "invalid_signature"): ("3", "37.5%", "third"),
    }
    assert "(none)" not in acme("report", "--community", "acme").out
    day = acme("report", "--community", "acme", "--since", "1d").out
    assert [line.split()[:4] for line in day.splitlines()[1:]] == [
        ["acme", "enriched", "-", "105"],
        ["acme", "rejected", "invalid_signature", "3"],
    ]
    assert acme("report", "--community", "other").out == "no events for community other in the last 1h\n"

    async def window() -> Any:
        conn = await asyncpg.connect(store_url)
        try:
            return await health_report(conn, since_seconds=600, community_id="acme")
        finally:
            await conn.close()

    assert sum(row.events for row in asyncio.run(window())) == 8


@pytest.mark.parametrize("since", ["1y", "0", "9d", "-1h", "soon"])
def test_report_refuses_a_bad_window(acme: Cli, since: str) -> None:
    refused = acme("report", "--since", since)
    assert refused.code == 2 and "--since must be" in refused.err


def test_old_buckets_are_pruned_and_totals_kept(acme: Cli, store_url: str) -> None:
    now = time.time()
    count_and_flush(store_url, [verdict("k1")], now - 40 * 86400)  # past the 32 days of hour buckets
    count_and_flush(store_url, [verdict("k1", Reason.INVALID_SIGNATURE)], now - 10 * 86400)  # past 8 days
    count_and_flush(store_url, [verdict("k1")], now)

    async def go() -> None:
        conn = await asyncpg.connect(store_url)
        try:
            await prune(conn)
        finally:
            await conn.close()

    asyncio.run(go())
    assert len(run_sql(store_url, "SELECT * FROM key_usage_hourly")) == 2  # 10 days ago and now
    assert len(run_sql(store_url, "SELECT * FROM integration_health_minute")) == 1  # now
    total = run_sql(store_url, "SELECT verified, signature_failures FROM key_usage_total")[0]
    assert tuple(total) == (2, 1)
