"""`config apply` and `config export` (DESIGN §5, §7): one transaction, all or nothing; what
changed is printed; an export without secrets can never be applied as a key."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import stack
from tests.support.store import SECRET, SECRET_2, SECRET_3, Cli, migrated, run_sql
from worker.core.community import Community, prepare
from worker.core.config import ConfigError
from worker.devtools import examples
from worker.store.db import connect
from worker.store.loading import load_all_communities
from worker.store.yaml_io import load_config_file, parse_yaml

pytestmark = pytest.mark.integration


def config_yaml(*, mode: str = "require", acme_secret: str = SECRET, extra: str = "") -> str:
    pem = "".join(f"          {line}\n" for line in examples.public_pem().splitlines())
    return f"""\
communities:
  - id: acme
    signed_identities: {mode}
    jwt_keys:
      - kid: acme_2026
        hmac_secret: "{acme_secret}"
      - kid: acme_rsa
        rsa_public_key: |
{pem}    custom_fields:
      - key: customer_id
        label: Customer ID
        regex: "C[0-9]{{6}}"
    mappings:
      - from: extra_values.customer_id
        to: custom_fields.customer_id
      - from: uuid
        to: identity_group.notes
  - id: beta
    signed_identities: reject
    min_validity_seconds: 60
    leeway_seconds: 0
{extra}"""


WriteFile = Callable[..., str]


@pytest.fixture
def write(tmp_path: Path) -> WriteFile:
    """Write a configuration file; returns its path."""

    def _write(text: str, name: str = "config.yaml") -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return _write


def dump(url: str) -> list[object]:
    return [
        [tuple(r) for r in run_sql(url, f"SELECT * FROM {table} ORDER BY 1, 2")]
        for table in ("communities", "jwt_keys", "custom_fields", "mappings")
    ]


def test_apply_adds_then_reports_no_changes(cli: Cli, store_url: str, write: WriteFile) -> None:
    path = write(config_yaml())
    first = cli("config", "apply", path)
    assert first.code == 0, first.err
    lines = first.out.splitlines()
    assert (
        lines[0]
        == "+ community acme (signed_identities require, min_validity_seconds 3600, leeway_seconds 10)"
    )
    assert lines[1].startswith("+ key acme/acme_2026 (HS256 sha256:")
    assert lines[2].startswith("+ key acme/acme_rsa (RS256 sha256:")
    assert lines[3:6] == [
        "+ field acme/customer_id (label 'Customer ID', regex 'C[0-9]{6}')",
        "+ mapping acme: extra_values.customer_id -> custom_fields.customer_id",
        "+ mapping acme: uuid -> identity_group.notes",
    ]
    assert (
        lines[6] == "+ community beta (signed_identities reject, min_validity_seconds 60, leeway_seconds 0)"
    )
    assert lines[-1] == "applied: 7 added, 0 changed, 0 removed"
    assert SECRET not in first.output

    again = cli("config", "apply", path)
    assert again.out == "no changes\napplied: 0 added, 0 changed, 0 removed\n"


def test_apply_reports_changes_and_removals_within_a_community(
    cli: Cli, store_url: str, write: WriteFile
) -> None:
    cli("config", "apply", write(config_yaml()))
    changed = config_yaml(mode="reject", acme_secret=SECRET_2)
    changed = changed.replace("label: Customer ID", "label: Client")
    changed = changed.replace(
        "      - from: uuid\n        to: identity_group.notes\n",
        "      - from: extra_values.phone\n        to: identity_group.mobile_phones\n",
    )
    rsa_block = changed[changed.index("      - kid: acme_rsa") : changed.index("    custom_fields:")]
    changed = changed.replace(rsa_block, "")
    result = cli("config", "apply", write(changed, "changed.yaml"))
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == "~ community acme: signed_identities require -> reject"
    assert lines[1].startswith("- key acme/acme_rsa (RS256 sha256:")
    assert lines[2].startswith("~ key acme/acme_2026 (HS256 sha256:") and " -> HS256 sha256:" in lines[2]
    assert lines[3] == (
        "~ field acme/customer_id (label 'Customer ID', regex 'C[0-9]{6}' "
        "-> label 'Client', regex 'C[0-9]{6}')"
    )
    assert lines[4:6] == [
        "- mapping acme: uuid -> identity_group.notes",
        "+ mapping acme: extra_values.phone -> identity_group.mobile_phones",
    ]
    assert lines[-1] == "applied: 1 added, 3 changed, 2 removed"
    assert SECRET not in result.output and SECRET_2 not in result.output
    assert run_sql(store_url, "SELECT hmac_secret FROM jwt_keys")[0][0] == SECRET_2


def test_apply_reorders_mappings(cli: Cli, store_url: str, write: WriteFile) -> None:
    """M2: the order of the file is the order of application."""
    cli("config", "apply", write(config_yaml()))
    text = config_yaml()
    first = "      - from: extra_values.customer_id\n        to: custom_fields.customer_id\n"
    second = "      - from: uuid\n        to: identity_group.notes\n"
    result = cli("config", "apply", write(text.replace(first + second, second + first), "swapped.yaml"))
    assert (
        result.out.splitlines()[0]
        == "~ mapping acme: extra_values.customer_id -> custom_fields.customer_id moved"
    )
    rows = run_sql(store_url, "SELECT source FROM mappings WHERE community_id = 'acme' ORDER BY position")
    assert [r[0] for r in rows] == ["uuid", "extra_values.customer_id"]


def test_communities_absent_from_the_file_are_kept_unless_prune(
    cli: Cli, store_url: str, write: WriteFile
) -> None:
    cli("community", "add", "legacy", "--kid", "old", "--hmac-secret", SECRET_3)
    path = write(config_yaml())
    assert "legacy" not in cli("config", "apply", path).out
    assert {r[0] for r in run_sql(store_url, "SELECT id FROM communities")} == {"acme", "beta", "legacy"}
    dry = cli("config", "apply", path, "--prune", "--dry-run")
    assert dry.out == (
        "- community legacy (1 key(s), 0 custom field(s), 0 mapping(s))\n"
        "dry run, nothing written: would apply: 0 added, 0 changed, 1 removed\n"
    )
    assert {r[0] for r in run_sql(store_url, "SELECT id FROM communities")} == {"acme", "beta", "legacy"}
    pruned = cli("config", "apply", path, "--prune")
    assert pruned.out.splitlines()[0] == "- community legacy (1 key(s), 0 custom field(s), 0 mapping(s))"
    assert {r[0] for r in run_sql(store_url, "SELECT id FROM communities")} == {"acme", "beta"}
    assert run_sql(store_url, "SELECT * FROM jwt_keys WHERE community_id = 'legacy'") == []


def test_dry_run_writes_nothing(cli: Cli, store_url: str, write: WriteFile) -> None:
    result = cli("config", "apply", write(config_yaml()), "--dry-run")
    assert result.code == 0
    assert (
        result.out.splitlines()[-1] == "dry run, nothing written: would apply: 7 added, 0 changed, 0 removed"
    )
    assert dump(store_url) == [[], [], [], []]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # libyaml's parser (T4) places an unclosed flow sequence where the text ends
        ("communities: [", "line 2, column 1: did not find expected node content"),
        ("communities:\n  - id: a\n\tsigned_identities: reject\n", "line 3, column 1: "),
        ("- just a list", "the file must hold a mapping with a 'communities' list"),
        (
            config_yaml(acme_secret=SECRET[:23]),
            "communities[0].jwt_keys[0].hmac_secret: hmac_secret must be exactly 24",
        ),
        (config_yaml(extra="  - id: acme\n    signed_identities: reject\n"), "duplicate community id 'acme'"),
        (
            config_yaml(mode="maybe"),
            "communities[0].signed_identities: Input should be 'require' or 'reject'",
        ),
        (config_yaml().replace("to: custom_fields.customer_id", "to: custom_fields.nope"), "not declared"),
        (
            config_yaml(extra="  - id: gamma\n    colour: red\n"),
            "communities[2].colour: Extra inputs are not permitted",
        ),
        # a repeated key is refused, not resolved in favour of the last one
        (
            config_yaml(mode="require\n    signed_identities: reject"),
            "line 4: key 'signed_identities' repeated in one mapping (first at line 3); keep one",
        ),
        # S1: a community that requires signed identities comes with a key
        (
            config_yaml(extra="  - id: gamma\n"),
            "communities[2]: community gamma requires signed identities but has no JWT key (S1): "
            "give it a key (jwt_keys), or set signed_identities to reject",
        ),
        (
            config_yaml(extra="  - id: gamma\n    signed_identities: require\n    jwt_keys: []\n"),
            "community gamma requires signed identities but has no JWT key (S1)",
        ),
    ],
)
def test_a_bad_file_is_refused_whole(
    cli: Cli, store_url: str, write: WriteFile, text: str, message: str
) -> None:
    cli("community", "add", "legacy", "--mode", "reject")
    before = dump(store_url)
    result = cli("config", "apply", write(text))
    assert result.code == 2
    assert result.err.count("\n") == 1 and message in result.err
    assert SECRET not in result.output and SECRET[:23] not in result.output
    assert dump(store_url) == before


def test_a_failure_midway_rolls_everything_back(cli: Cli, store_url: str, write: WriteFile) -> None:
    """All or nothing: the database refuses the last community, after acme was rewritten."""
    cli("config", "apply", write(config_yaml()))
    before = dump(store_url)
    run_sql(
        store_url,
        "CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION "
        "USING ERRCODE = 'check_violation', CONSTRAINT = 'communities_id_format'; END $$",
    )
    run_sql(
        store_url,
        "CREATE TRIGGER test_refuse BEFORE INSERT ON communities FOR EACH ROW "
        "WHEN (NEW.id = 'zeta') EXECUTE FUNCTION test_refuse()",
    )
    text = config_yaml(
        mode="reject", acme_secret=SECRET_2, extra="  - id: zeta\n    signed_identities: reject\n"
    )
    try:
        result = cli("config", "apply", write(text, "midway.yaml"))
    finally:
        run_sql(store_url, "DROP FUNCTION test_refuse() CASCADE")
    assert result.code == 2
    assert (
        result.err
        == "identity-worker: error: refused by the database: community id must match ^[A-Za-z0-9_-]{1,64}$\n"
    )
    assert dump(store_url) == before


# ---------------------------------------------------------------- export


def test_export_without_secrets_cannot_be_applied(cli: Cli, store_url: str, write: WriteFile) -> None:
    cli("config", "apply", write(config_yaml()))
    exported = cli("config", "export")
    assert exported.code == 0
    assert SECRET not in exported.output
    assert exported.out.startswith("# identity-worker config export. HMAC secrets are WITHHELD")
    assert (
        'hmac_secret: "<withheld sha256:' in exported.out or "hmac_secret: <withheld sha256:" in exported.out
    )
    assert "-----BEGIN PUBLIC KEY-----" in exported.out  # public keys are not secrets

    path = write(exported.out, "withheld.yaml")
    before = dump(store_url)
    refused = cli("config", "apply", path)
    assert refused.code == 2
    assert "hmac_secret is a placeholder from `config export` without --include-secrets" in refused.err
    assert dump(store_url) == before
    with pytest.raises(ConfigError) as offline:  # `process --config` refuses it too
        load_config_file(path)
    assert "hmac_secret must be exactly 24 characters" in str(offline.value)


def test_export_with_secrets_round_trips_into_another_store(
    cli: Cli,
    store_url: str,
    admin_database_url: str,
    write: WriteFile,
) -> None:
    cli("config", "apply", write(config_yaml()))
    cli("community", "add", "gamma", "--mode", "reject", "--leeway-seconds", "30")
    cli("mappings", "add", "acme", "extra_values.mail", "identity_group.emails")
    exported = cli("config", "export", "--include-secrets")
    assert exported.out.startswith("# identity-worker config export WITH HMAC SECRETS")
    assert SECRET in exported.out
    # The same YAML the offline path reads, with the same prepared communities.
    from_file = prepare(parse_yaml(exported.out))

    async def load(url: str) -> dict[str, Community]:
        conn = await connect(url)
        try:
            return dict(await load_all_communities(conn))
        finally:
            await conn.close()

    assert from_file == asyncio.run(load(store_url))

    other = stack.create_database(admin_database_url)
    try:
        asyncio.run(migrated(other))
        applied = cli("config", "apply", write(exported.out, "backup.yaml"), "--database-url", other)
        assert applied.code == 0 and SECRET not in applied.output
        again = cli("config", "export", "--include-secrets", "--database-url", other)
        assert again.out == exported.out
        assert asyncio.run(load(other)) == from_file
    finally:
        stack.drop_database(admin_database_url, other)


def test_export_one_community_to_a_private_file(
    cli: Cli, store_url: str, write: WriteFile, tmp_path: Path
) -> None:
    cli("config", "apply", write(config_yaml()))
    target = tmp_path / "acme.yaml"
    result = cli("config", "export", "--community", "acme", "--include-secrets", "-o", str(target))
    assert (result.code, result.out) == (0, "")
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    spec = parse_yaml(target.read_text())
    assert [c.id for c in spec.communities] == ["acme"]


def test_export_of_an_empty_store(cli: Cli) -> None:
    result = cli("config", "export")
    assert result.out == "communities: []\n"
    assert parse_yaml(result.out).communities == []


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("label", r"Customer\0ID"),  # PostgreSQL cannot store a NUL (A7)
        ("label", r"Customer ID\n+ key acme/forged (HS256 sha256:0)"),  # a forged audit line (A11)
        ("regex", r"C[0-9]{6}\u0085"),
        ("from", r"extra_values.customer_id\r\nx"),
    ],
)
def test_apply_refuses_text_that_cannot_be_stored_in_one_line(
    cli: Cli, store_url: str, write: WriteFile, field: str, text: str
) -> None:
    """A3, A7: the CLI and YAML hold text to the same rule as the admin API (core/storable.py):
    one line naming the field, exit non-zero, nothing written, never a database message."""
    yaml_text = config_yaml().replace(
        "label: Customer ID", f'label: "{text}"' if field == "label" else "label: Customer ID"
    )
    if field == "regex":
        yaml_text = yaml_text.replace('regex: "C[0-9]{6}"', f'regex: "{text}"')
    if field == "from":
        yaml_text = yaml_text.replace("- from: extra_values.customer_id", f'- from: "{text}"')
    before = dump(store_url)
    result = cli("config", "apply", write(yaml_text))
    assert result.code != 0
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "cannot be stored" in lines[0] and "SQLSTATE" not in lines[0]
    assert dump(store_url) == before
