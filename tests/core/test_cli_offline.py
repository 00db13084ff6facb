"""Offline CLI (DESIGN §7): `process`, `token sign`, `token verify`; `explain_token` == pipeline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.core.test_properties import tokens
from tests.support.core import (
    ANON_SECRET,
    HS_KID,
    NOW,
    RECEIVED_AT,
    RS_KID,
    SECRET,
    T0,
    base_communities,
    base_config,
    event,
    good_claims,
    make_token,
    other_community_token,
    private_pem,
    rsa_private,
    validate_output,
)
from worker.cli.offline import verify as verify_command
from worker.core.diagnostics import diagnose
from worker.core.explain import explain_token
from worker.core.pipeline import process_event

# ---------------------------------------------------------------- explain_token agrees with process_event

TOKENS = {
    "valid": make_token(),
    "valid_rs": make_token(alg="RS256", kid=RS_KID),
    "malformed": "a.b",
    "no_typ": make_token(drop=("typ",)),
    "crit": make_token(header={"crit": ["x"]}),
    "none": make_token(alg="none", sign_as="none"),
    "no_kid": make_token(drop=("kid",)),
    "unknown_kid": make_token(kid="zzz"),
    "other_kid": other_community_token(),
    "confusion": make_token(kid=RS_KID),
    "bad_sig": make_token(key=ANON_SECRET.encode()),
    "hex_secret": make_token(key=bytes.fromhex(SECRET)),
    "no_exp": make_token(good_claims(exp=...)),
    "bool_exp": make_token(good_claims(exp=True)),
    "expired": make_token(good_claims(exp=T0 - 10)),
    "too_soon": make_token(good_claims(exp=T0 + 3589)),
    "just_enough": make_token(good_claims(exp=T0 + 3590)),
    "nbf": make_token(good_claims(nbf=T0 + 11)),
    "iat": make_token(good_claims(iat=T0 + 11)),
    "no_uuid": make_token(good_claims(uuid=...)),
    "bad_claims": make_token(good_claims(extra_values={"k": {"x": 1}})),
}


@pytest.mark.parametrize("community_id", ["acme", "anon", "other"])
@pytest.mark.parametrize("name", sorted(TOKENS))
def test_token_verify_explanation_is_the_pipeline_verdict(name: str, community_id: str) -> None:
    """The explanation is the record of the pipeline's own run: its failing step carries the
    output's reason and detail, every step before it passed, nothing runs after it (§7)."""
    communities = base_communities()
    token = TOKENS[name]
    output = process_event(event(token, community_id=community_id), lookup=communities, now=NOW)
    validate_output(output)
    explanation = explain_token(token, community_id, communities, received_at=NOW, now=NOW)
    assert explanation.output.reason == output.reason
    assert explanation.verdict == (output.reason.value if output.reason else "accepted")
    steps = explanation.steps
    assert [s.rule for s in steps[:3]] == ["V1", "V2", "V3"]
    assert all(s.passed for s in steps[:-1])
    if output.reason is None:
        assert steps[-1].passed and steps[-1].rule == "V11-V12"
    else:
        record = explanation.output.record
        # The stored detail is the failing step's, then the L4 notes `token verify` prints.
        community = communities[community_id]
        notes = diagnose(token, community, output.reason, received_at=NOW, now=NOW, max_token_bytes=8192)
        stored = f"{record['reason']}: {record['detail']}"
        assert not steps[-1].passed and stored == steps[-1].detail + "".join(
            f"; note: {n.message}" for n in notes
        )
    for step in steps:
        assert SECRET not in step.detail and token not in step.detail


# ---------------------------------------------------------------- the commands, as a user runs them


def cli(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "worker.cli.main", *args], input=stdin, capture_output=True, timeout=60
    )


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("cfg") / "communities.yaml"
    path.write_text(yaml.safe_dump(base_config()))
    return str(path)


