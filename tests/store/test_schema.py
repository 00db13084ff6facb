"""The schema by itself (DESIGN §1, §5): migrations, CHECK constraints, cascades, notifications.

Rows are written with raw SQL, as a hand-made change in psql would be: the constraints
alone must refuse every format §1 forbids.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.support import stack
from tests.support.store import SECRET, Cli, cli_subprocess, migrated, run_sql
from worker.store.db import CONSTRAINT_RULES, NOTIFY_CHANNEL
from worker.store.loading import load_all_communities
from worker.store.migrate import LATEST_VERSION, available_migrations, migrate

pytestmark = pytest.mark.integration


def _pem(bits: int, *, pkcs1: bool = False) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    fmt = serialization.PublicFormat.PKCS1 if pkcs1 else serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(serialization.Encoding.PEM, fmt).decode()


RSA_2048 = _pem(2048)
RSA_2048_PKCS1 = _pem(2048, pkcs1=True)
RSA_1024 = _pem(1024)
RSA_2047 = _pem(2047)
EC_PEM = (
    ec.generate_private_key(ec.SECP256R1())
    .public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)
PRIVATE_PEM = (
    rsa.generate_private_key(public_exponent=65537, key_size=2048)
    .private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    .decode()
)

COMMUNITY = (
    "INSERT INTO communities (id, signed_identities, min_validity_seconds, leeway_seconds) "
    "VALUES ($1, $2, $3, $4)"
)
KEY = "INSERT INTO jwt_keys (community_id, kid, alg, hmac_secret, rsa_public_key) VALUES ($1, $2, $3, $4, $5)"
FIELD = "INSERT INTO custom_fields (community_id, key, label, regex) VALUES ($1, $2, $3, $4)"
MAPPING = "INSERT INTO mappings (community_id, position, source, target) VALUES ($1, $2, $3, $4)"

# (statement, arguments, the constraints that may refuse it): one row per rule of §1.
BAD_ROWS: list[tuple[str, tuple[Any, ...], set[str]]] = [
    (COMMUNITY, ("bad id", "require", 3600, 10), {"communities_id_format"}),
    (COMMUNITY, ("", "require", 3600, 10), {"communities_id_format"}),
    (COMMUNITY, ("a" * 65, "require", 3600, 10), {"communities_id_format"}),
    (COMMUNITY, ("acme.com", "require", 3600, 10), {"communities_id_format"}),
    (COMMUNITY, ("c2", "maybe", 3600, 10), {"communities_signed_identities_values"}),
    (COMMUNITY, ("c2", "REQUIRE", 3600, 10), {"communities_signed_identities_values"}),
    (COMMUNITY, ("c2", "require", -1, 10), {"communities_min_validity_seconds_range"}),
    (COMMUNITY, ("c2", "require", 366 * 86400 + 1, 10), {"communities_min_validity_seconds_range"}),
    (COMMUNITY, ("c2", "require", 3600, -1), {"communities_leeway_seconds_range"}),
    (COMMUNITY, ("c2", "require", 3600, 3601), {"communities_leeway_seconds_range"}),
    (KEY, ("acme", "Upper", "HS256", SECRET, None), {"jwt_keys_kid_format"}),
    (KEY, ("acme", "with-dash", "HS256", SECRET, None), {"jwt_keys_kid_format"}),
    (KEY, ("acme", "", "HS256", SECRET, None), {"jwt_keys_kid_format"}),
    (KEY, ("acme", "k" * 65, "HS256", SECRET, None), {"jwt_keys_kid_format"}),
    (KEY, ("acme", "k1", "HS256", SECRET[:23], None), {"jwt_keys_hmac_secret_format"}),
    (KEY, ("acme", "k1", "HS256", SECRET + "0", None), {"jwt_keys_hmac_secret_format"}),
    (KEY, ("acme", "k1", "HS256", SECRET.upper(), None), {"jwt_keys_hmac_secret_format"}),
    (KEY, ("acme", "k1", "HS256", SECRET[:23] + "\n", None), {"jwt_keys_hmac_secret_format"}),
    (KEY, ("acme", "k1", "HS512", SECRET, None), {"jwt_keys_alg_values", "jwt_keys_alg_matches_key"}),
    (KEY, ("acme", "k1", "none", None, None), {"jwt_keys_alg_values", "jwt_keys_alg_matches_key"}),
    # V6: the algorithm follows the kind of key; a key has exactly one kind.
    (KEY, ("acme", "k1", "RS256", SECRET, None), {"jwt_keys_alg_matches_key"}),
    (KEY, ("acme", "k1", "HS256", None, RSA_2048), {"jwt_keys_alg_matches_key"}),
    (KEY, ("acme", "k1", "HS256", SECRET, RSA_2048), {"jwt_keys_alg_matches_key"}),
    (KEY, ("acme", "k1", "RS256", SECRET, RSA_2048), {"jwt_keys_alg_matches_key"}),
    (KEY, ("acme", "k1", "HS256", None, None), {"jwt_keys_alg_matches_key"}),
    (KEY, ("acme", "k1", "RS256", None, RSA_1024), {"jwt_keys_rsa_public_key_format"}),
    (KEY, ("acme", "k1", "RS256", None, RSA_2047), {"jwt_keys_rsa_public_key_format"}),
    (KEY, ("acme", "k1", "RS256", None, PRIVATE_PEM), {"jwt_keys_rsa_public_key_format"}),
    (KEY, ("acme", "k1", "RS256", None, EC_PEM), {"jwt_keys_rsa_public_key_format"}),
    (KEY, ("acme", "k1", "RS256", None, "not a key"), {"jwt_keys_rsa_public_key_format"}),
    (KEY, ("acme", "k1", "RS256", None, RSA_2048 + RSA_2048), {"jwt_keys_rsa_public_key_format"}),
    # one key per value, whatever the two PEM forms
    (KEY, ("acme", "k1", "RS256", None, RSA_2048 + RSA_2048_PKCS1), {"jwt_keys_rsa_public_key_format"}),
    (
        KEY,
        ("acme", "k1", "RS256", None, RSA_2048.replace("END PUBLIC", "END RSA PUBLIC")),
        {"jwt_keys_rsa_public_key_format"},
    ),
    (KEY, ("nobody", "k1", "HS256", SECRET, None), {"jwt_keys_community_id_fkey"}),
    (FIELD, ("acme", "Customer", "Customer", None), {"custom_fields_key_format"}),
    (FIELD, ("acme", "", "Customer", None), {"custom_fields_key_format"}),
    (FIELD, ("acme", "c" * 65, "Customer", None), {"custom_fields_key_format"}),
    (FIELD, ("acme", "customer", "", None), {"custom_fields_label_length"}),
    (FIELD, ("acme", "customer", "L" * 256, None), {"custom_fields_label_length"}),
    (FIELD, ("acme", "customer", "Customer", "a" * 1025), {"custom_fields_regex_length"}),
    (MAPPING, ("acme", -1, "uuid", "identity_group.notes"), {"mappings_position_range"}),
    (MAPPING, ("acme", 5, "email", "identity_group.notes"), {"mappings_source_format"}),
    (MAPPING, ("acme", 5, "extra_values.", "identity_group.notes"), {"mappings_source_format"}),
    (MAPPING, ("acme", 5, "extra_values." + "x" * 65, "identity_group.notes"), {"mappings_source_format"}),
    (MAPPING, ("acme", 5, "uuid", "identity_group.email"), {"mappings_target_format"}),
    (MAPPING, ("acme", 5, "uuid", "identity_group"), {"mappings_target_format"}),
    (MAPPING, ("acme", 5, "uuid", "custom_fields.Bad"), {"mappings_target_format"}),
    (MAPPING, ("acme", 5, "uuid", "custom_fields.undeclared"), {"mappings_custom_field_declared"}),
    (MAPPING, ("acme", 0, "uuid", "identity_group.notes"), {"mappings_pkey"}),
]


def _seed(url: str) -> None:
    run_sql(url, COMMUNITY, "acme", "reject", 3600, 10)  # S1: require only with a key
    run_sql(url, MAPPING, "acme", 0, "uuid", "identity_group.lastname")


@pytest.mark.parametrize(("statement", "args", "constraints"), BAD_ROWS)
def test_a_bad_row_is_refused_by_its_constraint(
    store_url: str, statement: str, args: tuple[Any, ...], constraints: set[str]
) -> None:
    _seed(store_url)
    with pytest.raises(asyncpg.IntegrityConstraintViolationError) as refused:
        run_sql(store_url, statement, *args)
    assert refused.value.constraint_name in constraints
    assert constraints <= set(CONSTRAINT_RULES), "every constraint has a one-line rule for the CLI"


@pytest.mark.parametrize(
    ("statement", "args"),
    [
        (COMMUNITY, ("Acme_shop-2", "reject", 0, 0)),
        (COMMUNITY, ("a" * 64, "reject", 366 * 86400, 3600)),
        (KEY, ("acme", "k" * 64, "HS256", SECRET, None)),
        (KEY, ("acme", "rsa_spki", "RS256", None, RSA_2048)),
        (KEY, ("acme", "rsa_pkcs1", "RS256", None, RSA_2048_PKCS1)),
        (KEY, ("acme", "rsa_spaced", "RS256", None, "\n  " + RSA_2048 + "\n\n")),
        (FIELD, ("acme", "c" * 64, "L" * 255, "a" * 1024)),
        (MAPPING, ("acme", 7, "extra_values." + "x" * 64, "identity_group.mobile_phones")),
        (MAPPING, ("acme", 8, "extra_values.a.b", "identity_group.gender")),
    ],
)
def test_a_good_row_at_the_limits_is_accepted(store_url: str, statement: str, args: tuple[Any, ...]) -> None:
    _seed(store_url)
    run_sql(store_url, statement, *args)


def test_a_mapping_to_a_declared_field_is_accepted_and_keeps_the_field(store_url: str) -> None:
    _seed(store_url)
    run_sql(store_url, FIELD, "acme", "customer_id", "Customer ID", "C[0-9]{6}")
    run_sql(store_url, MAPPING, "acme", 1, "extra_values.customer_id", "custom_fields.customer_id")
    with pytest.raises(asyncpg.ForeignKeyViolationError) as refused:
        run_sql(store_url, "DELETE FROM custom_fields WHERE key = 'customer_id'")
    assert refused.value.constraint_name == "mappings_custom_field_declared"


def test_removing_a_community_cascades_to_its_rows(store_url: str) -> None:
    _seed(store_url)
    run_sql(store_url, COMMUNITY, "other", "reject", 3600, 10)
    for cid in ("acme", "other"):
        run_sql(store_url, KEY, cid, "k1", "HS256", SECRET, None)
        run_sql(store_url, FIELD, cid, "customer_id", "Customer ID", None)
        run_sql(store_url, MAPPING, cid, 3, "uuid", "custom_fields.customer_id")
    run_sql(store_url, "DELETE FROM communities WHERE id = 'acme'")
    for table in ("jwt_keys", "custom_fields", "mappings"):
        rows = run_sql(store_url, f"SELECT DISTINCT community_id FROM {table}")
        assert [r["community_id"] for r in rows] == ["other"], table


# ---------------------------------------------------------------- notifications (C1)

ADD_KEY = (
    f"INSERT INTO jwt_keys (community_id, kid, alg, hmac_secret) VALUES ('acme', 'k1', 'HS256', '{SECRET}')"
)


async def _notifications(url: str, statements: list[str]) -> list[str]:
    """Payloads received on the channel while each statement runs in its own transaction."""
    received: list[str] = []
    listener = await asyncpg.connect(url)
    writer = await asyncpg.connect(url)
    try:
        await listener.add_listener(NOTIFY_CHANNEL, lambda *args: received.append(args[3]))
        for statement in statements:
            await writer.execute(statement)
        await writer.execute("SELECT pg_notify($1, 'end')", NOTIFY_CHANNEL)
        for _ in range(200):
            if received and received[-1] == "end":
                break
            await asyncio.sleep(0.01)
        return received[:-1]
    finally:
        await listener.close()
        await writer.close()


async def test_every_change_to_every_table_notifies_the_community_id(store_url: str) -> None:
    statements = [
        "INSERT INTO communities (id, signed_identities) VALUES ('acme', 'reject'), ('beta', 'reject')",
        ADD_KEY,
        "UPDATE jwt_keys SET kid = 'k2' WHERE community_id = 'acme'",
        "DELETE FROM jwt_keys WHERE community_id = 'acme'",
        "INSERT INTO custom_fields (community_id, key, label) VALUES ('beta', 'f', 'F')",
        "UPDATE custom_fields SET label = 'G'",
        "INSERT INTO mappings (community_id, position, source, target) "
        "VALUES ('beta', 0, 'uuid', 'custom_fields.f')",
        "UPDATE mappings SET source = 'extra_values.x'",
        "DELETE FROM mappings",
        "DELETE FROM custom_fields",
        "UPDATE communities SET signed_identities = 'reject' WHERE id = 'acme'",
        "DELETE FROM communities WHERE id = 'acme'",
        "TRUNCATE communities CASCADE",
    ]
    payloads = await _notifications(store_url, statements)
    assert payloads == [
        "acme",
        "beta",
        "acme",
        "acme",
        "acme",
        "beta",
        "beta",
        "beta",
        "beta",
        "beta",
        "beta",
        "acme",
        "acme",
        "*",  # TRUNCATE: reload everything
    ]


async def test_a_transaction_notifies_each_community_once_at_commit(store_url: str) -> None:
    statements = [
        "BEGIN; INSERT INTO communities (id) VALUES ('acme'); "
        f"{ADD_KEY}; "
        "INSERT INTO custom_fields (community_id, key, label) VALUES ('acme', 'f', 'F'); COMMIT",
        "BEGIN; INSERT INTO communities (id) VALUES ('gone'); ROLLBACK",
        "DELETE FROM communities WHERE id = 'acme'",  # the cascade notifies once too
    ]
    assert await _notifications(store_url, statements) == ["acme", "acme"]


# ---------------------------------------------------------------- migrations


async def test_migrate_is_idempotent(fresh_db: str) -> None:
    conn = await asyncpg.connect(fresh_db)
    try:
        first = await migrate(conn)
        again = await migrate(conn)
        versions = await conn.fetch("SELECT version, name FROM schema_migrations")
    finally:
        await conn.close()
    shipped = [m.version for m in available_migrations()]  # numbers are taken by issue: gaps may exist
    assert [m.version for m in first] == shipped and shipped[-1] == LATEST_VERSION
    assert again == []
    assert sorted(r["version"] for r in versions) == shipped


def test_migrate_from_several_processes_at_once(fresh_db: str) -> None:
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(
            pool.map(lambda _: cli_subprocess("db", "migrate", "--database-url", fresh_db), range(6))
        )
    assert [r.code for r in results] == [0] * 6, [r.err for r in results]
    assert sum("applied 0001_configuration" in r.out for r in results) == 1
    assert sum("nothing to do" in r.out for r in results) == 5
    assert len(run_sql(fresh_db, "SELECT * FROM schema_migrations")) == len(available_migrations())


def test_migrate_uses_database_url_from_the_environment(fresh_db: str) -> None:
    done = cli_subprocess("db", "migrate", env={"DATABASE_URL": fresh_db})
    assert done.code == 0
    applied = [f"applied {m.version:04d}_{m.name}" for m in available_migrations()]
    assert done.out.splitlines() == [*applied, f"schema is at version {LATEST_VERSION}"]


def test_an_edited_applied_migration_is_refused(fresh_db: str) -> None:
    asyncio.run(migrated(fresh_db))
    run_sql(fresh_db, "UPDATE schema_migrations SET checksum = 'edited'")
    done = cli_subprocess("db", "migrate", "--database-url", fresh_db)
    assert done.code == 1
    assert "0001_configuration was changed after it was applied" in done.err


def test_a_database_from_a_newer_release_is_refused(fresh_db: str) -> None:
    asyncio.run(migrated(fresh_db))
    run_sql(fresh_db, "INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'future', 'x')")
    done = cli_subprocess("db", "migrate", "--database-url", fresh_db)
    assert (done.code, done.err.count("\n")) == (1, 1)
    assert "newer than this release" in done.err


def test_a_database_missing_a_migration_below_the_highest_says_to_migrate(fresh_db: str, cli: Cli) -> None:
    """Migrations are numbered as they are written and may land out of order (T5's 0007
    before 0006): a database at the highest version that lacks a lower one is not ready."""
    asyncio.run(migrated(fresh_db))
    lowest_but_one = available_migrations()[1].version
    run_sql(fresh_db, "DELETE FROM schema_migrations WHERE version = $1", lowest_but_one)
    result = cli("community", "list", "--database-url", fresh_db)
    assert (result.code, result.err.count("\n")) == (1, 1), result
    assert "run `identity-worker db migrate`" in result.err


def test_commands_on_an_unmigrated_database_say_to_migrate(admin_database_url: str, cli: Cli) -> None:
    empty = stack.create_database(admin_database_url)
    try:
        results = [
            cli(*args, "--database-url", empty)
            for args in (
                ("community", "list"),
                ("community", "add", "acme", "--mode", "reject"),
                ("config", "export"),
            )
        ]
    finally:
        stack.drop_database(admin_database_url, empty)
    for result in results:
        assert result.code == 1
        assert result.err.count("\n") == 1
        assert "run `identity-worker db migrate`" in result.err


# ---------------------------------------------------------------- S1 in the database (migration 0002)


async def _commit(url: str, *statements: str) -> None:
    """The statements in one transaction: S1 is judged at its COMMIT (deferred)."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            for statement in statements:
                await conn.execute(statement)
    finally:
        await conn.close()


