"""A2: who reaches what. Platform token: everything; a community token: its own community,
and 404 for another one exactly as for one that does not exist; no, bad or revoked token:
401. Every refusal writes nothing (A3)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.admin import SECRET, SECRET_2, Service, hs256, snapshot

pytestmark = pytest.mark.integration

CALLERS = ("platform", "acme", "shop", "revoked", "bad", "none")
SUCCESS = {"GET": 200, "POST": 201, "PATCH": 200, "DELETE": 204}

#: One request per route about a community (written for community `acme`): method, path, body.
COMMUNITY_ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/api/v1/communities/{c}", None),
    ("PATCH", "/api/v1/communities/{c}", {"leeway_seconds": 20}),
    ("GET", "/api/v1/communities/{c}/keys", None),
    ("POST", "/api/v1/communities/{c}/keys", {"kid": "k9", "hmac_secret": SECRET_2}),
    ("DELETE", "/api/v1/communities/{c}/keys/k1", None),
    ("GET", "/api/v1/communities/{c}/custom-fields", None),
    ("POST", "/api/v1/communities/{c}/custom-fields", {"key": "plan", "label": "Plan"}),
    ("DELETE", "/api/v1/communities/{c}/custom-fields/plan_unused", None),
    ("GET", "/api/v1/communities/{c}/mappings", None),
    ("POST", "/api/v1/communities/{c}/mappings", {"from": "uuid", "to": "identity_group.notes"}),
    (
        "DELETE",
        "/api/v1/communities/{c}/mappings?from=extra_values.customer_id&to=custom_fields.customer_id",
        None,
    ),
    ("POST", "/api/v1/communities/{c}/token-check", {"token": "TOKEN"}),
    ("GET", "/api/v1/communities/{c}/health", None),
    ("GET", "/api/v1/communities/{c}/audit", None),
    ("DELETE", "/api/v1/communities/{c}", None),
]
PLATFORM_ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/api/v1/communities", None),
    ("POST", "/api/v1/communities", {"id": "newco", "signed_identities": "reject"}),
    ("GET", "/api/v1/audit", None),
    ("GET", "/api/v1/tokens", None),
]


def _call(service: Service, who: str, method: str, path: str, body: Any) -> tuple[int, Any]:
    if body == {"token": "TOKEN"}:
        body = {"token": hs256(SECRET, "k1")}
    with service.client(None if who == "none" else ("iwk_" + "x" * 43 if who == "bad" else who)) as client:
        response = client.request(method, path, json=body)
    data = response.json() if response.content else None
    return response.status_code, data


def _expected_community(who: str, method: str, path: str) -> int:
    if who in ("revoked", "bad", "none"):
        return 401
    if who == "shop":
        return 404
    if method == "DELETE" and path == "/api/v1/communities/{c}" and who != "platform":
        return 403  # removing a whole community is the platform's
    if method == "DELETE" and "custom-fields/plan_unused" in path:
        return 404  # admitted, then the field does not exist
    return 200 if "token-check" in path else SUCCESS[method]


def _expected_platform(who: str, method: str, path: str) -> int:
    if who in ("revoked", "bad", "none"):
        return 401
    if who == "platform" or (method, path) == ("GET", "/api/v1/communities"):
        return 201 if method == "POST" else 200
    return 403


@pytest.mark.parametrize("who", CALLERS)
def test_the_authorization_matrix(service: Service, who: str) -> None:
    """Each caller on every route: the status the matrix says, and a refusal changes nothing."""
    seen = []
    for method, template, body in COMMUNITY_ROUTES:
        expected = _expected_community(who, method, template)
        before = snapshot(service.database_url)
        status, data = _call(service, who, method, template.format(c="acme"), body)
        seen.append((method, template, status))
        assert status == expected, (who, method, template, status, data)
        if status >= 400:
            assert snapshot(service.database_url) == before, (who, method, template)
            assert set(data) == {"error"} and data["error"]
        if status == 404 and who == "shop":
            # Exactly as for a community that does not exist (A2): same status, same message.
            missing_status, missing = _call(service, who, method, template.format(c="nosuch"), body)
            assert (missing_status, missing["error"].replace("nosuch", "acme")) == (404, data["error"])
    for method, path, body in PLATFORM_ROUTES:
        expected = _expected_platform(who, method, path)
        before = snapshot(service.database_url)
        status, data = _call(service, who, method, path, body)
        seen.append((method, path, status))
        assert status == expected, (who, method, path, status, data)
        if status >= 400:
            assert snapshot(service.database_url) == before
    print(f"\n{who}: " + ", ".join(f"{m} {p.replace('/api/v1', '')} {s}" for m, p, s in seen))


def test_a_community_token_lists_its_own_community_only(service: Service) -> None:
    with service.client("acme") as client:
        assert [c["id"] for c in client.get("/api/v1/communities").json()["items"]] == ["acme"]
    with service.client("platform") as client:
        assert [c["id"] for c in client.get("/api/v1/communities").json()["items"]] == ["acme", "shop"]


def test_a_revoked_token_is_refused_at_once(service: Service, tmp_path: Any) -> None:
    from worker.cli.main import main

    with service.client("acme") as client:
        assert client.get("/api/v1/communities/acme").status_code == 200
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("DATABASE_URL", service.database_url)
            with pytest.raises(SystemExit) as done:
                main(["admin", "token", "revoke", "acme"])
            assert done.value.code == 0
        refused = client.get("/api/v1/communities/acme")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"


def test_401_says_nothing_about_the_token(service: Service) -> None:
    for who in ("bad", "revoked", "nonsense token with spaces"):
        with service.client("iwk_" + "x" * 43 if who == "bad" else who) as client:
            response = client.get("/api/v1/communities")
        assert response.status_code == 401
        assert response.json() == {"error": "the token is unknown, revoked or expired"}


def test_every_route_of_the_openapi_document_refuses_a_request_without_a_token(service: Service) -> None:
    """The check sits on the API router, so no route can forget it (STYLE: one dependency)."""
    with service.client("platform") as client:
        paths = client.get("/api/v1/openapi.json").json()["paths"]
    operations = [(method.upper(), path) for path, item in paths.items() for method in item]
    assert len(operations) == len(COMMUNITY_ROUTES) + len(PLATFORM_ROUTES)
    before = snapshot(service.database_url)
    with service.client(None) as client:
        for method, path in operations:
            concrete = path.format(community_id="acme", kid="k1", key="customer_id")
            response = client.request(method, concrete, json={})
            assert response.status_code == 401, (method, path, response.text)
    assert snapshot(service.database_url) == before
