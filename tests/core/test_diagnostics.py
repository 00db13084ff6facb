"""L4 integrator diagnostics (DESIGN §11): each mistake with a token built that wrong
way, through `diagnose` and through `token verify`; none in the pipeline's outputs."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.core import (
    HS_KID,
    NOW,
    OTHER_SECRET,
    RECEIVED_AT,
    SECRET,
    T0,
    acme_config,
    acme_with_tombstone,
    b64json,
    event,
    good_claims,
    make_token,
    sign_hs256,
)
from worker.core.community import Community
from worker.core.diagnostics import diagnose
from worker.core.pipeline import process_event


def _codes(token: str, community: Community | None = None) -> tuple[str | None, list[str], list[str]]:
    """(verdict reason, diagnostic codes, messages): the pipeline's verdict, then `diagnose`."""
    community = community or acme_with_tombstone()
    output = process_event(event(token), lookup={"acme": community}, now=NOW)
    found = diagnose(token, community, output.reason, received_at=NOW, now=NOW, max_token_bytes=8192)
    reason = output.reason.value if output.reason is not None else None
    return reason, [d.code for d in found], [d.message for d in found]


def _std(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")  # standard alphabet, padded


def _padded_json(claims: dict[str, Any]) -> bytes:
    """A JSON text whose base64 needs padding (length not a multiple of 3)."""
    text = json.dumps(claims, separators=(",", ":"))
    while len(text) % 3 == 0:
        claims = {**claims, "pad": claims.get("pad", "") + "x"}
        text = json.dumps(claims, separators=(",", ":"))
    return text.encode()


HEADER = json.dumps({"typ": "JWT", "alg": "HS256", "kid": HS_KID}, separators=(",", ":")).encode()


def test_a_good_token_gets_no_hint() -> None:
    assert _codes(make_token()) == (None, [], [])


def test_secret_hex_decoded_by_the_site() -> None:
    reason, codes, messages = _codes(make_token(key=bytes.fromhex(SECRET)))
    assert reason == "invalid_signature" and codes == ["hex_decoded_secret"]
    assert "hex-decoded into 12 bytes" in messages[0] and SECRET not in messages[0]


def test_another_wrong_secret_is_not_called_hex() -> None:
    assert _codes(make_token(key=OTHER_SECRET.encode())) == ("invalid_signature", [], [])


def test_standard_base64_with_padding_signed_over_the_text_as_sent() -> None:
    body = _padded_json(good_claims())
    signing_input = f"{_std(HEADER)}.{_std(body)}".encode()
    token = f"{signing_input.decode()}.{_std(sign_hs256(signing_input, SECRET.encode()))}"
    assert "=" in token
    reason, codes, messages = _codes(token)
    assert reason == "malformed_token" and codes == ["standard_base64"]
    assert "its signature (key 'acme_2026') covers that text" in messages[0]


def test_standard_base64_of_a_correctly_signed_token() -> None:
    good = make_token(good_claims(firstname="Ada>>>???"))  # '>' and '?' make '+' and '/' in base64
    head, body, sig = good.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    respelt = ".".join(pad(s).replace("-", "+").replace("_", "/") for s in (head, body, sig))
    assert respelt != good
    reason, codes, messages = _codes(respelt)
    assert reason == "malformed_token" and codes == ["standard_base64"]
    assert "converted to base64url its signature verifies with key 'acme_2026'" in messages[0]


def test_standard_base64_with_a_bad_signature_still_names_the_encoding() -> None:
    token = f"{_std(HEADER)}.{_std(_padded_json(good_claims()))}.{_std(b'x' * 32)}"
    reason, codes, messages = _codes(token)
    assert reason == "malformed_token" and codes == ["standard_base64"] and "verifies" not in messages[0]


def test_exp_in_milliseconds() -> None:
    reason, codes, messages = _codes(make_token(good_claims(exp=(T0 + 7200) * 1000)))
    assert reason == "invalid_exp" and codes == ["exp_in_milliseconds"]
    assert "2026-11-24T12:00:00Z if divided by 1000" in messages[0]


def test_a_far_but_honest_exp_is_not_milliseconds() -> None:
    assert _codes(make_token(good_claims(exp=T0 + 20 * 366 * 86400)))[1] == []


def test_expiry_below_the_minimum_validity_says_by_how_much() -> None:
    reason, codes, messages = _codes(make_token(good_claims(exp=T0 + 1800)))
    assert reason == "expiry_too_soon" and codes == ["below_min_validity"]
    assert messages[0].startswith("the token expires 1790 s before the minimum validity (3600 s after")


def test_a_removed_kid_names_the_date_and_the_keys_left() -> None:
    reason, codes, messages = _codes(make_token(kid="acme_2025"))
    assert reason == "unknown_kid" and codes == ["removed_key"]
    assert messages[0] == (
        "key 'acme_2025' (HS256, sha256:0123456789abcdef) was removed on 2026-11-21T10:00:00Z; the website "
        "still signs with it: move it to one of the community's keys ('acme_2026', 'acme_rsa')"
    )


def _stored_detail(token: str) -> str:
    output = process_event(event(token), lookup={"acme": acme_with_tombstone()}, now=NOW)
    return str(output.record["detail"])


_MS_EXP = 1796426579000  # 2026-12-04T22:42:59Z in milliseconds


@pytest.mark.parametrize(
    "token,reason,says",
    [
        (make_token(key=bytes.fromhex(SECRET)), "invalid_signature", "hex-decoded into 12 bytes"),
        (make_token(good_claims(exp=_MS_EXP)), "invalid_exp", "looks like milliseconds"),
        (make_token(good_claims(exp=T0 + 1800)), "expiry_too_soon", "set exp at least 3600 s after signing"),
        (make_token() + "\n", "malformed_token", "whitespace after it ('\\n')"),
        ("Bearer " + make_token(), "malformed_token", "starts with 'Bearer '"),
    ],
)
def test_the_stored_rejection_carries_the_l4_notes(token: str, reason: str, says: str) -> None:
    """L4 in the worker's own output: Health and `report` show the stored detail, so it says
    what `token verify` says ("; note: …"), never the secret or the token."""
    output = process_event(event(token), lookup={"acme": acme_with_tombstone()}, now=_ms_clock(token))
    detail = str(output.record["detail"])
    assert output.record["reason"] == reason and "; note: " in detail and says in detail, detail
    assert SECRET not in detail and token.strip() not in detail


def _ms_clock(token: str) -> float:
    """The milliseconds note needs a clock near the date it would be (the others: NOW)."""
    return _MS_EXP / 1000 if str(_MS_EXP) in _claims_text(token) else NOW


def _claims_text(token: str) -> str:
    parts = token.strip().split(".")
    return base64.urlsafe_b64decode(parts[1] + "==").decode() if len(parts) == 3 else ""


def test_an_exp_in_milliseconds_is_not_called_a_non_integer() -> None:
    """The stored detail no longer says "must be an integer" of an integer."""
    detail = _stored_detail(make_token(good_claims(exp=_MS_EXP)))
    assert "must be an integer" not in detail and "out of range" in detail, detail


# ---------------------------------------------------------------- through `token verify`


@pytest.fixture
def config_file(tmp_path: Path) -> str:
    path = tmp_path / "acme.yaml"
    path.write_text(yaml.safe_dump({"communities": [acme_config()]}))
    return str(path)


@pytest.mark.parametrize(
    ("token", "reason", "hint"),
    [
        (make_token(key=bytes.fromhex(SECRET)), "invalid_signature", "hex-decoded into 12 bytes"),
        (make_token(good_claims(exp=(T0 + 7200) * 1000)), "invalid_exp", "looks like milliseconds"),
        (make_token(good_claims(exp=T0 + 1800)), "expiry_too_soon", "expires 1790 s before the minimum"),
        (
            f"{_std(HEADER)}.{_std(_padded_json(good_claims()))}.{b64json({})}",
            "malformed_token",
            "standard base64",
        ),
    ],
)
def test_token_verify_prints_the_hint_before_the_verdict(
    config_file: str, token: str, reason: str, hint: str
) -> None:
    command = ["token", "verify", "--config", config_file, "--community", "acme", "--now", RECEIVED_AT]
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli.main", *command, token],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 1 and lines[-1] == f"rejected: {reason}"
    assert lines[-2].startswith("note  ") and hint in lines[-2]
    assert SECRET not in done.stdout and token not in done.stdout
