"""A1, A3: every endpoint's success, each validation error with its status and one-line
message, nothing written on a refusal, and no secret in any answer, log line or audit row."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from datetime import datetime
from typing import Any

import pytest

from tests.support.admin import (
    IDENTITY_WORKER,
    RSA_PRIVATE_PEM,
    RSA_PUBLIC_BODY,
    RSA_PUBLIC_PEM,
    SECRET,
    SECRET_2,
    SHOP_SECRET,
    Service,
    add_health,
    hs256,
    mark_used,
    run_sql,
    snapshot,
)

pytestmark = pytest.mark.integration

ACME = "/api/v1/communities/acme"
KEYS, FIELDS, MAPPINGS = f"{ACME}/keys", f"{ACME}/custom-fields", f"{ACME}/mappings"


def test_communities_create_read_change_remove(service: Service) -> None:
    with service.client("platform") as api:
        created = api.post(
            "/api/v1/communities",
            json={
                "id": "newco",
                "signed_identities": "require",
                "min_validity_seconds": 600,
                "jwt_keys": [{"kid": "first", "hmac_secret": SECRET_2}],
            },
        )
        assert created.status_code == 201, created.text
        assert created.json() | {"created_at": None} == {
            "id": "newco",
            "signed_identities": "require",
            "min_validity_seconds": 600,
            "leeway_seconds": 10,
            "max_validity_seconds": None,
            "retirement_window_seconds": 86400,
            "keys": 1,
            "custom_fields": 0,
            "mappings": 0,
            "created_at": None,
        }
        assert api.get("/api/v1/communities/newco").json() == created.json()
        changed = api.patch(
            "/api/v1/communities/newco", json={"signed_identities": "reject", "leeway_seconds": 0}
        )
        assert changed.status_code == 200
        assert (changed.json()["signed_identities"], changed.json()["leeway_seconds"]) == ("reject", 0)
        assert changed.json()["min_validity_seconds"] == 600  # not given: kept
        assert api.delete("/api/v1/communities/newco").status_code == 204
        assert api.get("/api/v1/communities/newco").status_code == 404
        trail = api.get("/api/v1/audit").json()["items"]
    assert [(e["action"], e["community_id"], e["actor"]) for e in trail] == [
        ("community remove", "newco", "token platform"),
        ("community set", "newco", "token platform"),
        ("community add", "newco", "token platform"),
    ]
    assert trail[1]["changes"] == [
        "~ community newco: signed_identities require -> reject, leeway_seconds 10 -> 0"
    ]


def test_keys_add_list_remove_show_fingerprints_never_secrets(service: Service) -> None:
    with service.client("acme") as api:
        hs = api.post(f"{ACME}/keys", json={"kid": "k2", "hmac_secret": SECRET_2})
        rs = api.post(f"{ACME}/keys", json={"kid": "r1", "rsa_public_key": RSA_PUBLIC_PEM})
        assert (hs.status_code, rs.status_code) == (201, 201), (hs.text, rs.text)
        assert {k: hs.json()[k] for k in ("kid", "alg")} == {"kid": "k2", "alg": "HS256"}
        assert hs.json()["fingerprint"].startswith("sha256:") and "created_at" in hs.json()
        assert rs.json()["alg"] == "RS256"
        listed = api.get(f"{ACME}/keys").json()["items"]
        assert [k["kid"] for k in listed] == ["k1", "k2", "r1"]
        assert all(set(k) >= {"kid", "alg", "fingerprint", "created_at"} for k in listed)
        assert not any(name in k for k in listed for name in ("hmac_secret", "rsa_public_key"))
        assert api.delete(f"{ACME}/keys/k2").status_code == 204
        assert [k["kid"] for k in api.get(f"{ACME}/keys").json()["items"]] == ["k1", "r1"]
        trail = api.get(f"{ACME}/audit").json()["items"]
    assert [(e["action"], e["changes"][0][:12]) for e in trail] == [
        ("keys remove", "- key acme/k"),
        ("keys add", "+ key acme/r"),
        ("keys add", "+ key acme/k"),
    ]
    assert hs.json()["fingerprint"] in trail[0]["changes"][0]


def test_keys_list_shows_last_use_and_uses_in_24_hours(service: Service) -> None:
    """L2: the keys list carries `keys list`'s LAST_USED and USES_24H, from the usage counts."""
    with service.client("acme") as api:
        assert api.post(f"{ACME}/keys", json={"kid": "k2", "hmac_secret": SECRET_2}).status_code == 201
        mark_used(service.database_url, "acme", "k1", 5, seconds_ago=120)
        listed = {k["kid"]: k for k in api.get(f"{ACME}/keys").json()["items"]}
    assert listed["k1"]["uses_24h"] == 5
    used_at = datetime.fromisoformat(listed["k1"]["last_used_at"])
    assert 100 <= time.time() - used_at.timestamp() <= 300
    assert (listed["k2"]["last_used_at"], listed["k2"]["uses_24h"]) == (None, 0)


