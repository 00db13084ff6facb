"""The admin commands (DESIGN §7): every command's success path, each validation
error, exit codes (2: wrong input, 1: environment), nothing written on error, and no secret
ever printed — not even in a database error."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import asyncpg
import click
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.store import SECRET, SECRET_2, Cli, cli_subprocess, run_sql
from worker.store.db import StoreUnavailable, address, translate

pytestmark = pytest.mark.integration

_PRIVATE = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC_PEM = (
    _PRIVATE.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)
PRIVATE_PEM = _PRIVATE.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
).decode()
SMALL_PEM = (
    rsa.generate_private_key(public_exponent=65537, key_size=1024)
    .public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    .decode()
)
ALL_SECRETS = (SECRET, SECRET_2, SECRET.upper(), SECRET[:23], PRIVATE_PEM.splitlines()[1])


def snapshot(url: str) -> list[object]:
    """Every row of every configuration table, to prove a refused command wrote nothing."""
    return [
        [tuple(r) for r in run_sql(url, f"SELECT * FROM {table} ORDER BY 1, 2")]
        for table in ("communities", "jwt_keys", "custom_fields", "mappings")
    ]


@pytest.fixture
def seeded(cli: Cli, tmp_path: Path) -> Cli:
    """acme: an HS256 key k1, a custom field, two mappings; other: empty, reject mode."""
    for args in (
        ("community", "add", "acme", "--kid", "k1", "--hmac-secret", SECRET),  # S1: with its first key
        ("community", "add", "other", "--mode", "reject"),
        ("fields", "add", "acme", "customer_id", "--label", "Customer ID", "--regex", "C[0-9]{6}"),
        ("mappings", "add", "acme", "extra_values.customer_id", "custom_fields.customer_id"),
        ("mappings", "add", "acme", "uuid", "identity_group.notes"),
    ):
        assert cli(*args).code == 0, args
    return cli


def assert_no_secret(text: str) -> None:
    for secret in ALL_SECRETS:
        assert secret not in text


# ---------------------------------------------------------------- success paths


def test_community_add_list_set_remove(cli: Cli, store_url: str) -> None:
    added = cli("community", "add", "acme", "--kid", "k1", "--hmac-secret", "-", stdin=SECRET + "\n")
    assert added.code == 0
    assert added.out.splitlines()[0] == (
        "+ community acme (signed_identities require, min_validity_seconds 3600, leeway_seconds 10)"
    )
    assert added.out.splitlines()[1].startswith("+ key acme/k1 (HS256 sha256:") and SECRET not in added.output
    custom = cli(
        "community",
        "add",
        "shop-2",
        "--mode",
        "reject",
        "--min-validity-seconds",
        "0",
        "--leeway-seconds",
        "3600",
    )
    assert custom.code == 0
    rows = run_sql(store_url, "SELECT * FROM communities ORDER BY id")
    assert [
        (r["id"], r["signed_identities"], r["min_validity_seconds"], r["leeway_seconds"]) for r in rows
    ] == [
        ("acme", "require", 3600, 10),
        ("shop-2", "reject", 0, 3600),
    ]

    listed = cli("community", "list").out.splitlines()
    header = "ID MODE MIN_VALIDITY_S LEEWAY_S MAX_VALIDITY_S RETIREMENT_S KEYS FIELDS MAPPINGS CREATED"
    assert listed[0].split() == header.split()
    assert listed[1].split()[:9] == ["acme", "require", "3600", "10", "-", "86400", "1", "0", "0"]
    assert listed[2].split()[:9] == ["shop-2", "reject", "0", "3600", "-", "86400", "0", "0", "0"]

    assert cli("community", "set-mode", "acme", "reject").out == (
        "~ community acme: signed_identities require -> reject\n"
    )
    assert cli("community", "set-mode", "acme", "reject").out == "no changes\n"
    changed = cli("community", "set", "acme", "--min-validity-seconds", "60", "--leeway-seconds", "5")
    assert changed.out == "~ community acme: min_validity_seconds 3600 -> 60, leeway_seconds 10 -> 5\n"

    removed = cli("community", "remove", "shop-2")
    assert removed.out == "- community shop-2 (0 key(s), 0 custom field(s), 0 mapping(s))\n"
    assert [r["id"] for r in run_sql(store_url, "SELECT id FROM communities")] == ["acme"]


def test_community_list_when_empty(cli: Cli) -> None:
    assert cli("community", "list").out == "no communities\n"


def test_community_remove_cascades(seeded: Cli, store_url: str) -> None:
    result = seeded("community", "remove", "acme")
    assert result.out == "- community acme (1 key(s), 1 custom field(s), 2 mapping(s))\n"
    for table in ("jwt_keys", "custom_fields", "mappings"):
        assert run_sql(store_url, f"SELECT * FROM {table}") == []


def test_keys_add_list_remove_never_show_the_secret(seeded: Cli, store_url: str, tmp_path: Path) -> None:
    pem_file = tmp_path / "public.pem"
    pem_file.write_text(PUBLIC_PEM)
    outputs = []
    via_stdin = seeded("keys", "add", "acme", "k2", "--hmac-secret", "-", stdin=SECRET_2 + "\n")
    assert via_stdin.code == 0
    assert via_stdin.out.startswith("+ key acme/k2 (HS256 sha256:")
    rsa_added = seeded("keys", "add", "acme", "acme_rsa", "--rsa-public-key", str(pem_file))
    assert rsa_added.out.startswith("+ key acme/acme_rsa (RS256 sha256:")
    listed = seeded("keys", "list", "acme")
    outputs += [via_stdin.output, rsa_added.output, listed.output]
    lines = listed.out.splitlines()
    assert lines[0].split() == ["KID", "ALG", "FINGERPRINT", "CREATED", "LAST_USED", "USES_24H"]
    assert [line.split()[:2] for line in lines[1:]] == [
        ["k1", "HS256"],
        ["k2", "HS256"],
        ["acme_rsa", "RS256"],
    ]
    assert all(line.split()[2].startswith("sha256:") and len(line.split()[2]) == 23 for line in lines[1:])
    assert run_sql(store_url, "SELECT hmac_secret FROM jwt_keys WHERE kid = 'k2'")[0][0] == SECRET_2

    removed = seeded("keys", "remove", "acme", "k1")  # others remain: S1 holds
    outputs.append(removed.output)
    assert removed.out.startswith("- key acme/k1 (HS256 sha256:")
    assert [r["kid"] for r in run_sql(store_url, "SELECT kid FROM jwt_keys ORDER BY kid")] == [
        "acme_rsa",
        "k2",
    ]
    assert seeded("keys", "list", "other").out == "community other has no keys\n"
    for text in outputs:
        assert_no_secret(text)


def test_rsa_public_key_from_stdin(seeded: Cli, store_url: str) -> None:
    assert seeded("keys", "add", "acme", "rsa_stdin", "--rsa-public-key", "-", stdin=PUBLIC_PEM).code == 0
    stored = run_sql(store_url, "SELECT alg, rsa_public_key FROM jwt_keys WHERE kid = 'rsa_stdin'")[0]
    assert (stored["alg"], stored["rsa_public_key"]) == ("RS256", PUBLIC_PEM)


def test_fields_add_list_remove(seeded: Cli) -> None:
    assert (
        seeded("fields", "add", "acme", "tier", "--label", "Tier").out == "+ field acme/tier (label 'Tier')\n"
    )
    listed = seeded("fields", "list", "acme").out.splitlines()
    assert listed[0].split() == ["KEY", "LABEL", "REGEX", "CREATED"]
    assert [line.split()[0] for line in listed[1:]] == ["customer_id", "tier"]
    assert "C[0-9]{6}" in listed[1] and " - " in listed[2]
    assert seeded("fields", "remove", "acme", "tier").out == "- field acme/tier (label 'Tier')\n"
    assert seeded("fields", "list", "other").out == "community other has no custom fields\n"


def test_mappings_keep_their_order(seeded: Cli, store_url: str) -> None:
    """M2: `add` appends; `remove` keeps the others in order."""
    assert seeded("mappings", "add", "acme", "extra_values.mail", "identity_group.emails").code == 0
    assert seeded("mappings", "remove", "acme", "uuid", "identity_group.notes").out == (
        "- mapping acme: uuid -> identity_group.notes\n"
    )
    assert seeded("mappings", "add", "acme", "uuid", "identity_group.notes").out == (
        "+ mapping acme: uuid -> identity_group.notes\n"
    )
    listed = seeded("mappings", "list", "acme").out.splitlines()
    assert [line.split()[:3] for line in listed[1:]] == [
        ["1", "extra_values.customer_id", "custom_fields.customer_id"],
        ["2", "extra_values.mail", "identity_group.emails"],
        ["3", "uuid", "identity_group.notes"],
    ]
    positions = run_sql(store_url, "SELECT position FROM mappings ORDER BY position")
    assert [r[0] for r in positions] == sorted(r[0] for r in positions)
    assert seeded("mappings", "list", "other").out == "community other has no mappings\n"


# ---------------------------------------------------------------- refusals: exit 2, nothing written

REFUSED: list[tuple[tuple[str, ...], str]] = [
    # community
    (("community", "add", "acme", "--mode", "reject"), "community 'acme' already exists"),
    # S1: a community that requires signed identities always has a key
    (
        ("community", "add", "new"),
        "community new would require signed identities with no key (S1): give its first key "
        "(--kid KID with --hmac-secret SECRET or --rsa-public-key FILE), or add it with --mode reject",
    ),
    (("community", "add", "new", "--mode", "require"), "would require signed identities with no key (S1)"),
    (("community", "add", "new", "--hmac-secret", SECRET), "--kid: give the key ID of the first key"),
    (
        ("community", "add", "new", "--kid", "k1"),
        "give exactly one of --hmac-secret (HS256) or --rsa-public-key",
    ),
    (("community", "add", "new", "--kid", "K!", "--hmac-secret", SECRET), "invalid key: kid: kid must match"),
    (
        ("community", "set-mode", "other", "require"),
        "community 'other' has no JWT key, so it cannot require signed identities (S1): add its key first "
        "(`keys add other KID ...`), then switch it to require",
    ),
    (("community", "set", "other", "--mode", "require"), "cannot require signed identities (S1)"),
    (
        ("keys", "remove", "acme", "k1"),
        "key 'k1' is the last key of community 'acme', which requires signed identities (S1): add its new "
        "key first (`keys add`), or switch it to reject (`community set-mode acme reject`)",
    ),
    (("community", "add", "bad id"), "invalid community: id: String should match pattern"),
    (("community", "add", "x" * 65), "invalid community: id"),
    (
        ("community", "add", "new", "--mode", "maybe"),
        "signed_identities: Input should be 'require' or 'reject'",
    ),
    (
        ("community", "add", "new", "--min-validity-seconds", "-1"),
        "min_validity_seconds: Input should be greater",
    ),
    (
        ("community", "add", "new", "--min-validity-seconds", "31622401"),
        "min_validity_seconds: Input should be less",
    ),
    (
        ("community", "add", "new", "--leeway-seconds", "3601"),
        "leeway_seconds: Input should be less than or equal",
    ),
    (("community", "add", "new", "--leeway-seconds", "ten"), "'ten' is not a valid integer"),
    (("community", "add"), "Missing argument 'ID'"),
    (
        ("community", "set-mode", "acme", "REQUIRE"),
        "signed_identities: Input should be 'require' or 'reject'",
    ),
    (("community", "set-mode", "nobody", "reject"), "unknown community 'nobody'"),
    (("community", "set-mode", "bad id", "reject"), "invalid community: id"),
    (("community", "set", "acme"), "nothing to change"),
    (("community", "set", "acme", "--leeway-seconds", "-5"), "leeway_seconds: Input should be greater"),
    (("community", "remove", "nobody"), "unknown community 'nobody'"),
    (("community", "remove", "bad/id"), "invalid community: id"),
    # keys
    (("keys", "add", "acme", "k9"), "give exactly one of --hmac-secret (HS256) or --rsa-public-key"),
    (
        ("keys", "add", "acme", "k9", "--hmac-secret", SECRET, "--rsa-public-key", "x.pem"),
        "give exactly one of",
    ),
    (("keys", "add", "acme", "k1", "--hmac-secret", SECRET_2), "already has a key with kid 'k1'"),
    (
        ("keys", "add", "acme", "Bad-Kid", "--hmac-secret", SECRET),
        "invalid key: kid: kid must match ^[a-z0-9_]+$",
    ),
    (("keys", "add", "acme", "k" * 65, "--hmac-secret", SECRET), "at most 64 characters"),
    (
        ("keys", "add", "acme", "k9", "--hmac-secret", SECRET[:23]),
        "hmac_secret must be exactly 24 characters",
    ),
    (
        ("keys", "add", "acme", "k9", "--hmac-secret", SECRET.upper()),
        "hmac_secret must be exactly 24 characters",
    ),
    (
        ("keys", "add", "acme", "k9", "--rsa-public-key", "/nonexistent.pem"),
        "cannot read RSA public key file",
    ),
    (("keys", "add", "nobody", "k9", "--hmac-secret", SECRET), "unknown community 'nobody'"),
    (("keys", "add", "bad id", "k9", "--hmac-secret", SECRET), "invalid community: id"),
    (("keys", "list", "nobody"), "unknown community 'nobody'"),
    (("keys", "remove", "acme", "k9"), "community 'acme' has no key with kid 'k9'"),
    (("keys", "remove", "nobody", "k1"), "unknown community 'nobody'"),
    # fields
    (
        ("fields", "add", "acme", "Tier", "--label", "Tier"),
        "invalid custom field: key: String should match pattern",
    ),
    (
        ("fields", "add", "acme", "tier", "--label", ""),
        "invalid custom field: label: String should have at least 1",
    ),
    (("fields", "add", "acme", "tier", "--label", "L" * 256), "label: String should have at most 255"),
    (("fields", "add", "acme", "tier"), "Missing option '--label'"),
    (
        ("fields", "add", "acme", "tier", "--label", "T", "--regex", "(?<=a)b"),
        "regex is not valid RE2 syntax",
    ),
    (("fields", "add", "acme", "tier", "--label", "T", "--regex", "a" * 1025), "regex is longer than 1024"),
    (
        ("fields", "add", "acme", "customer_id", "--label", "Again"),
        "already has a custom field 'customer_id'",
    ),
    (("fields", "add", "nobody", "tier", "--label", "T"), "unknown community 'nobody'"),
    (("fields", "remove", "acme", "customer_id"), "is the target of mapping extra_values.customer_id"),
    (("fields", "remove", "acme", "nothing"), "has no custom field 'nothing'"),
    (("fields", "list", "nobody"), "unknown community 'nobody'"),
    # mappings
    (
        ("mappings", "add", "acme", "email", "identity_group.notes"),
        "from must be 'uuid' or 'extra_values.<key>'",
    ),
    (("mappings", "add", "acme", "extra_values.", "identity_group.notes"), "from must be 'uuid'"),
    (("mappings", "add", "acme", "uuid", "identity_group.email"), "to must be 'identity_group.<"),
    (
        ("mappings", "add", "acme", "uuid", "custom_fields.tier"),
        "names custom field 'tier', which is not declared",
    ),
    (
        ("mappings", "add", "acme", "uuid", "identity_group.notes"),
        "already has mapping uuid -> identity_group.notes",
    ),
    (("mappings", "add", "nobody", "uuid", "identity_group.notes"), "unknown community 'nobody'"),
    (
        ("mappings", "remove", "acme", "uuid", "identity_group.company"),
        "has no mapping uuid -> identity_group.company",
    ),
    (("mappings", "remove", "acme", "uuid", "bad"), "to must be"),
    (("mappings", "list", "nobody"), "unknown community 'nobody'"),
    # config
    (("config", "export", "--community", "nobody"), "unknown community 'nobody'"),
    (("config", "apply", "/nonexistent.yaml"), "cannot read configuration file /nonexistent.yaml"),
]


@pytest.mark.parametrize(("args", "message"), REFUSED, ids=[" ".join(a)[:60] for a, _ in REFUSED])
def test_a_refused_command_says_why_in_one_line_exits_2_and_writes_nothing(
    seeded: Cli, store_url: str, args: tuple[str, ...], message: str
) -> None:
    before = snapshot(store_url)
    result = seeded(*args)
    assert result.code == 2, result
    assert result.out == ""
    assert result.err.startswith("identity-worker: error: ") and result.err.count("\n") == 1, result.err
    assert message in result.err
    assert_no_secret(result.output)
    assert snapshot(store_url) == before


@pytest.mark.parametrize(
    ("pem", "message"),
    [
        (PRIVATE_PEM, "rsa_public_key is a private key"),
        (SMALL_PEM, "rsa_public_key has 1024 bits; at least 2048 required"),
        ("hello", "rsa_public_key must be PEM"),
        (
            PUBLIC_PEM + PUBLIC_PEM,
            "rsa_public_key holds 2 PEM blocks; give one key per value",
        ),
    ],
)
def test_a_bad_rsa_key_file_is_refused(
    seeded: Cli, store_url: str, tmp_path: Path, pem: str, message: str
) -> None:
    path = tmp_path / "key.pem"
    path.write_text(pem)
    before = snapshot(store_url)
    result = seeded("keys", "add", "acme", "rsa", "--rsa-public-key", str(path))
    assert (result.code, result.err.count("\n")) == (2, 1)
    assert message in result.err
    assert_no_secret(result.output)
    assert snapshot(store_url) == before


def test_issue12_kind7_s1_the_ways_that_work(seeded: Cli, store_url: str, tmp_path: Path) -> None:
    """`community add acme` (require) succeeded with no key, so every signed
    event became unknown_kid. What works instead: create it with its first key, or in reject
    mode then add a key and switch; rotate by adding before removing; switch to reject to
    remove the last key."""
    pem = tmp_path / "public.pem"
    pem.write_text(PUBLIC_PEM)
    assert seeded("community", "add", "rsa_shop", "--kid", "rsa_1", "--rsa-public-key", str(pem)).code == 0
    assert seeded("keys", "add", "other", "o1", "--hmac-secret", SECRET_2).code == 0
    assert seeded("community", "set-mode", "other", "require").code == 0
    assert seeded("keys", "add", "acme", "k2", "--hmac-secret", SECRET_2).code == 0
    assert seeded("keys", "remove", "acme", "k1").code == 0  # k2 remains
    assert seeded("community", "set-mode", "acme", "reject").code == 0
    assert seeded("keys", "remove", "acme", "k2").code == 0  # reject mode needs no key
    rows = run_sql(
        store_url,
        "SELECT id, signed_identities, (SELECT count(*) FROM jwt_keys k WHERE k.community_id = c.id) AS n "
        "FROM communities c ORDER BY id",
    )
    assert [tuple(r) for r in rows] == [
        ("acme", "reject", 0),
        ("other", "require", 1),
        ("rsa_shop", "require", 1),
    ]


def test_a_bad_secret_on_stdin_is_refused_without_echo(seeded: Cli, store_url: str) -> None:
    before = snapshot(store_url)
    result = seeded("keys", "add", "acme", "k9", "--hmac-secret", "-", stdin=SECRET.upper())
    assert result.code == 2
    assert "hmac_secret must be exactly 24 characters of 0-9a-f" in result.err
    assert_no_secret(result.output)
    assert snapshot(store_url) == before


# ---------------------------------------------------------------- environment failures: exit 1


def test_no_database_url_is_a_usage_error(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL")
    result = cli("community", "list")
    assert (result.code, result.err) == (
        2,
        "identity-worker: error: no database: give --database-url or set DATABASE_URL\n",
    )


def test_an_invalid_database_url_is_a_usage_error(cli: Cli) -> None:
    result = cli("community", "list", "--database-url", "mysql://root:hunter2@db/x")
    assert result.code == 2
    assert "not a valid PostgreSQL URL" in result.err
    assert "hunter2" not in result.output


def test_an_unreachable_database_is_one_line_exit_1_without_the_password(cli: Cli) -> None:
    from tests.support.ports import free_port

    url = f"postgresql://identity:hunter2@127.0.0.1:{free_port()}/identity"
    for args in (
        ("community", "list"),
        ("keys", "add", "acme", "k1", "--hmac-secret", SECRET),
        ("db", "migrate"),
    ):
        result = cli(*args, "--database-url", url)
        assert result.code == 1
        assert result.err.startswith("identity-worker: error: cannot reach PostgreSQL at 127.0.0.1:")
        assert result.err.count("\n") == 1
        assert "hunter2" not in result.output
        assert_no_secret(result.output)


def test_exit_codes_of_the_console_script(seeded: Cli, store_url: str) -> None:
    env = {"DATABASE_URL": store_url}
    ok = cli_subprocess("keys", "list", "acme", env=env)
    assert ok.code == 0 and "k1" in ok.out
    bad = cli_subprocess("keys", "add", "acme", "k2", "--hmac-secret", SECRET[:23], env=env)
    assert (bad.code, bad.out, bad.err.count("\n")) == (2, "", 1)
    assert_no_secret(bad.output)
    down = cli_subprocess("community", "list", "--database-url", "postgresql://identity@127.0.0.1:1/identity")
    assert (down.code, down.err.count("\n")) == (1, 1)


def test_every_command_teaches_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    from worker.cli.main import cli, main

    commands = {
        "db": ["migrate"],
        "community": ["add", "set-mode", "set", "list", "remove"],
        "keys": ["add", "list", "remove"],
        "fields": ["add", "list", "remove"],
        "mappings": ["add", "list", "remove"],
        "config": ["apply", "export"],
    }
    assert isinstance(cli, click.Group) and set(commands) <= set(cli.commands)
    for group, names in commands.items():
        for name in names:
            with pytest.raises(SystemExit) as done:
                main([group, name, "--help"])
            out = capsys.readouterr().out
            assert done.value.code == 0, (group, name)
            assert "Example" in out and f"identity-worker {group} {name}" in out, (group, name)
            assert "--database-url" in out
            assert EXIT_STATUS in " ".join(out.split()), (group, name)  # click wraps the epilog


#: The epilog of every store command: the exit codes scripts rely on (worker/exitcodes.py).
EXIT_STATUS = (
    "Exit status: 0 done; 2 wrong input (nothing changed); 1 database unreachable or schema missing."
)


# ---------------------------------------------------------------- database errors are rephrased


def test_a_constraint_violation_is_rephrased_without_the_row(store_url: str) -> None:
    """PostgreSQL's detail quotes the failing row, secret included: it is never shown."""

    async def violate() -> asyncpg.PostgresError:
        conn = await asyncpg.connect(store_url)
        try:
            await conn.execute("INSERT INTO communities (id, signed_identities) VALUES ('acme', 'reject')")
            await conn.execute(
                "INSERT INTO jwt_keys (community_id, kid, alg, hmac_secret) "
                "VALUES ('acme', 'k1', 'RS256', $1)",
                SECRET,
            )
        except asyncpg.PostgresError as exc:
            return exc
        finally:
            await conn.close()
        raise AssertionError("the row was accepted")

    error = asyncio.run(violate())
    assert SECRET in str(error.detail)  # why rephrasing matters
    message = translate(error).message
    assert message == "refused by the database: HS256 needs an hmac_secret only, RS256 an rsa_public_key only"
    assert SECRET not in message


