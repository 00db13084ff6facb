"""A8 and A10: the console keeps a server-side session, never the token; sign-in checks its
Origin; exactly one Authorization header; tokens expire and show their last use."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from tests.support.admin import Service, snapshot
from tests.support.store import run_sql
from worker.cli.main import main

pytestmark = pytest.mark.integration

COOKIE = "identity_worker_session"


def _signin(service: Service, who: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{service.url}/signin", data={"token": service.tokens[who]}, headers=headers or {})


def _sessions(service: Service) -> list[dict[str, object]]:
    return [dict(r) for r in run_sql(service.database_url, "SELECT * FROM console_sessions")]


def test_the_cookie_is_a_random_session_id_stored_hashed_never_the_token(service: Service) -> None:
    answer = _signin(service, "acme")
    assert answer.status_code == 303
    session_id = answer.cookies[COOKIE]
    assert session_id != service.tokens["acme"] and service.tokens["acme"] not in answer.headers["set-cookie"]
    (row,) = _sessions(service)
    assert row["id_sha256"] == hashlib.sha256(session_id.encode()).hexdigest()
    assert row["token_name"] == "acme"
    assert row["created_at"] <= row["last_seen_at"] < row["idle_expires_at"] <= row["expires_at"]
    assert session_id not in str(row)
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # plain http on 127.0.0.1


def test_behind_https_the_cookie_is_secure(service: Service) -> None:
    """The server trusts X-Forwarded-Proto from 127.0.0.1 (uvicorn's default): a TLS proxy."""
    answer = _signin(service, "acme", {"x-forwarded-proto": "https", "origin": "https://" + service.url[7:]})
    assert answer.status_code == 303, answer.text
    assert "; secure" in answer.headers["set-cookie"].lower()


def test_a_session_cookie_is_not_an_api_credential(service: Service) -> None:
    session_id = _signin(service, "platform").cookies[COOKIE]
    with httpx.Client(base_url=service.url, cookies={COOKIE: session_id}) as stolen:
        assert stolen.get("/api/v1/communities").status_code == 401
        as_bearer = stolen.get("/api/v1/communities", headers={"authorization": f"Bearer {session_id}"})
        assert as_bearer.status_code == 401
        assert stolen.get("/").status_code == 200  # still a console session


def test_the_token_itself_is_not_a_console_cookie(service: Service) -> None:
    with httpx.Client(base_url=service.url, cookies={COOKIE: service.tokens["acme"]}) as old_style:
        page = old_style.get("/communities/acme")
    assert page.status_code == 401 and "Sign in" in page.text


def test_sign_out_ends_the_session_on_the_server(service: Service) -> None:
    session_id = _signin(service, "acme").cookies[COOKIE]
    with httpx.Client(base_url=service.url, cookies={COOKIE: session_id}) as browser:
        assert browser.get("/communities/acme").status_code == 200
        assert browser.post("/signout").status_code == 303
    assert _sessions(service) == []
    with httpx.Client(base_url=service.url, cookies={COOKIE: session_id}) as replay:
        assert replay.get("/communities/acme").status_code == 401


def test_revoking_the_token_ends_its_sessions_at_once(service: Service) -> None:
    with service.console("acme") as browser, pytest.MonkeyPatch.context() as patch:
        assert browser.get("/communities/acme").status_code == 200
        patch.setenv("DATABASE_URL", service.database_url)
        with pytest.raises(SystemExit) as done:
            main(["admin", "token", "revoke", "acme"])
        assert done.value.code == 0
        assert browser.get("/communities/acme").status_code == 401
    assert _sessions(service) == []


@pytest.mark.parametrize(
    "expire",
    [
        "UPDATE console_sessions SET idle_expires_at = now() - interval '1 second'",
        "UPDATE console_sessions SET expires_at = now() - interval '1 second', "
        "idle_expires_at = now() - interval '1 second'",
        "UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE name = 'acme'",
    ],
    ids=["idle", "absolute", "token-expired"],
)
def test_an_expired_session_is_refused(service: Service, expire: str) -> None:
    with service.console("acme") as browser:
        assert browser.get("/communities/acme").status_code == 200
        run_sql(service.database_url, expire)
        assert browser.get("/communities/acme").status_code == 401


def test_a_request_moves_the_idle_expiry_on_never_past_the_absolute_one(service: Service) -> None:
    with service.console("acme") as browser:
        run_sql(
            service.database_url,
            "UPDATE console_sessions SET idle_expires_at = now() + interval '1 minute', "
            "expires_at = now() + interval '2 minutes'",
        )
        assert browser.get("/communities/acme").status_code == 200
    (row,) = _sessions(service)
    assert row["idle_expires_at"] == row["expires_at"]


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://evil.example"},
        {"origin": "null"},
        {"origin": "http://127.0.0.1"},  # same host, another port: another origin
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"},
    ],
)
def test_sign_in_from_another_site_is_refused(service: Service, headers: dict[str, str]) -> None:
    """Login CSRF (A8): another site cannot sign a browser in with the attacker's token."""
    answer = _signin(service, "shop", headers)
    assert answer.status_code == 403
    assert COOKIE not in answer.cookies
    assert _sessions(service) == []


