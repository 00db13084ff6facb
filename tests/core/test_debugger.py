"""The token debugger (DESIGN §7, L4): `debug_token` decodes the token, shows
its dates in UTC and relative, previews what agents see, and diagnoses what surrounds it —
always beside the very verdict `process` gives for the exact text."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.core import (
    NOW,
    RECEIVED_AT,
    SECRET,
    T0,
    acme_config,
    base_communities,
    event,
    good_claims,
    make_token,
)
from worker.core.debugger import debug_token, duration, relative_time
from worker.core.pipeline import process_event


def _debug(token: str, now: float = NOW):  # type: ignore[no-untyped-def]
    return debug_token(token, base_communities()["acme"], received_at=now, now=now)


def test_an_accepted_token_is_decoded_dated_and_previewed_as_published() -> None:
    debug = _debug(make_token())
    assert debug.explanation.accepted
    assert debug.header == {"typ": "JWT", "alg": "HS256", "kid": "acme_2026"}
    assert debug.payload is not None and debug.payload["uuid"] == "v-42"
    times = {t.claim: (t.utc, t.relative) for t in debug.times}
    assert times == {
        "iat": ("2026-11-24T09:59:55Z", "issued 5 s ago"),
        "exp": ("2026-11-24T12:00:00Z", "expires in 2 h"),
    }
    preview = debug.preview
    assert preview is not None and preview.published
    record = process_event(event(make_token()), lookup=base_communities(), now=NOW).record
    assert preview.identity_group == record["identity_group"]
    assert preview.custom_fields == {"customer_id": "C123456"}
    assert preview.mapping_skipped == record["mapping_skipped"]


def test_an_expired_token_says_how_long_ago_and_previews_what_it_would_give() -> None:
    token = make_token(good_claims(exp=T0 - 32 * 60, extra_values={"customer_id": "bad"}))
    debug = _debug(token)
    assert debug.explanation.verdict == "token_expired"
    assert [t.relative for t in debug.times if t.claim == "exp"] == ["expired 32 min ago"]
    preview = debug.preview
    assert preview is not None and not preview.published
    assert preview.identity_group["notes"] == "v-42" and preview.custom_fields == {}
    assert {
        "from": "extra_values.customer_id",
        "to": "custom_fields.customer_id",
        "reason": "regex_mismatch",
    } in (preview.mapping_skipped)


@pytest.mark.parametrize(
    "text,code",
    [
        ("{token}\n", "whitespace after it ('\\n')"),
        (" {token}", "whitespace before it (' ')"),
        ("Bearer {token}", "starts with 'Bearer '"),
    ],
)
def test_whitespace_and_bearer_are_diagnosed_with_the_token_alone_s_verdict(text: str, code: str) -> None:
    token = make_token()
    debug = _debug(text.format(token=token))
    assert debug.explanation.verdict == "malformed_token"  # the exact text, never trimmed (§7)
    assert any(code in note for note in debug.notes), debug.notes
    assert debug.notes[-1] == "the token alone, without what surrounds it, would be: accepted"
    assert debug.header is not None and debug.payload is not None  # shown all the same
    assert all(token not in note and SECRET not in note for note in debug.notes)


def test_a_token_that_is_not_json_shows_nothing_decoded() -> None:
    debug = _debug("a.b.c")
    assert (debug.header, debug.payload, debug.times, debug.preview) == (None, None, [], None)


@pytest.mark.parametrize(
    "seconds,shown",
    [(0, "0 s"), (59.9, "59 s"), (60, "1 min"), (1920, "32 min"), (7080, "1 h 58 min"), (3600, "1 h"),
     (86400 * 3 + 3600 * 4 + 5, "3 d 4 h"), (86400, "1 d")],
)  # fmt: skip
def test_durations_read_like_a_person_would_say_them(seconds: float, shown: str) -> None:
    assert duration(seconds) == shown


def test_relative_times_by_claim() -> None:
    assert relative_time("exp", 7080) == "expires in 1 h 58 min"
    assert relative_time("nbf", 300) == "not valid for another 5 min"
    assert relative_time("nbf", -300) == "valid since 5 min ago"
    assert relative_time("iat", 120) == "issued 2 min in the future"


def test_token_verify_prints_the_decoded_token_dates_and_preview(tmp_path: Path) -> None:
    config = tmp_path / "communities.yaml"
    config.write_text(yaml.safe_dump({"communities": [acme_config()]}))
    token = make_token(good_claims(exp=T0 - 32 * 60))
    command = ["token", "verify", "--config", str(config), "--community", "acme", "--now", RECEIVED_AT, token]
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli.main", *command], capture_output=True, text=True, check=False
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 1 and lines[-1] == "rejected: token_expired"
    assert lines[0] == 'header  {"typ": "JWT", "alg": "HS256", "kid": "acme_2026"}'
    assert lines[1].startswith('payload {"uuid": "v-42"')
    assert "exp     1795512480 = 2026-11-24T09:28:00Z (expired 32 min ago)" in lines
    assert any(line.startswith("agents  (if accepted) custom_fields {") for line in lines)
    assert token not in done.stdout and SECRET not in done.stdout