def test_an_error_that_is_not_a_connection_error_says_what_happened(store_url: str) -> None:
    """`translate` said "cannot reach PostgreSQL" for any error it did not know, a division by
    zero or a statement timeout included: each now says what PostgreSQL did."""

    async def fail(*statements: str) -> asyncpg.PostgresError:
        conn = await asyncpg.connect(store_url)
        try:
            for statement in statements:
                await conn.execute(statement)
        except asyncpg.PostgresError as exc:
            return exc
        finally:
            await conn.close()
        raise AssertionError("no error")

    where = address(store_url)
    division = translate(asyncio.run(fail("SELECT 1 / 0")), store_url)
    assert division.message == (
        f"PostgreSQL at {where} answered with an error: DivisionByZeroError (SQLSTATE 22012)"
    )
    timeout = translate(asyncio.run(fail("SET statement_timeout = 1", "SELECT pg_sleep(1)")), store_url)
    assert timeout.message == (
        f"PostgreSQL at {where} canceled the query (a statement timeout?): "
        "QueryCanceledError (SQLSTATE 57014)"
    )
    assert translate(ValueError("x")).message == "unexpected failure talking to PostgreSQL: ValueError"
    assert translate(ConnectionRefusedError(111, "Connection refused"), store_url).message == (
        f"cannot reach PostgreSQL at {where}: Connection refused"
    )
    # The class is unchanged (retried as before, K8); only the words are.
    assert all(isinstance(error, StoreUnavailable) for error in (division, timeout))