def _one_error_line(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 2, result
    assert result.stdout == b""
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ["process"],
        ["process", "--config", "/nonexistent.yaml"],
        ["process", "--config", "CFG", "--now", "yesterday"],
        ["process", "--config", "CFG", "--now", "2026-11-24T10:00:00"],
        ["process", "--config", "CFG", "--bogus"],
        ["process", "--config", "CFG", "--max-event-bytes", "0"],
        ["token", "sign", "--kid", "BAD", "--hmac-secret", SECRET],
        ["token", "sign", "--kid", "k", "--hmac-secret", "short"],
        ["token", "sign", "--kid", "k"],
        ["token", "sign", "--kid", "k", "--hmac-secret", SECRET, "--claims", "[1]"],
        ["token", "sign", "--kid", "k", "--hmac-secret", SECRET, "--ttl", "-5"],
        ["token", "verify", "--config", "CFG", "--community", "nobody", "a.b.c"],
        ["token", "verify", "--config", "CFG", "--community", "acme"],
        ["no-such-command"],
    ],
)
def test_bad_arguments_give_one_line_on_stderr_and_exit_2(config_file: str, args: list[str]) -> None:
    line = _one_error_line(cli(*[config_file if a == "CFG" else a for a in args]))
    assert SECRET not in line


def test_bad_config_file_is_one_line_without_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    bad = "0123456789ABCDEF01234567"
    path.write_text(f"communities:\n  - id: c\n    jwt_keys:\n      - kid: k\n        hmac_secret: '{bad}'\n")
    line = _one_error_line(cli("process", "--config", str(path)))
    assert "hmac_secret" in line and bad not in line