async def _s1_refuses(url: str, *statements: str) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await _commit(url, *statements)
    assert refused.value.constraint_name == "communities_require_key"
    assert "communities_require_key" in CONSTRAINT_RULES


ACME_REQUIRE = "INSERT INTO communities (id, signed_identities) VALUES ('acme', 'require')"
ACME_REJECT = "INSERT INTO communities (id, signed_identities) VALUES ('acme', 'reject')"
ADD_K2 = ADD_KEY.replace("'k1'", "'k2'")


async def test_issue12_kind7_s1_a_require_community_is_committed_only_with_a_key(store_url: str) -> None:
    """In the database: `community add acme` (require) with no key was stored.
    A constraint trigger checks at commit, so adding the community then its key in one
    transaction works, and nothing else does."""
    await _s1_refuses(store_url, ACME_REQUIRE)
    await _s1_refuses(store_url, "INSERT INTO communities (id) VALUES ('acme')")  # require by default
    await _commit(store_url, ACME_REQUIRE, ADD_KEY)
    conn = await asyncpg.connect(store_url)
    try:
        assert [r["kid"] for r in await conn.fetch("SELECT kid FROM jwt_keys")] == ["k1"]
    finally:
        await conn.close()


async def test_s1_removing_the_last_key_or_switching_to_require_without_one_is_refused(
    store_url: str,
) -> None:
    await _commit(store_url, ACME_REQUIRE, ADD_KEY)
    await _s1_refuses(store_url, "DELETE FROM jwt_keys WHERE community_id = 'acme'")
    beta = "INSERT INTO communities (id, signed_identities) VALUES ('beta', 'reject')"
    await _s1_refuses(store_url, beta, "UPDATE jwt_keys SET community_id = 'beta'")  # the key moves away
    await _commit(store_url, ADD_K2, "DELETE FROM jwt_keys WHERE kid = 'k1'")  # rotation, one transaction
    await _commit(store_url, "UPDATE communities SET signed_identities = 'reject'")
    await _commit(store_url, "DELETE FROM jwt_keys")  # reject mode needs no key
    await _s1_refuses(store_url, "UPDATE communities SET signed_identities = 'require'")
    await _commit(store_url, ADD_KEY, "UPDATE communities SET signed_identities = 'require'")
    await _commit(store_url, "DELETE FROM communities")  # the cascade takes the keys with it


