"""A7 and A12 at the service's one door (worker/admin/bodies.py, worker/admin/errors.py):
a repeated JSON member is refused, never last-wins; text the store cannot hold is a 4xx,
never a 5xx or a driver's message; an error never echoes an unknown member name."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.support.admin import RSA_PUBLIC_PEM, SECRET, SECRET_2, Service, hs256, snapshot

pytestmark = pytest.mark.integration

ACME = "/api/v1/communities/acme"


def _send(service: Service, method: str, path: str, raw: str, content_type: str | None) -> httpx.Response:
    headers = {"content-type": content_type} if content_type else {}
    with service.client("platform") as api:
        # `content` bytes go without a content type unless one is given (None: FastAPI reads JSON).
        request = api.build_request(
            method, path, content=raw.encode("utf-8", "surrogatepass"), headers=headers
        )
        assert ("content-type" in request.headers) == (content_type is not None)
        return api.send(request)


#: Bodies with a member given twice: method, path, raw JSON, the member the answer names.
REPEATED: list[tuple[str, str, str, str]] = [
    ("PATCH", ACME, '{"signed_identities":"require","signed_identities":"reject"}', "signed_identities"),
    # The same name spelt with a JSON escape is the same member.
    (
        "PATCH",
        ACME,
        '{"signed_identities":"require","signed\\u005fidentities":"reject"}',
        "signed_identities",
    ),
    ("PATCH", ACME, '{"leeway_seconds":5,"leeway_seconds":50}', "leeway_seconds"),
    (
        "POST",
        f"{ACME}/keys",
        f'{{"kid":"k9","hmac_secret":"{SECRET}","hmac_secret":"{SECRET_2}"}}',
        "hmac_secret",
    ),
    ("POST", f"{ACME}/custom-fields", '{"key":"plan","label":"Plan","label":"Other"}', "label"),
    (
        "POST",
        f"{ACME}/mappings",
        '{"from":"uuid","from":"extra_values.x","to":"identity_group.notes"}',
        "from",
    ),
    ("POST", f"{ACME}/token-check", '{"token":"a.b.c","token":"d.e.f"}', "token"),
    # Nested: an object inside the body, and objects in an array.
    (
        "POST",
        "/api/v1/communities",
        '{"id":"newco","signed_identities":"reject","mappings":[{"from":"uuid","to":"identity_group.notes",'
        '"to":"identity_group.name"}]}',
        "to",
    ),
    (
        "POST",
        "/api/v1/communities",
        f'{{"id":"newco","jwt_keys":[{{"kid":"a","hmac_secret":"{SECRET}"}},'
        f'{{"kid":"b","kid":"c","hmac_secret":"{SECRET_2}"}}]}}',
        "kid",
    ),
]


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", None])
def test_a_repeated_member_is_refused_and_named(service: Service, content_type: str | None) -> None:
    """A7: 422 naming the member, nothing written (the signatures stay required)."""
    before = snapshot(service.database_url)
    for method, path, raw, member in REPEATED:
        response = _send(service, method, path, raw, content_type)
        assert response.status_code == 422, (path, raw, response.text)
        assert response.json() == {"error": f"{member} is given twice in one object; give each member once"}
    assert snapshot(service.database_url) == before


def test_the_json_subtypes_the_framework_reads_are_as_strict(service: Service) -> None:
    """Every content type FastAPI reads as JSON (application/*+json) is checked the same way."""
    raw = '{"signed_identities":"require","signed_identities":"reject"}'
    for content_type in ("application/merge-patch+json", "APPLICATION/JSON", "application/vnd.api+json"):
        response = _send(service, "PATCH", ACME, raw, content_type)
        assert response.status_code == 422, (content_type, response.text)
    with service.client("platform") as api:
        assert api.get(ACME).json()["signed_identities"] == "require"


def test_a_repeated_unknown_member_is_not_named(service: Service) -> None:
    """A12: a secret pasted twice as a member name is not echoed either."""
    secret = SECRET.upper()
    response = _send(service, "PATCH", ACME, f'{{"{secret}":1,"{secret}":2}}', "application/json")
    assert response.status_code == 422
    assert response.json() == {
        "error": "an unknown member is given twice in one object; give each member once"
    }


#: Text the store cannot hold, or that would break a listing (A7): path, body, query.
UNSTORABLE: list[tuple[str, str, Any]] = [
    ("POST", f"{ACME}/custom-fields", {"key": "plan", "label": "Pl\x00an"}),
    ("POST", f"{ACME}/custom-fields", {"key": "plan", "label": "Plan\n2026-01-01 token x: forged"}),
    ("POST", f"{ACME}/custom-fields", {"key": "plan", "label": "Pl\x1ban"}),
    ("POST", f"{ACME}/custom-fields", {"key": "plan", "label": "Pl\x85an"}),
    ("POST", f"{ACME}/custom-fields", {"key": "plan", "label": "Plan", "regex": "a\x00"}),
    ("POST", f"{ACME}/mappings", {"from": "extra_values.a\nb", "to": "identity_group.notes"}),
    ("POST", f"{ACME}/mappings", {"from": "extra_values.\ud800", "to": "identity_group.notes"}),
    ("POST", f"{ACME}/mappings", {"from": "extra_values.a\x00", "to": "identity_group.notes"}),
    ("POST", f"{ACME}/keys", {"kid": "k\x00", "hmac_secret": SECRET_2}),
    ("POST", f"{ACME}/keys", {"kid": "k\ud83d", "hmac_secret": SECRET_2}),
    ("POST", "/api/v1/communities", {"id": "new\x00co", "signed_identities": "reject"}),
    ("POST", "/api/v1/communities", {"id": "newco", "signed_identities": "reject\x00"}),
    ("POST", f"{ACME}/token-check", {"token": "a.b.c\x00"}),
    ("PATCH", ACME, {"signed_identities\x00": "reject"}),
    ("DELETE", f"{ACME}/keys/k%00", None),
    ("DELETE", f"{ACME}/keys/k%0A1", None),
    ("DELETE", f"{ACME}/custom-fields/customer%00id", None),
    ("GET", "/api/v1/communities/ac%00me", None),
    ("DELETE", f"{ACME}/mappings?from=extra_values.customer_id%00&to=custom_fields.customer_id", None),
    ("DELETE", f"{ACME}/mappings?from=extra_values.%ED%A0%80&to=custom_fields.customer_id", None),
    ("GET", f"{ACME}/audit?limit=1%00", None),
]


def test_text_the_store_cannot_hold_is_a_4xx_never_a_5xx(service: Service) -> None:
    """A7, A3: one clear 4xx, no SQLSTATE or driver text, nothing written, for a community token."""
    before = snapshot(service.database_url)
    for method, path, body in UNSTORABLE:
        with service.client("acme" if path.startswith(ACME) else "platform") as api:
            if body is None:
                response = api.request(method, path)
            else:
                raw = json.dumps(body)  # ensure_ascii: a lone surrogate goes as \\ud800
                response = api.request(
                    method, path, content=raw, headers={"content-type": "application/json"}
                )
        assert 400 <= response.status_code < 500, (path, body, response.text)
        message = response.json()["error"]
        assert "cannot be stored" in message or response.status_code == 404, (path, body, message)
        for driver_text in ("SQLSTATE", "invalid byte sequence", "surrogates not allowed", "asyncpg", "0x00"):
            assert driver_text not in message
    assert snapshot(service.database_url) == before


def test_a_pem_key_keeps_its_lines(service: Service) -> None:
    """Line breaks stay allowed where text is several lines by nature (a PEM key)."""
    with service.client("acme") as api:
        response = api.post(f"{ACME}/keys", json={"kid": "rsa1", "rsa_public_key": RSA_PUBLIC_PEM})
        assert response.status_code == 201, response.text
        checked = api.post(f"{ACME}/token-check", json={"token": hs256(SECRET, "k1") + "\n"})
    assert checked.status_code == 200, checked.text


def test_a_console_form_with_unstorable_text_is_refused(service: Service) -> None:
    """The same rule for the console's form posts (A7)."""
    before = snapshot(service.database_url)
    with service.console("acme") as browser:
        page = browser.get("/communities/acme")
        csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
        response = browser.post(
            "/communities/acme/fields", data={"key": "plan", "label": "Pl\x00an", "csrf": csrf}
        )
    assert response.status_code == 422
    assert response.json() == {"error": "label holds a NUL character; it cannot be stored"}
    assert snapshot(service.database_url) == before


#: Things pasted into the wrong place: none may come back in the answer (A12).
PASTED = [
    SECRET.upper(),
    "iwk_" + "Ab1_" * 10 + "xyz",
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7",
    "-----BEGIN PRIVATE KEY-----",
]


@pytest.mark.parametrize("pasted", PASTED)
def test_an_unknown_member_is_counted_never_echoed(service: Service, pasted: str) -> None:
    """A12: "2 unknown fields", at the top level and inside a nested object, on every body route."""
    bodies = [
        ("PATCH", ACME, {pasted: "x", pasted + "2": "y"}, "2 unknown fields"),
        ("POST", f"{ACME}/keys", {"kid": "k9", "hmac_secret": SECRET_2, pasted: 1}, "1 unknown field"),
        ("POST", f"{ACME}/custom-fields", {"key": "plan", "label": "Plan", pasted: True}, "1 unknown field"),
        (
            "POST",
            f"{ACME}/mappings",
            {"from": "uuid", "to": "identity_group.notes", pasted: 1},
            "1 unknown field",
        ),
        ("POST", f"{ACME}/token-check", {"token": "a.b.c", pasted: pasted}, "1 unknown field"),
        (
            "POST",
            "/api/v1/communities",
            {"id": "newco", "jwt_keys": [{"kid": "a", "hmac_secret": SECRET, pasted: pasted}]},
            "jwt_keys[0]: 1 unknown field",
        ),
    ]
    before = snapshot(service.database_url)
    with service.client("platform") as api:
        for method, path, body, summary in bodies:
            response = api.request(method, path, json=body)
            assert response.status_code == 422, (path, response.text)
            assert summary in response.json()["error"], (path, response.text)
            assert pasted not in response.text and pasted.lower() not in response.text.lower()
    assert snapshot(service.database_url) == before


def test_a_repeated_query_parameter_is_refused(service: Service) -> None:
    """A7 for the query string: the framework would take the last value, as it did for JSON."""
    before = snapshot(service.database_url)
    mapping = "from=uuid&from=extra_values.customer_id&to=custom_fields.customer_id"
    secret = SECRET.upper()
    with service.client("acme") as api:
        removed = api.delete(f"{ACME}/mappings?{mapping}")
        forced = api.delete(f"{ACME}/keys/k1?force=false&force=true")
        pasted = api.get(f"{ACME}/audit?{secret}=1&{secret}=2")
    assert removed.status_code == 400
    assert removed.json() == {"error": "query parameter from is given twice; give it once"}
    assert forced.json() == {"error": "query parameter force is given twice; give it once"}
    assert pasted.json() == {"error": "query parameter (unknown) is given twice; give it once"}
    assert snapshot(service.database_url) == before


def test_a_multipart_console_form_is_held_to_the_same_rule(service: Service) -> None:
    """A7: the console's forms read multipart posts too; the text rule still applies."""
    before = snapshot(service.database_url)
    with service.console("acme") as browser:
        page = browser.get("/communities/acme")
        csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
        fields = {"key": (None, "plan"), "label": (None, "Pl\x00an"), "csrf": (None, csrf)}
        response = browser.post("/communities/acme/fields", files=fields)
    assert response.status_code == 422, response.text
    assert "label holds a NUL character; it cannot be stored" in response.text
    assert "SQLSTATE" not in response.text
    assert snapshot(service.database_url) == before
