"""A2, A4 from the command line: `admin token create|list|revoke`, `audit list`, and the
audit rows every admin command writes in its own transaction (actor: the OS user)."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable

import pytest

from tests.support.admin import SECRET_2, Service, snapshot
from tests.support.store import run_sql
from worker.cli.main import main

pytestmark = pytest.mark.integration

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(service: Service, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("DATABASE_URL", service.database_url)

    def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
        capsys.readouterr()
        if stdin is not None:
            import io

            monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0
        else:
            code = 0
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_a_token_is_printed_once_and_then_opens_its_community(service: Service, cli: Cli) -> None:
    code, out, err = cli("admin", "token", "create", "acme-ci", "--community", "acme")
    assert code == 0
    token = out.strip()
    assert token.startswith("iwk_") and len(token) == 47
    assert "shown only now" in err and token not in err
    with service.client(token) as api:
        assert api.get("/api/v1/communities/acme").status_code == 200
        assert api.get("/api/v1/communities/shop").status_code == 404
    code, out, _ = cli("admin", "token", "list")
    assert code == 0
    assert token not in out and not any(t in out for t in service.tokens.values())
    stored = run_sql(service.database_url, "SELECT * FROM api_tokens WHERE name = 'acme-ci'")
    assert token not in str(dict(stored[0]))  # only its SHA-256
    line = next(row for row in out.splitlines() if row.startswith("acme-ci"))
    assert "community acme" in line and "os-user" in line
    assert line.split()[-2] != "-"  # last used: just now
    code, out, _ = cli("admin", "token", "revoke", "acme-ci")
    assert (code, out) == (0, "- token acme-ci (community acme) revoked\n")
    with service.client(token) as api:
        assert api.get("/api/v1/communities/acme").status_code == 401


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("create", "x"), "give exactly one of --community ID or --platform"),
        (("create", "x", "--platform", "--community", "acme"), "give exactly one of"),
        (("create", "bad name", "--platform"), "token name must match"),
        (("create", "x", "--community", "nosuch"), "unknown community 'nosuch'"),
        (("create", "acme", "--platform"), "a token named 'acme' already exists"),
        (("create", "revoked", "--platform"), "a token named 'revoked' already exists"),
        (("revoke", "nosuch"), "no token named 'nosuch'"),
        (("revoke", "revoked"), "token 'revoked' is already revoked"),
    ],
)
def test_bad_token_commands_say_one_line_and_change_nothing(
    service: Service, cli: Cli, args: tuple[str, ...], message: str
) -> None:
    before = snapshot(service.database_url), run_sql(service.database_url, "SELECT * FROM api_tokens")
    code, out, err = cli("admin", "token", *args)
    assert (code, out) == (2, "")
    assert message in err and err.count("\n") == 1
    assert (
        snapshot(service.database_url),
        run_sql(service.database_url, "SELECT * FROM api_tokens"),
    ) == before


def test_admin_commands_are_audited_with_the_os_user(service: Service, cli: Cli) -> None:
    assert cli("keys", "add", "acme", "k2", "--hmac-secret", "-", stdin=SECRET_2 + "\n")[0] == 0
    assert cli("community", "set", "shop", "--leeway-seconds", "5")[0] == 0
    assert cli("keys", "add", "acme", "k3", "--hmac-secret", "nothex")[0] == 2  # refused: no row
    code, out, _ = cli("audit", "list")
    assert code == 0
    rows = out.splitlines()
    assert rows[0].split() == ["WHEN", "WHO", "COMMUNITY", "WHAT", "CHANGES"]
    assert f"os-user {getpass.getuser()}" in rows[1] and "community set" in rows[1]
    assert "leeway_seconds 10 -> 5" in rows[1]
    assert "keys add" in rows[2] and "+ key acme/k2 (HS256 sha256:" in rows[2]
    assert len(rows) == 3 and SECRET_2 not in out
    code, out, _ = cli("audit", "list", "--community", "acme")
    assert len(out.splitlines()) == 2 and "keys add" in out and "community set" not in out


def test_config_apply_writes_one_audit_row_per_community(
    service: Service, cli: Cli, tmp_path: object
) -> None:
    code, exported, _ = cli("config", "export", "--include-secrets")
    assert code == 0
    changed = exported.replace("leeway_seconds: 10", "leeway_seconds: 7")
    assert changed.count("leeway_seconds: 7") == 2
    assert cli("config", "apply", "-", "--dry-run", stdin=changed)[0] == 0
    assert run_sql(service.database_url, "SELECT count(*) FROM audit_log")[0][0] == 0  # a dry run writes none
    assert cli("config", "apply", "-", stdin=changed)[0] == 0
    rows = run_sql(service.database_url, "SELECT community_id, action, changes FROM audit_log ORDER BY id")
    assert [(r["community_id"], r["action"], r["changes"]) for r in rows] == [
        ("acme", "config apply", ["~ community acme: leeway_seconds 10 -> 7"]),
        ("shop", "config apply", ["~ community shop: leeway_seconds 10 -> 7"]),
    ]


def test_a_change_and_its_audit_row_commit_together(
    service: Service, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The audit row is written in the change's transaction (A4): when it cannot be written,
    the change does not happen either. A 300-character user name breaks the row's CHECK."""
    monkeypatch.setenv("LOGNAME", "u" * 300)
    before = snapshot(service.database_url)
    code, _, err = cli("keys", "add", "acme", "k2", "--hmac-secret", SECRET_2)
    assert code == 2 and "audit_log_actor_length" in err
    assert snapshot(service.database_url) == before
