"""Bulk configuration and listings at a platform's size (DESIGN §12, T4, T5), held by their
mechanisms, not by timing: the statements `config apply` sends (asyncpg's query logger), the
rows it leaves untouched (`xmin`: any write makes a new row version), and the pages a listing
gives while rows are added."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from tests.support.store import Cli, run_async, run_sql
from worker.core.config import ConfigSpec, validate_spec
from worker.core.reasons import Mode
from worker.devtools import examples
from worker.store import api_tokens, listings, sync
from worker.store import repository as repo
from worker.store.loading import read_specs
from worker.store.pages import BadPage, PageRequest
from worker.store.sync import Change

WRITES = ("INSERT", "UPDATE", "DELETE")
TABLES = ("communities", "jwt_keys", "custom_fields", "mappings", "key_tombstones")


def _community(i: int, label: str = "Customer ID") -> dict[str, Any]:
    return examples.community(
        f"c{i:03d}",
        hmac_keys={"k_a": f"{i:024x}", "k_b": f"{i + 1000:024x}"},
        rsa_kid="k_rsa" if i % 10 == 0 else None,
        custom_fields=[
            {"key": "customer_id", "label": label, "regex": "C[0-9]{6}"},
            {"key": "plan", "label": "Plan"},
        ],
        mappings=[
            examples.CUSTOMER_ID_MAPPING,
            {"from": "extra_values.plan", "to": "custom_fields.plan"},
            examples.NOTES_MAPPING,
        ],
    )


def _config(n: int, change: Callable[[int, dict[str, Any]], dict[str, Any]] | None = None) -> ConfigSpec:
    communities = [_community(i) for i in range(n)]
    if change is not None:
        communities = [change(i, c) for i, c in enumerate(communities)]
    return validate_spec(ConfigSpec, {"communities": communities})


def _apply(url: str, config: ConfigSpec, *, prune: bool = False) -> tuple[list[Change], list[str]]:
    """`apply_config` in one transaction; its change lines and the statements it sent about
    the configuration's tables (not asyncpg's own: type introspection, BEGIN, COMMIT)."""

    async def go() -> tuple[list[Change], list[str]]:
        conn = await asyncpg.connect(url)
        statements: list[str] = []
        conn.add_query_logger(
            lambda record: statements.append(record.query) if any(t in record.query for t in TABLES) else None
        )
        try:
            async with conn.transaction():
                changes = await repo.apply_config(conn, config, prune=prune)
        finally:
            await conn.close()
        return changes, statements

    return run_async(go)


def _writes(statements: list[str]) -> list[str]:
    return [s for s in statements if s.lstrip().upper().startswith(WRITES)]


def _versions(url: str) -> dict[str, list[tuple[str, str]]]:
    """Each configuration row's id and version (`xmin`): a write of any kind changes it."""
    return {
        table: [
            (str(r["row"]), str(r["xmin"]))
            for r in run_sql(url, f"SELECT t::text AS row, t.xmin FROM {table} t ORDER BY 1")
        ]
        for table in TABLES
    }


def test_a_file_that_changes_nothing_writes_nothing(store_url: str) -> None:
    """T4: re-applying a file the store already holds sends no write and, whatever the
    number of communities, the same few reads (the store used to be read community by
    community)."""
    config = _config(40)
    _apply(store_url, config)
    before = _versions(store_url)
    changes, statements = _apply(store_url, config)
    assert changes == []
    assert _writes(statements) == []
    assert len(statements) <= 4, statements  # lock, read the file's communities, positions (none)
    assert _versions(store_url) == before


