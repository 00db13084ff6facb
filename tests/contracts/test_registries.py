"""Registries as data: each list the worker keeps is written once and every
other spelling of it is derived from, or held to, that one table.

- `keys.KEY_KINDS`: the algorithms (V5), the spec's fields and `alg`, the output's
  `verification.alg`, the migrations' CHECK values (migrations are immutable, so they are
  compared here rather than generated), the store's messages and the CLI's help.
- `reasons.Reason`: each reason's rule and action per mode (DESIGN §2.3, §3), and the table
  docs/operations.md shows.
- `jws.HEADER_PARAMETERS`: V5's header rules.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest
from click.testing import CliRunner

from worker.cli.main import cli
from worker.core.config import JwtKeySpec
from worker.core.contracts import EnrichedIdentity
from worker.core.jws import HEADER_PARAMETERS, Use, check_header
from worker.core.keys import ALGORITHMS, KEY_KINDS, AlgName
from worker.core.reasons import Action, Mode, Reason
from worker.store.db import CONSTRAINT_RULES

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = ROOT / "worker" / "store" / "migrations"
SECRET = "0123456789abcdef01234567"


def test_the_algorithms_are_the_key_kinds() -> None:
    assert ALGORITHMS == ("HS256", "RS256")
    assert get_args(AlgName) == ALGORITHMS  # the static type mypy needs, spelt once more
    assert [kind.name for kind in KEY_KINDS] == ["hmac_secret", "rsa_public_key"]


def test_the_spec_has_one_field_per_key_kind_and_its_alg_is_the_kinds() -> None:
    assert set(JwtKeySpec.model_fields) == {"kid"} | {kind.name for kind in KEY_KINDS}
    hmac = JwtKeySpec.model_validate({"kid": "k1", "hmac_secret": SECRET})
    assert hmac.alg == "HS256" and hmac.prepare().alg == "HS256"
    with pytest.raises(
        ValueError, match=r"give exactly one of hmac_secret \(HS256\) or rsa_public_key \(RS256\)"
    ):
        JwtKeySpec.model_validate({"kid": "k1"})


def test_verification_alg_in_the_output_contract_is_the_algorithms() -> None:
    schema = EnrichedIdentity.model_json_schema(mode="serialization")
    assert tuple(schema["$defs"]["Verification"]["properties"]["alg"]["enum"]) == ALGORITHMS


def _check_values(sql: str, constraint: str) -> tuple[str, ...]:
    found = re.search(rf"CONSTRAINT {constraint} CHECK \(alg IN \(([^)]*)\)\)", sql)
    assert found is not None, constraint
    return tuple(value.strip().strip("'") for value in found.group(1).split(","))


def test_the_migrations_check_the_same_algorithms_and_kinds() -> None:
    """Migrations are never edited once released: the table is held to them instead."""
    configuration = (MIGRATIONS / "0001_configuration.sql").read_text()
    lifecycle = (MIGRATIONS / "0003_key_lifecycle.sql").read_text()
    assert _check_values(configuration, "jwt_keys_alg_values") == ALGORITHMS
    assert _check_values(lifecycle, "key_tombstones_alg_values") == ALGORITHMS
    # jwt_keys_alg_matches_key: each alg goes with its kind's column, and only that one.
    pairs = re.findall(r"\(alg = '(\w+)' AND (\w+) IS NOT NULL AND (\w+) IS NULL\)", configuration)
    assert [(alg, column) for alg, column, _ in pairs] == [(kind.alg, kind.name) for kind in KEY_KINDS]
    for _, column, other in pairs:
        assert {column, other} == {kind.name for kind in KEY_KINDS}
    for kind in KEY_KINDS:
        assert re.search(rf"^\s+{kind.name} text$", configuration, re.MULTILINE), kind.name


def test_store_messages_and_cli_help_name_the_kinds() -> None:
    assert CONSTRAINT_RULES["jwt_keys_alg_values"] == "alg must be HS256 or RS256"
    assert (
        CONSTRAINT_RULES["jwt_keys_alg_matches_key"]
        == "HS256 needs an hmac_secret only, RS256 an rsa_public_key only"
    )
    shown = CliRunner().invoke(cli, ["keys", "add", "--help"], terminal_width=200).output
    assert "HS256: exactly 24 characters 0-9a-f (the HMAC key is those 24 ASCII bytes)" in shown
    assert "RS256: a PEM file with one BEGIN PUBLIC KEY or BEGIN RSA PUBLIC KEY, at least 2048 bits" in shown


# ---------------------------------------------------------------- reasons


def test_every_reason_carries_its_rule_and_its_action_per_mode() -> None:
    """DESIGN §3: V1 and V2 block (no mode yet); V3's two reasons are the mode's; from V4 on, the
    action follows the mode (require: block, reject: anonymous)."""
    for reason in Reason:
        assert reason.rules and all(re.fullmatch(r"V([1-9]|1[0-2])", rule) for rule in reason.rules)
        assert reason.action(None) is reason.action(Mode.REQUIRE)
    assert Reason.MALFORMED_EVENT.rules == ("V1",) and Reason.UNKNOWN_COMMUNITY.rules == ("V2",)
    for reason in (Reason.MALFORMED_EVENT, Reason.UNKNOWN_COMMUNITY, Reason.SIGNATURE_REQUIRED):
        assert reason.action(Mode.REQUIRE) is reason.action(Mode.REJECT) is Action.BLOCK
    assert Reason.SIGNED_IDENTITY_REJECTED.action(Mode.REJECT) is Action.ANONYMOUS
    later = [r for r in Reason if int(r.rules[0][1:]) >= 4]
    assert len(later) == len(Reason) - 4
    for reason in later:
        assert (reason.action(Mode.REQUIRE), reason.action(Mode.REJECT)) == (Action.BLOCK, Action.ANONYMOUS)
    assert {r.rules for r in Reason if "V5" in r.rules} == {("V5",)}
    assert {r for r in Reason if "V5" in r.rules} == {
        Reason.INVALID_HEADER,
        Reason.UNSUPPORTED_ALGORITHM,
        Reason.MISSING_KID,
    }


def test_the_operations_guide_shows_the_reason_table() -> None:
    guide = (ROOT / "docs" / "operations.md").read_text()
    rows = [
        f"  | `{r.value}` | {', '.join(r.rules)} | {r.action(Mode.REQUIRE)} | {r.action(Mode.REJECT)} |"
        for r in Reason
    ]
    assert "\n".join(rows) in guide


# ---------------------------------------------------------------- V5 header


def test_the_header_registry_is_v5() -> None:
    uses = {p.name: p.use for p in HEADER_PARAMETERS}
    assert uses == {
        "typ": Use.REQUIRED,
        "crit": Use.FORBIDDEN,
        "b64": Use.FORBIDDEN,
        "alg": Use.REQUIRED,
        "kid": Use.REQUIRED,
        "jku": Use.IGNORED,
        "x5u": Use.IGNORED,
        "jwk": Use.IGNORED,
        "x5c": Use.IGNORED,
    }
    checked = [p.name for p in HEADER_PARAMETERS if p.use is not Use.IGNORED]
    assert checked == ["typ", "crit", "b64", "alg", "kid"]  # the order of V5's verdicts


@pytest.mark.parametrize(
    ("header", "reason", "detail"),
    [
        ({"alg": "HS256", "kid": "k"}, Reason.INVALID_HEADER, "typ must be JWT, got None"),
        (
            {"typ": "jwt", "crit": None, "alg": "HS256", "kid": "k"},
            Reason.INVALID_HEADER,
            "crit header is not supported",
        ),
        (
            {"typ": "JWT", "b64": False, "alg": "HS256", "kid": "k"},
            Reason.INVALID_HEADER,
            "b64 header is not supported",
        ),
        (
            {"typ": "JWT", "alg": "none", "kid": "k"},
            Reason.UNSUPPORTED_ALGORITHM,
            "alg 'none' is not HS256 or RS256",
        ),
        (
            {"typ": "JWT", "alg": ["HS256"], "kid": "k"},
            Reason.UNSUPPORTED_ALGORITHM,
            "alg ['HS256'] is not HS256 or RS256",
        ),
        ({"typ": "JWT", "alg": "RS256"}, Reason.MISSING_KID, "token header has no kid"),
        ({"typ": "JWT", "alg": "RS256", "kid": None}, Reason.MISSING_KID, "token header has no kid"),
    ],
)
def test_each_header_rule_gives_its_verdict(header: dict[str, object], reason: Reason, detail: str) -> None:
    verdict = check_header(header)
    assert not isinstance(verdict, tuple)
    assert (verdict.reason, verdict.detail) == (reason, detail)


def test_ignored_parameters_are_never_read() -> None:
    header = {
        "typ": "JWT",
        "alg": "RS256",
        "kid": 7,
        "jku": "https://evil",
        "x5u": 1,
        "jwk": {},
        "x5c": [None],
    }
    assert check_header(header) == ("RS256", 7)  # the kid's value is V6's to judge