def test_health_reports_the_community_s_outcomes_over_the_window(service: Service) -> None:
    """L5: `report`'s rows for this community only, over `since` seconds; a bad window is 422."""
    url = service.database_url
    add_health(url, "acme", "expiry_too_soon", 4, minutes_ago=5)
    add_health(url, "acme", "unknown_kid", 2, minutes_ago=180)
    add_health(url, "shop", "invalid_signature", 9, minutes_ago=5)
    with service.client("acme") as api:
        hour = api.get(f"{ACME}/health", params={"since": 3600})
        assert hour.status_code == 200, hour.text
        assert [(r["community_id"], r["reason"], r["events"], r["last_detail"]) for r in hour.json()] == [
            ("acme", "expiry_too_soon", 4, "detail of expiry_too_soon")
        ]
        day = api.get(f"{ACME}/health", params={"since": 86400}).json()
        assert [(r["reason"], r["events"]) for r in day] == [("expiry_too_soon", 4), ("unknown_kid", 2)]
        assert api.get(f"{ACME}/health").json() == hour.json()  # default: the last hour
        assert api.get(f"{ACME}/health", params={"since": 10}).status_code == 422
        assert api.get("/api/v1/communities/shop/health").status_code in (403, 404)
    with service.client("platform") as api:
        assert api.get("/api/v1/communities/nosuch/health").status_code == 404


def test_removing_a_key_in_use_is_refused_unless_forced(service: Service) -> None:
    """L3: a key that verified tokens within the retirement window: 409 with when and how much,
    nothing written; `?force=true` removes it and the audit row says it was forced."""
    with service.client("acme") as api:
        assert api.post(f"{ACME}/keys", json={"kid": "k2", "hmac_secret": SECRET_2}).status_code == 201
        mark_used(service.database_url, "acme", "k2", 7)
        before = snapshot(service.database_url)
        refused = api.delete(f"{ACME}/keys/k2")
        assert refused.status_code == 409, refused.text
        message = refused.json()["error"]
        assert "key acme/k2 last verified a token at " in message
        assert "7 token(s) in the last 24 h" in message and "?force=true" in message
        assert "\n" not in message and "--force" not in message
        assert snapshot(service.database_url) == before
        forced = api.delete(f"{ACME}/keys/k2", params={"force": "true"})
        assert forced.status_code == 204, forced.text
        assert [k["kid"] for k in api.get(f"{ACME}/keys").json()["items"]] == ["k1"]
        trail = api.get(f"{ACME}/audit").json()["items"]
    assert trail[0]["action"] == "keys remove --force"
    assert trail[0]["changes"][0].startswith("- key acme/k2")


def test_custom_fields_and_mappings(service: Service) -> None:
    with service.client("acme") as api:
        field = api.post(
            f"{ACME}/custom-fields", json={"key": "plan", "label": "Plan", "regex": "(gold|free)"}
        )
        assert field.status_code == 201
        assert {k: field.json()[k] for k in ("key", "label", "regex")} == {
            "key": "plan",
            "label": "Plan",
            "regex": "(gold|free)",
        }
        mapping = api.post(f"{ACME}/mappings", json={"from": "extra_values.plan", "to": "custom_fields.plan"})
        assert mapping.status_code == 201
        assert {k: mapping.json()[k] for k in ("position", "source", "target")} == {
            "position": 2,
            "source": "extra_values.plan",
            "target": "custom_fields.plan",
        }
        assert [f["key"] for f in api.get(f"{ACME}/custom-fields").json()["items"]] == ["customer_id", "plan"]
        assert [m["source"] for m in api.get(f"{ACME}/mappings").json()["items"]] == [
            "extra_values.customer_id",
            "extra_values.plan",
        ]
        removed = api.delete(
            f"{ACME}/mappings", params={"from": "extra_values.plan", "to": "custom_fields.plan"}
        )
        assert removed.status_code == 204
        assert api.delete(f"{ACME}/custom-fields/plan").status_code == 204
        assert [f["key"] for f in api.get(f"{ACME}/custom-fields").json()["items"]] == ["customer_id"]