def test_a_file_that_changes_one_community_writes_that_community_only(store_url: str) -> None:
    config = _config(40)
    _apply(store_url, config)
    before = _versions(store_url)
    relabelled = _config(40, lambda i, c: _community(i, "Customer number") if i == 7 else c)
    changes, statements = _apply(store_url, relabelled)
    assert changes == [
        Change(
            "~",
            "field c007/customer_id (label 'Customer ID', regex 'C[0-9]{6}' -> "
            "label 'Customer number', regex 'C[0-9]{6}')",
        )
    ]
    assert len(_writes(statements)) == 1 and len(statements) <= 5, statements
    after = _versions(store_url)
    changed = {t: sorted(set(after[t]) ^ set(before[t])) for t in TABLES}
    # The field's row, and its community's change counter (0006: `changed_xid`, T1), only.
    assert {t for t, rows in changed.items() if rows} == {"custom_fields", "communities"}
    assert all("c007" in row for t in ("custom_fields", "communities") for row, _ in changed[t])


def test_new_communities_are_written_in_a_few_statements_per_table(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """T4: one diff written in array statements of at most BATCH_ROWS rows, whatever the
    number of communities; what is stored reads back as the file (the models' reading)."""
    monkeypatch.setattr(sync, "BATCH_ROWS", 7)
    config = _config(25)
    changes, statements = _apply(store_url, config)
    assert sum(c.op == "+" and c.text.startswith("community ") for c in changes) == 25
    rows = {"communities": 25, "jwt_keys": 53, "custom_fields": 50, "mappings": 75, "key_tombstones": 0}
    assert {t: len(v) for t, v in _versions(store_url).items()} == rows
    # A statement per table per 7 rows (tombstones cleared: one per key), not one per row.
    batches = sum(-(-n // 7) for n in (25, 53, 53, 50, 75))
    assert len(_writes(statements)) == batches, statements
    stored = run_async(lambda: _specs(store_url))
    assert stored == {c.id: c for c in config.communities}

    # S1 (0002's deferred check) still judges rows written by array statements: a keyless
    # community in require mode, slipped past the model, is refused at commit.
    keyless = validate_spec(ConfigSpec, {"communities": [{"id": "bare", "signed_identities": "reject"}]})
    forced = keyless.model_copy(
        update={
            "communities": [keyless.communities[0].model_copy(update={"signed_identities": Mode.REQUIRE})]
        }
    )
    with pytest.raises(asyncpg.CheckViolationError, match="S1"):
        _apply(store_url, forced)
    assert run_sql(store_url, "SELECT count(*) AS n FROM communities WHERE id = 'bare'")[0]["n"] == 0


async def _specs(url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        return dict((await read_specs(conn))[0])
    finally:
        await conn.close()


def test_pages_are_stable_while_communities_are_added(store_url: str) -> None:
    """T5: a keyset cursor. Communities added before and after the cursor while a listing is
    read never make a page repeat or skip one of those that were there all along."""
    _apply(store_url, _config(30))
    original = [f"c{i:03d}" for i in range(30)]

    async def walk() -> list[str]:
        conn = await asyncpg.connect(store_url)
        seen: list[str] = []
        after: str | None = None
        try:
            for step in range(100):
                page = await listings.list_communities(conn, PageRequest(limit=4, after=after))
                seen += [row.id for row in page.items]
                # Others write meanwhile: before the cursor, after it, and at its very end.
                for new_id in (f"a{step:03d}", f"c{step * 2:03d}x", f"z{step:03d}"):
                    await conn.execute(
                        "INSERT INTO communities (id, signed_identities) VALUES ($1, 'reject')", new_id
                    )
                if page.next is None:
                    return seen
                after = page.next
        finally:
            await conn.close()
        raise AssertionError("the listing never ended")

    seen = run_async(walk)
    assert len(seen) == len(set(seen)), "a community was listed twice"
    assert [cid for cid in seen if cid in original] == original
    assert seen == sorted(seen) and not any(cid.startswith("a") for cid in seen)


def test_a_prefix_filters_and_pages(cli: Cli, store_url: str) -> None:
    """T5 in the CLI: --prefix, --limit, and the hint that gives the next page's --after."""
    _apply(store_url, _config(30))
    first = cli("community", "list", "--prefix", "c01", "--limit", "6")
    assert first.code == 0, first
    assert [line.split()[0] for line in first.out.splitlines()[1:]] == [f"c01{i}" for i in range(6)]
    hint = first.err.strip()
    assert hint.startswith("more rows: identity-worker community list ... --after "), hint
    rest = cli("community", "list", "--prefix", "c01", "--limit", "6", "--after", hint.rsplit(" ", 1)[1])
    assert [line.split()[0] for line in rest.out.splitlines()[1:]] == [f"c01{i}" for i in range(6, 10)]
    assert rest.err == ""
    bad = cli("community", "list", "--after", "nonsense")
    assert bad.code == 2 and bad.err.count("\n") == 1 and "after: not a cursor of this listing" in bad.err


@pytest.mark.parametrize(
    "time",
    [
        "2011-W01-2T00:05:23+00:00",
        "2020-01-01T00:00:00+00:00:30.5",
        "2020-01-01T00:00:00,5+00:00",
        "2020-01-01T00Z",
        "2020-01-01T00:00:00+20:00",  # PostgreSQL's offsets end at 15:59
    ],
)
def test_a_forged_time_in_a_cursor_is_not_a_database_error(store_url: str, time: str) -> None:
    """T5: a cursor no listing gave is the caller's error (BadPage: 422, exit 2) naming
    `after`, never a database error (a 503 the client would retry): Python reads ISO 8601 week
    dates, offsets with seconds and decimal commas that PostgreSQL refuses."""
    _apply(store_url, _config(1))
    cursor = base64.urlsafe_b64encode(json.dumps([time, "a"]).encode()).decode().rstrip("=")

    async def read(listing: Callable[[asyncpg.Connection], Any]) -> None:
        conn = await asyncpg.connect(store_url)
        try:
            with pytest.raises(BadPage, match="after: not a cursor of this listing"):
                await listing(conn)
        finally:
            await conn.close()

    page = PageRequest(after=cursor)
    run_async(lambda: read(lambda conn: listings.list_keys(conn, "c000", page)))
    # JSON nested deeper than the interpreter recurses (the console's ?keys_after= and the
    # CLI's --after have no length bound): a RecursionError was a 500 and a traceback.
    deep = PageRequest(after=base64.urlsafe_b64encode(b"[" * 5000).decode())
    run_async(lambda: read(lambda conn: listings.list_keys(conn, "c000", deep)))
    run_async(lambda: read(lambda conn: listings.list_fields(conn, "c000", page)))
    run_async(lambda: read(lambda conn: api_tokens.list_tokens(conn, page)))


def test_audit_lines_escape_exactly_the_unprintable_characters() -> None:
    """A11 with T4's fast path (str.isprintable): every character below U+3100 and a few beyond
    is escaped exactly when its Unicode category is one a listing must never print raw."""
    import unicodedata

    from worker.store import audit

    unprintable = {"Cc", "Cf", "Cs", "Zl", "Zp"}
    for code in [*range(0x3100), 0xFEFF, 0xE000, 0x10FFFF, 0x1D173, 0xE0001]:
        ch = chr(code)
        escaped = audit.plain(f"a{ch}b") != f"a{ch}b"
        assert escaped == (unicodedata.category(ch) in unprintable), hex(code)


def test_the_health_of_a_page_of_communities_reads_those_only(store_url: str) -> None:
    """T5: the platform console shows a page of communities with their last hour (L5); it
    reads the health of that page's communities, not of every community in the store."""
    from worker.store.usage import health_report

    for community in ("a1", "b2", "c3"):
        run_sql(
            store_url,
            "INSERT INTO integration_health_minute (community_id, minute, outcome, reason, events, "
            "last_at) VALUES ($1, date_trunc('minute', now()), 'enriched', '', 5, now())",
            community,
        )

    async def go() -> list[str]:
        conn = await asyncpg.connect(store_url)
        try:
            rows = await health_report(conn, since_seconds=3600, community_ids=["a1", "c3", "zz"])
        finally:
            await conn.close()
        return [row.community_id for row in rows]

    assert run_async(go) == ["a1", "c3"]
    run_sql(store_url, "DELETE FROM integration_health_minute")
