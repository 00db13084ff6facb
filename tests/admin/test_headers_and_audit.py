"""A9 and A11: every answer carries the security headers and the API docs need no other site;
the audit trail belongs to one incarnation of a community and cannot be forged."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.support.admin import SECRET, SECRET_2, Service
from tests.support.store import run_async, run_sql
from worker.cli.main import main
from worker.store import audit
from worker.store.sync import Change

pytestmark = pytest.mark.integration

EXPECTED = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
}


def _check_headers(response: httpx.Response) -> None:
    for name, value in EXPECTED.items():
        assert response.headers.get(name) == value, (response.request.url, name, response.headers)
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "default-src 'self'" in policy
    assert response.headers.get_list("cache-control") == ["no-store"]


def test_every_kind_of_answer_carries_the_security_headers(service: Service) -> None:
    """A9: console pages, API answers and every refusal, 404s, static files, the docs page."""
    with service.console("acme") as browser:
        answers = [
            browser.get("/communities/acme"),  # a signed-in page
            browser.get("/communities/shop"),  # its 404
            browser.get("/static/console.css"),
            browser.get("/nowhere"),
            browser.post("/communities/acme/keys", data={"kid": "x"}),  # 403: no CSRF value
        ]
    with httpx.Client(base_url=service.url) as anonymous:
        answers += [
            anonymous.get("/"),
            anonymous.get("/api/v1/openapi.json"),
            anonymous.get("/api/v1/docs"),
            anonymous.get("/api/v1/docs/assets/swagger-ui.css"),
            anonymous.get("/api/v1/communities"),  # 401
            anonymous.get("/api/v1/nowhere"),  # 404
            anonymous.put("/api/v1/communities"),  # 405
            anonymous.post("/api/v1/communities", content=b"x" * 70000),  # 413
            anonymous.post("/signin", data={"token": "nope"}, headers={"origin": "null"}),  # 403
        ]
    with service.client("acme") as api:
        answers += [
            api.get("/api/v1/communities/acme"),
            api.patch("/api/v1/communities/acme", json={"leeway_seconds": "x"}),  # 422
            api.patch("/api/v1/communities/acme", content=b"{", headers={"content-type": "application/json"}),
            api.get("/api/v1/communities/acme/keys/%00"),  # the text rule's 400
            api.post("/api/v1/communities/acme/custom-fields", data={"key": "plan"}),  # a form to JSON
        ]
    assert {r.status_code for r in answers} == {200, 400, 401, 403, 404, 405, 413, 422}
    for response in answers:
        _check_headers(response)


def test_the_api_docs_page_fetches_nothing_from_another_site(service: Service) -> None:
    with httpx.Client(base_url=service.url) as anonymous:
        page = anonymous.get("/api/v1/docs")
        assert page.status_code == 200
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert sources and all(s.startswith("/") for s in sources), sources
        for source in sources:
            assert anonymous.get(source).status_code == 200, source
    assert "cdn" not in page.text.lower() and "<script>" not in page.text


def _cli(service: Service, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATABASE_URL", service.database_url)
        with pytest.raises(SystemExit) as done:
            main(list(args))
    assert done.value.code == 0
    return capsys.readouterr().out


def test_a_re_created_community_starts_with_an_empty_trail(
    service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    """A11: the new owner sees nothing of the previous customer's trail; the platform sees both."""
    with service.client("platform") as platform:
        assert platform.patch("/api/v1/communities/acme", json={"leeway_seconds": 20}).status_code == 200
    with service.client("acme") as old_owner:
        mapping = {"from": "extra_values.secret_plan", "to": "identity_group.notes"}
        assert old_owner.post("/api/v1/communities/acme/mappings", json=mapping).status_code == 201
        assert len(old_owner.get("/api/v1/communities/acme/audit").json()["items"]) == 2
    with service.client("platform") as platform:
        assert platform.delete("/api/v1/communities/acme").status_code == 204
        body = {"id": "acme", "jwt_keys": [{"kid": "new1", "hmac_secret": SECRET_2}]}
        assert platform.post("/api/v1/communities", json=body).status_code == 201
        everything = platform.get("/api/v1/audit").json()["items"]
    new_token = _cli(service, capsys, "admin", "token", "create", "newowner", "--community", "acme").strip()
    with httpx.Client(base_url=service.url, headers={"authorization": f"Bearer {new_token}"}) as new_owner:
        trail = new_owner.get("/api/v1/communities/acme/audit").json()["items"]
    assert [e["action"] for e in trail] == ["admin token create", "community add"]
    assert "secret_plan" not in str(trail) and "-> 20" not in str(trail)
    # The platform still sees the old incarnation's entries, in the API and the CLI.
    assert "secret_plan" in str(everything) and "-> 20" in str(everything)
    listing = _cli(service, capsys, "audit", "list", "--community", "acme")
    assert "secret_plan" in listing and "new1" in listing


def test_a_stored_value_cannot_forge_an_audit_line(
    service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    """A11: whatever a change line holds (here written past the API, as a YAML file could),
    the trail stores and prints it on one line."""
    forged = "2026-12-05T00:00:00Z  token platform  acme  community remove  - community acme"
    line = Change("+", f"field acme/plan: label 'x\n{forged}\x1b[2K\u202e'")

    async def write() -> None:
        import asyncpg

        conn = await asyncpg.connect(service.database_url)
        try:
            await audit.record(conn, "token acme\nforged", "field add\r", [line], "acme")
        finally:
            await conn.close()

    run_async(write)
    (row,) = run_sql(service.database_url, "SELECT actor, action, changes FROM audit_log")
    stored = row["actor"] + row["action"] + "".join(row["changes"])
    assert not any(ch in stored for ch in "\n\r\x1b\u202e"), stored
    listing = _cli(service, capsys, "audit", "list")
    assert len(listing.splitlines()) == 2  # the header and one row
    with service.client("acme") as api:
        (entry,) = api.get("/api/v1/communities/acme/audit").json()["items"]
    assert "\\n" in entry["changes"][0] and "\n" not in entry["changes"][0]
    assert SECRET not in listing