# ---------------------------------------------------------------- rows the model refuses


def _non_minimal_pkcs1(key: rsa.RSAPublicKey) -> str:
    """A PKCS#1 PEM whose modulus INTEGER carries two extra leading zero bytes: the store's
    CHECK counts its 2048 bits, `cryptography` (strict DER) cannot read it."""

    def tlv(tag: int, body: bytes) -> bytes:
        size = len(body)
        length = bytes([size]) if size < 128 else bytes([0x82]) + size.to_bytes(2, "big")
        return bytes([tag]) + length + body

    numbers = key.public_numbers()
    modulus = tlv(2, b"\x00\x00" + numbers.n.to_bytes(256, "big"))
    der = tlv(0x30, modulus + tlv(2, numbers.e.to_bytes(3, "big")))
    text = base64.b64encode(der).decode()
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return "\n".join(["-----BEGIN RSA PUBLIC KEY-----", *lines, "-----END RSA PUBLIC KEY-----"]) + "\n"


def test_a_read_that_meets_a_stored_row_the_model_refuses_says_so(seeded: Cli, store_url: str) -> None:
    """Rows inserted with SQL directly (they pass the CHECKs, not the model).
    A read names the stored community and exits 1, never "refused, the result would be
    invalid" as if a write of the user's had been refused; no secret is shown."""
    run_sql(
        store_url,
        "INSERT INTO jwt_keys (community_id, kid, alg, rsa_public_key) "
        "VALUES ('acme', 'odd_der', 'RS256', $1)",
        _non_minimal_pkcs1(_PRIVATE.public_key()),
    )
    listed = seeded("keys", "list", "acme")
    assert listed.code == 1, listed
    assert listed.err == (
        "identity-worker: error: stored community acme does not pass the model: "
        "key odd_der: rsa_public_key: rsa_public_key is not a readable PEM public key\n"
    )
    exported = seeded("config", "export", "--community", "acme")
    assert exported.code == 1, exported
    assert exported.err.startswith("identity-worker: error: stored community acme does not pass the model: ")
    assert "refused" not in exported.err and "would be invalid" not in exported.err

    run_sql(store_url, "INSERT INTO custom_fields VALUES ('other', 'f', 'F', '(?<=a)b')")  # RE2 refuses it
    other = seeded("config", "export", "--community", "other")
    assert other.code == 1, other
    assert other.err.startswith(
        "identity-worker: error: stored community other does not pass the model: custom_fields[0].regex: "
        "regex is not valid RE2 syntax"
    ), other.err
    for result in (listed, exported, other):
        assert_no_secret(result.output)