def test_sign_out_from_another_site_is_refused(service: Service) -> None:
    with service.console("acme") as browser:
        assert browser.post("/signout", headers={"origin": "null"}).status_code == 403
        assert browser.get("/communities/acme").status_code == 200


#: Two Authorization headers, in every order and spelling (A10).
TWICE = [
    ("platform", "platform"),
    ("platform", "bad"),
    ("bad", "platform"),
    ("acme", "platform"),
]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/v1/communities", None),
        ("PATCH", "/api/v1/communities/acme", {"signed_identities": "reject"}),
        ("POST", "/api/v1/communities/acme/custom-fields", {"key": "plan", "label": "Plan"}),
        ("DELETE", "/api/v1/communities/acme/keys/k1?force=true", None),
    ],
)
def test_two_authorization_headers_are_refused(
    service: Service, method: str, path: str, body: object
) -> None:
    bad = "iwk_" + "x" * 43
    before = snapshot(service.database_url)
    for first, second in TWICE:
        values = [f"Bearer {service.tokens.get(who, bad)}" for who in (first, second)]
        with httpx.Client(base_url=service.url) as client:
            request = client.build_request(method, path, json=body)
            # Header names in other cases too: HTTP header names are case-insensitive.
            names = (
                (b"Authorization", b"authorization")
                if first != second
                else (b"AUTHORIZATION", b"authorization")
            )
            request.headers = httpx.Headers(
                [*request.headers.raw, (names[0], values[0].encode()), (names[1], values[1].encode())]
            )
            response = client.send(request)
        assert response.status_code == 400, (first, second, response.text)
        assert response.json() == {"error": "send one Authorization header, not several"}
    assert snapshot(service.database_url) == before


def test_one_header_holding_two_tokens_is_refused(service: Service) -> None:
    value = f"Bearer {service.tokens['platform']}, Bearer {service.tokens['acme']}"
    with httpx.Client(base_url=service.url, headers={"authorization": value}) as client:
        assert client.get("/api/v1/communities").status_code == 401


def _cli(service: Service, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATABASE_URL", service.database_url)
        with pytest.raises(SystemExit) as done:
            main(list(args))
    out, err = capsys.readouterr()
    return int(done.value.code or 0), out, err


def test_a_token_made_with_an_expiry_is_refused_after_it(
    service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _cli(
        service, capsys, "admin", "token", "create", "temp", "--community", "acme", "--expires", "90d"
    )
    assert code == 0
    token = out.strip()
    (row,) = run_sql(
        service.database_url,
        "SELECT expires_at - created_at AS lifetime, last_used_at FROM api_tokens WHERE name = 'temp'",
    )
    assert row["lifetime"].days == 90 and row["last_used_at"] is None
    (entry,) = run_sql(
        service.database_url, "SELECT changes FROM audit_log WHERE action = 'admin token create'"
    )
    assert entry["changes"] == ["+ token temp (community acme, expires after 90d)"]
    with httpx.Client(base_url=service.url, headers={"authorization": f"Bearer {token}"}) as api:
        assert api.get("/api/v1/communities/acme").status_code == 200
        code, out, _ = _cli(service, capsys, "admin", "token", "list")
        line = next(line for line in out.splitlines() if line.startswith("temp "))
        assert line.count("T") >= 3 and "never" not in line  # created, last used, expires
        run_sql(service.database_url, "UPDATE api_tokens SET expires_at = now() WHERE name = 'temp'")
        refused = api.get("/api/v1/communities/acme")
    assert refused.status_code == 401
    assert refused.json() == {"error": "the token is unknown, revoked or expired"}
    _, out, _ = _cli(service, capsys, "admin", "token", "list")
    header = out.splitlines()[0].split()
    assert header == ["NAME", "SCOPE", "CREATED", "CREATED_BY", "LAST_USED", "EXPIRES", "REVOKED"]
    platform = next(line for line in out.splitlines() if line.startswith("platform "))
    assert "never" in platform


def test_a_bad_expiry_is_one_line_and_a_usage_error(
    service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    for value in ("0d", "90", "-1d", "1.5d", "90 days", "99999999d", "3661d", "", "90D", "P90D"):
        code, out, err = _cli(
            service, capsys, "admin", "token", "create", "temp", "--platform", "--expires", value
        )
        assert code == 2 and out == "", value
        assert "--expires must be a lifetime like 12h or 90d" in err and len(err.strip().splitlines()) == 1, (
            err
        )
    assert not run_sql(service.database_url, "SELECT 1 FROM api_tokens WHERE name = 'temp'")


def test_signing_in_again_replaces_the_browser_s_session(service: Service) -> None:
    with service.console("acme") as browser:
        first = browser.cookies[COOKIE]
        again = browser.post("/signin", data={"token": service.tokens["platform"]})
        assert again.status_code == 303 and browser.cookies[COOKIE] != first
        (row,) = _sessions(service)
        assert row["token_name"] == "platform"