async def test_s1_truncating_the_keys_under_a_require_community_is_refused(store_url: str) -> None:
    await _commit(store_url, ACME_REQUIRE, ADD_KEY, ACME_REJECT.replace("acme", "beta"))
    await _s1_refuses(store_url, "TRUNCATE jwt_keys")
    await _commit(store_url, "TRUNCATE communities CASCADE")  # both tables emptied: nothing breaks S1


async def test_s1_a_community_stored_before_0002_still_loads_until_it_is_changed(store_url: str) -> None:
    """Rows written before the rule (trigger off, as in an old schema) load for the worker; a
    change to that community must fix it."""
    await _commit(
        store_url,
        "ALTER TABLE communities DISABLE TRIGGER communities_require_key",
        ACME_REQUIRE,
        "ALTER TABLE communities ENABLE TRIGGER communities_require_key",
    )
    conn = await asyncpg.connect(store_url)
    try:
        communities = await load_all_communities(conn)
    finally:
        await conn.close()
    assert communities["acme"].mode.value == "require" and not communities["acme"].keys
    await _s1_refuses(store_url, "UPDATE communities SET leeway_seconds = 5")
    await _commit(store_url, ADD_KEY)


@pytest.mark.parametrize(
    "first,second",
    [
        ("DELETE FROM jwt_keys WHERE kid = 'k1'", "DELETE FROM jwt_keys WHERE kid = 'k2'"),
        ("UPDATE communities SET signed_identities = 'require'", "DELETE FROM jwt_keys"),
    ],
)
async def test_review_s1_two_concurrent_transactions_cannot_each_remove_one_of_two_keys(
    store_url: str, first: str, second: str
) -> None:
    """S1 in the database: two transactions that each removed one
    of a require community's two keys (or one switched it to require while the other removed
    its only key) both passed the check, each seeing the other's row, and both committed: a
    require community with no key (write skew). The checks run at statement end here
    (SET CONSTRAINTS IMMEDIATE) to make the interleaving certain; at COMMIT the window is the
    same, only narrower."""
    if second == "DELETE FROM jwt_keys":
        await _commit(store_url, ACME_REJECT, ADD_KEY)
    else:
        await _commit(store_url, ACME_REQUIRE, ADD_KEY, ADD_K2)
    one, two = await asyncpg.connect(store_url), await asyncpg.connect(store_url)
    try:
        for conn in (one, two):
            await conn.execute("BEGIN; SET CONSTRAINTS ALL IMMEDIATE")
        await one.execute(first)
        waiting = asyncio.create_task(two.execute(second))
        await asyncio.sleep(0.5)  # the second's check is under way (it waits for the first, with the fix)
        await one.execute("COMMIT")
        with pytest.raises(asyncpg.CheckViolationError) as refused:
            await waiting
        assert refused.value.constraint_name == "communities_require_key"
        await two.execute("ROLLBACK")
        row = await one.fetchrow(
            "SELECT signed_identities, (SELECT count(*) FROM jwt_keys) AS keys FROM communities"
        )
        assert row is not None and (row["signed_identities"], row["keys"]) == ("require", 1)
    finally:
        await one.close()
        await two.close()


async def test_review_s1_one_transaction_may_write_many_communities(store_url: str) -> None:
    """The S1 check's per-community lock must not take a slot of the shared lock table (an
    advisory lock per community failed with "out of shared memory" at about 25 000 communities
    written in one transaction, as `config apply` of a large export does)."""
    count = 30_000
    await _commit(
        store_url,
        f"INSERT INTO communities (id) SELECT 'c' || g FROM generate_series(1, {count}) g",
        "INSERT INTO jwt_keys (community_id, kid, alg, hmac_secret) "
        f"SELECT 'c' || g, 'k', 'HS256', '{SECRET}' FROM generate_series(1, {count}) g",
    )
    conn = await asyncpg.connect(store_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM jwt_keys") == count
    finally:
        await conn.close()