def test_token_check_explains_like_token_verify(service: Service) -> None:
    """The same steps and verdict as `identity-worker token verify` for the same text (A5, DESIGN §7)."""
    tomorrow = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86400))
    cases = [
        ({"token": hs256(SECRET, "k1")}, None),
        ({"token": hs256(SHOP_SECRET, "k1")}, "invalid_signature"),
        ({"token": hs256(SECRET, "k1", ttl=600)}, "expiry_too_soon"),
        (
            {"token": hs256(SECRET, "k1"), "received_at": tomorrow},
            "expiry_too_soon",
        ),  # V9 against received_at
        ({"token": "not-a-token"}, "malformed_token"),
        ({"token": hs256(SECRET, "k1") + "\n"}, "malformed_token"),  # not trimmed: what the worker sees
    ]
    with service.client("acme") as api:
        for body, reason in cases:
            answer = api.post(f"{ACME}/token-check", json=body).json()
            assert (answer["accepted"], answer["reason"]) == (reason is None, reason), answer
            args = ["token", "verify", "--database-url", service.database_url, "--community", "acme"]
            if "received_at" in body:
                args += ["--received-at", body["received_at"]]
            cli = subprocess.run(
                [IDENTITY_WORKER, *args, body["token"]],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            marks = {"pass": True, "FAIL": False}
            lines = [line.split() for line in cli.stdout.splitlines()[:-1]]
            cli_steps = [(words[1], marks[words[0]]) for words in lines if words[0] in marks]
            assert [(s["rule"], s["passed"]) for s in answer["steps"]] == cli_steps
            assert cli.stdout.splitlines()[-1] == ("accepted" if reason is None else f"rejected: {reason}")


ACME_AT = ("--community", "acme", "--received-at")


def test_token_check_notes_are_token_verify_s_diagnostics(service: Service) -> None:
    """L4: the explanation's notes are `token verify`'s, the removed key's tombstone included."""
    with service.client("acme") as api:
        assert api.post(f"{ACME}/keys", json={"kid": "k2", "hmac_secret": SECRET_2}).status_code == 201
        assert api.delete(f"{ACME}/keys/k2").status_code == 204
        for token, code in (
            (hs256(SECRET_2, "k2"), "unknown_kid"),
            (hs256(SECRET, "k1", ttl=600), "expiry_too_soon"),
        ):
            # One received_at for both: V9's note says by how much, from received_at.
            received = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            body = {"token": token, "received_at": received}
            answer = api.post(f"{ACME}/token-check", json=body).json()
            assert answer["reason"] == code, answer
            cli = subprocess.run(
                [
                    IDENTITY_WORKER,
                    "token",
                    "verify",
                    "--database-url",
                    service.database_url,
                    *ACME_AT,
                    received,
                    token,
                ],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            cli_notes = [
                line[len("note  ") :] for line in cli.stdout.splitlines() if line.startswith("note  ")
            ]
            assert cli_notes and answer["notes"] == cli_notes, (answer["notes"], cli.stdout)
            if code == "unknown_kid":
                assert any(note.startswith("key 'k2' (HS256, sha256:") for note in answer["notes"])
                assert "was removed on " in " ".join(answer["notes"])


def _error(response: Any) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    assert "\n" not in body["error"]
    return str(body["error"])


#: (method, path, body or query, status, a piece of the message). Each is refused, writes nothing.
def _cursor(values: list[object]) -> str:
    """A cursor as the listings write them (worker/store/pages.py), with values of our choice."""
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


REFUSED: list[tuple[str, str, Any, int, str]] = [
    ("POST", "/api/v1/communities", {"id": "bad id"}, 422, "id: String should match pattern"),
    (
        "POST",
        "/api/v1/communities",
        {"id": "acme", "signed_identities": "reject"},
        409,
        "'acme' already exists",
    ),
    (
        "POST",
        "/api/v1/communities",
        {"id": "x", "leeway_seconds": 3601},
        422,
        "leeway_seconds: Input should be less",
    ),
    ("POST", "/api/v1/communities", {"id": "x", "signed_identities": "maybe"}, 422, "signed_identities:"),
    (
        "POST",
        "/api/v1/communities",
        {"id": "x", "colour": "red"},
        422,
        "1 unknown field",  # A12: never named
    ),
    ("POST", "/api/v1/communities", {"id": "x", "min_validity_seconds": "60"}, 422, "min_validity_seconds:"),
    ("POST", "/api/v1/communities", [1], 422, "Input should be"),
    ("PATCH", ACME, {"min_validity_seconds": -1}, 422, "min_validity_seconds: Input should be greater"),
    ("PATCH", ACME, {"id": "renamed"}, 422, "id: Extra inputs are not permitted"),
    ("POST", KEYS, {"kid": "Bad-Kid", "hmac_secret": SECRET_2}, 422, "kid: kid must match"),
    ("POST", KEYS, {"kid": "k" * 65, "hmac_secret": SECRET_2}, 422, "at most 64 characters"),
    ("POST", KEYS, {"kid": "k2", "hmac_secret": SECRET_2.upper()}, 422, "exactly 24 characters of 0-9a-f"),
    ("POST", KEYS, {"kid": "k2", "hmac_secret": 123456789012345678901234}, 422, "must be a quoted string"),
    ("POST", KEYS, {"kid": "k2"}, 422, "give exactly one of hmac_secret"),
    (
        "POST",
        KEYS,
        {"kid": "k2", "hmac_secret": SECRET_2, "rsa_public_key": RSA_PUBLIC_PEM},
        422,
        "give exactly one of hmac_secret",
    ),
    ("POST", KEYS, {"kid": "k2", "rsa_public_key": RSA_PRIVATE_PEM}, 422, "is a private key"),
    (
        "POST",
        KEYS,
        {"kid": "k2", "rsa_public_key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"},
        422,
        "rsa_public_key",
    ),
    ("POST", KEYS, {"kid": "k1", "hmac_secret": SECRET_2}, 409, "already has a key with kid 'k1'"),
    ("DELETE", f"{ACME}/keys/nosuch", None, 404, "has no key with kid 'nosuch'"),
    ("POST", FIELDS, {"key": "Bad Key", "label": "x"}, 422, "key: String should match pattern"),
    ("POST", FIELDS, {"key": "plan", "label": ""}, 422, "label: String should have at least 1"),
    ("POST", FIELDS, {"key": "plan", "label": "x", "regex": "(a"}, 422, "not valid RE2 syntax"),
    ("POST", FIELDS, {"key": "plan", "label": "x", "regex": "(a)\\1"}, 422, "not valid RE2 syntax"),
    ("POST", FIELDS, {"key": "customer_id", "label": "x"}, 409, "already has a custom field"),
    ("DELETE", f"{ACME}/custom-fields/customer_id", None, 409, "remove that mapping first"),
    ("DELETE", f"{ACME}/custom-fields/nosuch", None, 404, "has no custom field 'nosuch'"),
    ("POST", MAPPINGS, {"from": "cookie.x", "to": "identity_group.notes"}, 422, "from must be"),
    ("POST", MAPPINGS, {"from": "uuid", "to": "identity_group.age"}, 422, "to must be"),
    ("POST", MAPPINGS, {"from": "uuid", "to": "custom_fields.undeclared"}, 422, "which is not declared"),
    (
        "POST",
        MAPPINGS,
        {"from": "extra_values.customer_id", "to": "custom_fields.customer_id"},
        409,
        "already has mapping",
    ),
    ("DELETE", MAPPINGS, {"from": "uuid", "to": "identity_group.notes"}, 404, "has no mapping"),
    ("DELETE", MAPPINGS, {"from": "uuid", "to": "nowhere"}, 422, "to must be"),
    ("DELETE", MAPPINGS, {"from": "uuid"}, 422, "to: Field required"),
    ("POST", f"{ACME}/token-check", {}, 422, "token: Field required"),
    (
        "POST",
        f"{ACME}/token-check",
        {"token": "x", "received_at": "yesterday"},
        422,
        "received_at: String should match",
    ),
    (
        "POST",
        f"{ACME}/token-check",
        {"token": "x", "received_at": "0001-01-01T00:00:00+01:00"},
        422,
        "received_at: must be",
    ),
    ("GET", f"{ACME}/audit", {"limit": "0"}, 422, "limit: Input should be greater than or equal to 1"),
    # T5: every listing's page is bounded, and a cursor is one the listing gave.
    ("GET", "/api/v1/communities", {"limit": "501"}, 422, "limit: Input should be less than or equal to 500"),
    ("GET", KEYS, {"after": "not-a-cursor"}, 422, "after: not a cursor of this listing"),
    # A cursor past a bigint, or with a time that is none: refused, never the driver's 503.
    ("GET", f"{ACME}/audit", {"after": _cursor([2**70])}, 422, "after: not a cursor of this listing"),
    ("GET", FIELDS, {"after": _cursor(["x", "y"])}, 422, "after: not a cursor"),
    ("GET", "/api/v1/communities", {"prefix": "a\x00"}, 400, "query parameter prefix holds a NUL character"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), REFUSED)
def test_a_refused_request_gets_one_line_and_writes_nothing(
    service: Service, method: str, path: str, body: Any, status: int, message: str
) -> None:
    before = snapshot(service.database_url)
    with service.client("platform") as api:
        if method in ("GET", "DELETE"):
            response = api.request(method, path, params=body)
        else:
            response = api.request(method, path, json=body)
    assert response.status_code == status, response.text
    assert message in _error(response)
    assert snapshot(service.database_url) == before


S1_REFUSED: list[tuple[str, str, Any, int, str]] = [
    # The body alone breaks S1: the spec model refuses it, as it refuses the YAML.
    (
        "POST",
        "/api/v1/communities",
        {"id": "newco"},
        422,
        "community newco requires signed identities but has no",
    ),
    ("POST", "/api/v1/communities", {"id": "newco", "jwt_keys": []}, 422, "(S1): give it a key (jwt_keys)"),
    # The community's state: its last key, or require without one (409: do another change first).
    ("DELETE", "/api/v1/communities/shop/keys/s1", None, 409, "is the last key of community 'shop'"),
    ("PATCH", "/api/v1/communities/keyless", {"signed_identities": "require"}, 409, "add its key first"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), S1_REFUSED)
def test_s1_a_require_community_always_has_a_key(
    service: Service, method: str, path: str, body: Any, status: int, message: str
) -> None:
    """S1 through the API: refused with one line saying what to do, nothing written."""
    with service.client("platform") as api:
        made = api.post("/api/v1/communities", json={"id": "keyless", "signed_identities": "reject"})
        assert made.status_code == 201
        before = snapshot(service.database_url)
        response = api.request(method, path, json=body)
    assert response.status_code == status, response.text
    assert message in _error(response)
    assert snapshot(service.database_url) == before


def test_s1_rotating_the_only_key_and_switching_to_require_in_the_right_order(service: Service) -> None:
    with service.client("shop") as api:
        assert (
            api.post("/api/v1/communities/shop/keys", json={"kid": "s2", "hmac_secret": SECRET_2}).status_code
            == 201
        )
        assert api.delete("/api/v1/communities/shop/keys/s1").status_code == 204
        assert api.patch("/api/v1/communities/shop", json={"signed_identities": "reject"}).status_code == 200
        assert api.delete("/api/v1/communities/shop/keys/s2").status_code == 204  # reject: no key needed
        assert api.get("/api/v1/communities/shop").json()["keys"] == 0


def test_a_body_that_is_not_json_is_400_and_a_large_one_413(service: Service) -> None:
    before = snapshot(service.database_url)
    with service.client("acme") as api:
        broken = api.post(f"{ACME}/keys", content=b'{"kid": ', headers={"content-type": "application/json"})
        large = api.post(f"{ACME}/keys", json={"kid": "k2", "hmac_secret": "0" * 70_000})
        streamed = api.post(
            f"{ACME}/keys",
            content=iter([b'{"kid": "k2", "rsa_public_key": "', b"A" * 70_000, b'"}']),
            headers={"content-type": "application/json"},
        )
    assert (broken.status_code, _error(broken)) == (400, "the request body is not valid JSON")
    assert (large.status_code, _error(large)) == (413, "the body is larger than 65536 bytes")
    assert (streamed.status_code, _error(streamed)) == (413, "the body is larger than 65536 bytes")
    assert snapshot(service.database_url) == before


def test_no_secret_in_any_answer_log_line_or_audit_row(service: Service) -> None:
    """HMAC secrets, the RSA key, API tokens and whole JWTs go in; none ever comes out (A3)."""
    jwt_text = hs256(SECRET, "k1")
    answers = []
    with service.client("platform") as api:
        calls = [
            (
                "POST",
                "/api/v1/communities",
                {"id": "sec", "jwt_keys": [{"kid": "a", "hmac_secret": SECRET_2}]},
            ),
            ("POST", "/api/v1/communities/sec/keys", {"kid": "b", "rsa_public_key": RSA_PUBLIC_PEM}),
            ("POST", "/api/v1/communities/sec/keys", {"kid": "c", "hmac_secret": SECRET_2[:-1] + "Z"}),
            ("POST", "/api/v1/communities/sec/keys", {"kid": "a", "hmac_secret": SECRET_2}),
            ("POST", "/api/v1/communities/sec/keys", {"kid": "d", "rsa_public_key": RSA_PRIVATE_PEM}),
            ("POST", "/api/v1/communities/sec/keys", {"kid": "e", SECRET_2: "pasted as a key"}),
            ("GET", "/api/v1/communities/sec/keys", None),
            ("POST", f"{ACME}/token-check", {"token": jwt_text}),
            ("POST", f"{ACME}/token-check", {"token": jwt_text + "x"}),
            ("DELETE", "/api/v1/communities/sec/keys/a", None),
            ("GET", "/api/v1/audit", None),
            ("DELETE", "/api/v1/communities/sec", None),
        ]
        for method, path, body in calls:
            response = api.request(method, path, json=body)
            answers.append(f"{response.status_code} {response.headers} {response.text}")
    audit_rows = str([dict(r) for r in run_sql(service.database_url, "SELECT * FROM audit_log")])
    token_rows = str([dict(r) for r in run_sql(service.database_url, "SELECT * FROM api_tokens")])
    private_body = "".join(RSA_PRIVATE_PEM.strip().splitlines()[1:3])
    secrets = [SECRET, SECRET_2, SECRET_2[:-1] + "Z", RSA_PUBLIC_BODY[:60], private_body, jwt_text]
    secrets += [jwt_text.split(".")[2], *service.tokens.values()]
    for where, text in (("answers", "\n".join(answers)), ("log", service.log_text()), ("audit", audit_rows)):
        for secret in secrets:
            assert secret not in text, f"a secret in the {where}"
    for token in service.tokens.values():
        assert token not in token_rows  # only the hashes are stored (A2)
    assert "sha256:" in audit_rows  # keys are audited by fingerprint


def test_an_api_change_and_its_audit_row_commit_together(service: Service) -> None:
    """A4: when the audit row cannot be written (a trigger refuses it here), the change is
    not made either: both are one transaction."""
    run_sql(
        service.database_url,
        """CREATE FUNCTION test_refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'audit refused by the test'; END $$""",
    )
    run_sql(
        service.database_url,
        "CREATE TRIGGER test_refuse_audit BEFORE INSERT ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION test_refuse_audit()",
    )
    try:
        before = snapshot(service.database_url)
        with service.client("acme") as api:
            refused = api.post(f"{ACME}/keys", json={"kid": "k2", "hmac_secret": SECRET_2})
            assert refused.status_code >= 500 and set(refused.json()) == {"error"}
            assert [k["kid"] for k in api.get(f"{ACME}/keys").json()["items"]] == ["k1"]
        assert snapshot(service.database_url) == before
    finally:
        run_sql(service.database_url, "DROP TRIGGER test_refuse_audit ON audit_log")
        run_sql(service.database_url, "DROP FUNCTION test_refuse_audit()")


def test_every_listing_is_paged_with_a_cursor_and_a_prefix(service: Service) -> None:
    """T5: `limit` (default 100, at most 500), `after` (the page before's `next`), `prefix`;
    the answer `{items, next}`. A community token pages through its own community only."""
    with service.client("platform") as api:
        for i in range(5):
            created = api.post("/api/v1/communities", json={"id": f"p{i}", "signed_identities": "reject"})
            assert created.status_code == 201, created.text
        seen: list[str] = []
        after = None
        for _ in range(10):
            page = api.get(
                "/api/v1/communities",
                params={"limit": 2, "prefix": "p"} | ({"after": after} if after else {}),
            )
            assert page.status_code == 200 and set(page.json()) == {"items", "next"}
            seen += [c["id"] for c in page.json()["items"]]
            after = page.json()["next"]
            if after is None:
                break
        assert seen == ["p0", "p1", "p2", "p3", "p4"]
        everything = api.get("/api/v1/communities").json()
        assert ([c["id"] for c in everything["items"]], everything["next"]) == (
            ["acme", "p0", "p1", "p2", "p3", "p4", "shop"],
            None,
        )
        trail = api.get("/api/v1/audit", params={"limit": 3}).json()
        assert [e["community_id"] for e in trail["items"]] == ["p4", "p3", "p2"] and trail["next"]
        older = api.get("/api/v1/audit", params={"limit": 3, "after": trail["next"]}).json()
        assert [e["community_id"] for e in older["items"]] == ["p1", "p0"] and older["next"] is None
        assert api.get(f"{ACME}/keys", params={"prefix": "k"}).json()["items"][0]["kid"] == "k1"
        assert api.get(f"{ACME}/keys", params={"prefix": "z"}).json() == {"items": [], "next": None}
        assert [m["position"] for m in api.get(f"{ACME}/mappings", params={"limit": 1}).json()["items"]] == [
            1
        ]
    with service.client("acme") as api:
        own = api.get("/api/v1/communities", params={"limit": 1}).json()
        assert ([c["id"] for c in own["items"]], own["next"]) == (["acme"], None)
        assert api.get("/api/v1/communities", params={"prefix": "p"}).json() == {"items": [], "next": None}


def test_the_api_tokens_are_listed_in_pages_never_shown(service: Service) -> None:
    """T5, A2: `GET /tokens` pages like every listing (oldest first, `prefix` on the name);
    it is the platform's, and never shows a token or its hash."""
    with service.client("platform") as api:
        names: list[str] = []
        after = None
        for _ in range(10):
            page = api.get("/api/v1/tokens", params={"limit": 1} | ({"after": after} if after else {}))
            assert page.status_code == 200 and set(page.json()) == {"items", "next"}, page.text
            names += [t["name"] for t in page.json()["items"]]
            after = page.json()["next"]
            if after is None:
                break
            for token in service.tokens.values():
                assert token not in page.text
        assert names == ["acme", "platform", "revoked", "shop"]  # made in one transaction: by name
        revoked = api.get("/api/v1/tokens", params={"prefix": "rev"}).json()
        assert [(t["name"], t["scope"], t["revoked_at"] is not None) for t in revoked["items"]] == [
            ("revoked", "community acme", True)
        ]
        assert api.get("/api/v1/tokens", params={"limit": 501}).status_code == 422
        rows = run_sql(service.database_url, "SELECT token_sha256 FROM api_tokens")
        hashes = [r["token_sha256"] for r in rows]
        assert not any(h in api.get("/api/v1/tokens").text for h in hashes)
    with service.client("acme") as api:
        assert api.get("/api/v1/tokens").status_code == 403


def test_the_openapi_document_says_every_listing_is_paged(service: Service) -> None:
    """T5: every GET answering a list takes limit, after and prefix and answers {items, next};
    the one bare array left is a community's health, a summary bounded by outcomes and reasons."""
    with service.client("platform") as api:
        document = api.get("/api/v1/openapi.json").json()
    schemas = document["components"]["schemas"]
    listings = []
    for path, item in document["paths"].items():
        get = item.get("get")
        if get is None:
            continue
        answer = get["responses"]["200"]["content"]["application/json"]["schema"]
        if answer.get("type") == "array":
            assert path == "/api/v1/communities/{community_id}/health", path
            continue
        name = answer.get("$ref", "").rsplit("/", 1)[-1]
        if set(schemas.get(name, {}).get("properties", {})) != {"items", "next"}:
            continue
        listings.append(path)
        assert {p["name"] for p in get["parameters"] if p["in"] == "query"} >= {"limit", "after", "prefix"}
        limit = next(p for p in get["parameters"] if p["name"] == "limit")["schema"]
        assert (limit["default"], limit["maximum"]) == (100, 500), path
    assert sorted(listings) == [
        "/api/v1/audit",
        "/api/v1/communities",
        "/api/v1/communities/{community_id}/audit",
        "/api/v1/communities/{community_id}/custom-fields",
        "/api/v1/communities/{community_id}/keys",
        "/api/v1/communities/{community_id}/mappings",
        "/api/v1/tokens",
    ]