def test_process_one_output_per_input_line_in_order(config_file: str) -> None:
    lines = [
        event(make_token(), event_id="e-1"),
        b"\xff\xfe not utf-8",
        b"",
        b"not json",
        event(identity={"uuid": "u"}, event_id="e-5"),
        event(identity={"uuid": "u"}, community_id="anon", event_id="e-6"),
        event(make_token(alg="RS256", kid=RS_KID), event_id="e-7") + b"\r",
        event(make_token(good_claims(exp=T0 - 100)), event_id="e-8"),
    ]
    result = cli("process", "--config", config_file, "--now", RECEIVED_AT, stdin=b"\n".join(lines) + b"\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode("utf-8").splitlines()
    assert len(out) == len(lines)
    records = [json.loads(line) for line in out]
    summary = [(r.get("event_id"), r["outcome"], r.get("reason")) for r in records]
    assert summary == [
        ("e-1", "enriched", None),
        (None, "rejected", "malformed_event"),
        (None, "rejected", "malformed_event"),
        (None, "rejected", "malformed_event"),
        ("e-5", "rejected", "signature_required"),
        ("e-6", "enriched", None),
        ("e-7", "enriched", None),
        ("e-8", "rejected", "token_expired"),
    ]
    assert records[1]["raw_encoding"] == "base64"
    assert records[2]["raw"] == "" and records[2]["raw_encoding"] == "utf-8"
    assert all(r["processed_at"] == RECEIVED_AT for r in records)
    assert SECRET.encode() not in result.stdout


def test_process_last_line_without_newline_and_empty_input(config_file: str) -> None:
    result = cli("process", "--config", config_file, "--now", RECEIVED_AT, stdin=event(make_token()))
    assert len(result.stdout.splitlines()) == 1 and json.loads(result.stdout)["outcome"] == "enriched"
    empty = cli("process", "--config", config_file, stdin=b"")
    assert empty.returncode == 0 and empty.stdout == b""


def test_process_matches_the_pipeline(config_file: str) -> None:
    value = event(make_token(good_claims(exp=T0 + 3590)))
    result = cli("process", "--config", config_file, "--now", RECEIVED_AT, stdin=value + b"\n")
    expected = process_event(value, lookup=base_communities(), now=NOW).to_json()
    assert result.stdout == expected + b"\n"


def _verify(config_file: str, token: str, *extra: str) -> subprocess.CompletedProcess[bytes]:
    return cli(
        "token", "verify", "--config", config_file, "--community", "acme", "--now", RECEIVED_AT, *extra, token
    )


def test_token_verify_exit_0_when_accepted(config_file: str) -> None:
    result = _verify(config_file, make_token())
    assert result.returncode == 0, result
    assert result.stdout.decode().strip().splitlines()[-1] == "accepted"
    assert SECRET not in result.stdout.decode()


@pytest.mark.parametrize(
    "name,reason",
    [("expired", "token_expired"), ("too_soon", "expiry_too_soon"), ("confusion", "algorithm_key_mismatch")],
)
def test_token_verify_exit_1_with_the_reason(config_file: str, name: str, reason: str) -> None:
    result = _verify(config_file, TOKENS[name])
    assert result.returncode == 1, result
    out = result.stdout.decode()
    assert out.strip().splitlines()[-1] == f"rejected: {reason}"
    assert TOKENS[name] not in out


def test_token_verify_received_at_drives_min_validity(config_file: str) -> None:
    token = make_token(good_claims(exp=T0 + 2590))
    assert _verify(config_file, token).returncode == 1
    assert _verify(config_file, token, "--received-at", "2026-11-24T09:43:20Z").returncode == 0


def test_token_sign_hs256_round_trips_through_verify(config_file: str) -> None:
    signed = cli(
        "token", "sign", "--kid", HS_KID, "--hmac-secret", SECRET, "--now", RECEIVED_AT,
        "--claims", json.dumps({"uuid": "v-1"}),
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    assert b"Warning" not in signed.stderr
    token = signed.stdout.decode().strip()
    assert _verify(config_file, token).returncode == 0


def test_token_sign_rs256_round_trips_through_verify(config_file: str, tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_text(private_pem(rsa_private()))
    signed = cli(
        "token", "sign", "--kid", RS_KID, "--rsa-private-key", str(key), "--now", RECEIVED_AT,
        "--claims", '{"uuid": "v-1"}',
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    assert _verify(config_file, signed.stdout.decode().strip()).returncode == 0


def test_token_sign_secret_from_environment(config_file: str) -> None:
    import os

    result = subprocess.run(
        [sys.executable, "-m", "worker.cli.main", "token", "sign", "--kid", HS_KID, "--now", RECEIVED_AT,
         "--claims", '{"uuid": "v"}'],
        capture_output=True,
        env={**os.environ, "IDENTITY_WORKER_HMAC_SECRET": SECRET},
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert _verify(config_file, result.stdout.decode().strip()).returncode == 0


# ---------------------------------------------------------------- the very verdict


def _process_verdict(config_file: str, token: str) -> str:
    line = event(token, received_at=RECEIVED_AT)
    result = cli("process", "--config", config_file, "--now", RECEIVED_AT, stdin=line + b"\n")
    record = json.loads(result.stdout)
    return "accepted" if record["outcome"] == "enriched" else str(record["reason"])


def _verify_verdict(result: subprocess.CompletedProcess[bytes]) -> str:
    last = result.stdout.decode().strip().splitlines()[-1]
    assert result.returncode == (0 if last == "accepted" else 1), result
    return last.removeprefix("rejected: ")


@pytest.mark.parametrize("spelling", [" {}", "{}\n", "{}\r\n", "\t{}", "{} ", "\n{}"])
def test_issue12_kind5_token_verify_does_not_trim(config_file: str, spelling: str) -> None:
    """`token verify … " <token>"` (a leading space, or a trailing newline)
    printed "accepted" and exited 0, while `process` refused the same text as malformed_token:
    it trimmed. The explanation is the very verdict of the pipeline for the same text."""
    token = spelling.format(make_token())
    result = _verify(config_file, token)
    assert _verify_verdict(result) == "malformed_token" == _process_verdict(config_file, token)
    assert "FAIL  V4 structure" in result.stdout.decode()


def test_issue12_kind4_typ_nested_983_deep_is_malformed_token_in_token_verify_too(config_file: str) -> None:
    """A header whose `typ` is nested about 983 levels got invalid_header from
    `process` and malformed_token from `token verify` (where Python's recursion limit bit
    depended on each command's stack: here the two disagreed at 976-982 levels). One limit (J3)."""
    tokens = {
        depth: make_token(
            header_text='{"alg": "HS256", "kid": "acme_2026", "typ": '
            + "[" * depth
            + '"JWT"'
            + "]" * depth
            + "}"
        )
        for depth in (33, 960, 976, 978, 980, 982, 983, 990)
    }
    lines = b"\n".join(event(token) for token in tokens.values()) + b"\n"
    processed = cli("process", "--config", config_file, "--now", RECEIVED_AT, stdin=lines)
    assert [json.loads(line)["reason"] for line in processed.stdout.splitlines()] == ["malformed_token"] * 8
    for token in tokens.values():
        assert _verify_verdict(_verify(config_file, token)) == "malformed_token"


def test_token_verify_explains_a_token_starting_with_a_dash_after_double_dash(config_file: str) -> None:
    args = ("--config", config_file, "--community", "acme", "--now", RECEIVED_AT, "--", "-x.y.z")
    result = cli("token", "verify", *args)
    assert _verify_verdict(result) == "malformed_token"


def test_token_verify_in_a_reject_community_stops_at_v3(config_file: str) -> None:
    result = cli(
        "token", "verify", "--config", config_file, "--community", "anon", "--now", RECEIVED_AT, make_token()
    )  # fmt: skip
    lines = result.stdout.decode().strip().splitlines()
    steps = [line.split()[:2] for line in lines[:-1] if line.split()[0] in ("pass", "FAIL")]
    assert steps == [["pass", "V1"], ["pass", "V2"], ["FAIL", "V3"]]
    assert lines[-1] == "rejected: signed_identity_rejected"


_runner = CliRunner()
_whitespace = st.sampled_from(["", "", "", " ", "\n", "\t", "\r\n", "\u00a0", "\u2028"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(tokens(), st.text(max_size=60)),
    _whitespace,
    _whitespace,
    st.sampled_from(["acme", "anon", "other"]),
)
def test_token_verify_verdict_equals_process_verdict_for_any_token_text(
    config_file: str, token: str, before: str, after: str, community_id: str
) -> None:
    """For any token text, `token verify`'s verdict (exit status and last line) is the verdict
    `process` gives for a raw event carrying the same text (DESIGN §7)."""
    text = before + token + after
    args = ["--config", config_file, "--community", community_id, "--now", RECEIVED_AT, "--", text]
    result = _runner.invoke(verify_command, args)
    last = result.output.strip().splitlines()[-1]
    shown = "accepted" if result.exit_code == 0 else last.removeprefix("rejected: ")
    assert result.exit_code == (0 if last == "accepted" else 1), result.output
    output = process_event(event(text, community_id=community_id), lookup=base_communities(), now=NOW)
    assert shown == (output.reason.value if output.reason else "accepted")


@pytest.mark.parametrize("command", [["process"], ["token", "verify", "--community", "acme", "a.b.c"]])
def test_issue12_kind6_repeated_key_in_a_config_file_is_one_line(tmp_path: Path, command: list[str]) -> None:
    """Through `--config`: a repeated key is named with its line, exit 2."""
    path = tmp_path / "repeated.yaml"
    path.write_text(
        "communities:\n  - id: acme\n    signed_identities: require\n    jwt_keys:\n"
        f"      - kid: acme_2026\n        hmac_secret: '{SECRET}'\n    signed_identities: reject\n"
    )
    line = _one_error_line(cli(*command[:2], "--config", str(path), *command[2:]))
    assert line.endswith(
        "line 7: key 'signed_identities' repeated in one mapping (first at line 3); keep one"
    )
    assert SECRET not in line


@pytest.mark.parametrize(
    "header_text",
    [
        '{"typ": "JWT", "alg": "HS256", "kid": "acme_2026", "x\\ud800": 1}',  # an ignored member's name
        '{"typ": "JWT", "alg": "HS256", "kid": "acme_2026", "x": {"y\\udc80": [{"\\udfff": 2}]}}',  # nested
        '{"typ": "JWT", "alg": "HS256", "kid": "acme_2026", "\\ud800": 1, "\\ud800": 2}',  # repeated (J1)
    ],
)
def test_token_verify_header_member_name_with_a_lone_surrogate_is_the_process_verdict(
    config_file: str, header_text: str
) -> None:
    """J2, DESIGN §7: a header member *name* holding an escaped unpaired
    surrogate was accepted by `process` but gave a dead letter in `token verify` (its trace
    printed the header with json.dumps, which refuses a name that is not text)."""
    token = make_token(header_text=header_text)
    assert _process_verdict(config_file, token) == "accepted"
    result = _verify(config_file, token)
    assert _verify_verdict(result) == "accepted"
    (shown,) = [line for line in result.stdout.decode("ascii").splitlines() if "V4 structure" in line]
    assert "not valid Unicode: unpaired surrogate" in shown  # the name, shown escaped
