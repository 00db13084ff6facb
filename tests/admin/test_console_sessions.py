"""A8, A9 in a real headless browser (Debian's chromium, as tests/admin/test_console.py):
sign in, sign out, a session removed on the server, framing refused, the API docs offline."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.admin import test_console
from tests.admin.test_console import sign_in
from tests.support.admin import Service
from tests.support.store import run_sql

pytestmark = pytest.mark.integration

# The console tests' own browser (Debian's chromium, one per module) and page fixtures.
browser = test_console.browser
page = test_console.page


def test_sign_in_holds_a_session_and_sign_out_ends_it(service: Service, page: Page) -> None:
    sign_in(page, service, "acme")
    expect(page.get_by_role("heading", name="Community acme")).to_be_visible()
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "identity_worker_session"]
    assert cookie["value"] != service.tokens["acme"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert run_sql(service.database_url, "SELECT count(*) AS n FROM console_sessions")[0]["n"] == 1

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert run_sql(service.database_url, "SELECT count(*) AS n FROM console_sessions")[0]["n"] == 0
    # Back, or the copied cookie put back: the server has forgotten the session.
    page.context.add_cookies([cookie])
    page.goto(service.url + "/communities/acme")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_text("Community acme")).to_have_count(0)


def test_a_session_removed_on_the_server_signs_the_browser_out(service: Service, page: Page) -> None:
    sign_in(page, service, "acme")
    expect(page.get_by_role("heading", name="Community acme")).to_be_visible()
    run_sql(service.database_url, "DELETE FROM console_sessions")
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("session ended or expired")


@pytest.fixture
def attacker(service: Service, tmp_path: Path) -> Iterator[str]:
    """Another site (another port: another origin) whose page frames the console."""
    (tmp_path / "evil.html").write_text(
        "<h1>evil</h1>"
        f'<iframe src="{service.url}/communities/acme"></iframe><iframe src="{service.url}/"></iframe>'
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=tmp_path))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/evil.html"
    server.shutdown()
    server.server_close()


def test_the_console_refuses_to_be_framed(service: Service, page: Page, attacker: str) -> None:
    """A9: another site framing the console shows nothing of it (clickjacking)."""
    sign_in(page, service, "acme")
    expect(page.get_by_role("heading", name="Community acme")).to_be_visible()
    page.goto(attacker)
    expect(page.get_by_role("heading", name="evil")).to_be_visible()
    page.wait_for_timeout(1500)
    frames = page.frames[1:]
    assert len(frames) == 2
    for frame in frames:
        text = frame.evaluate("document.documentElement.innerText")
        assert "Community acme" not in text and "Sign in" not in text, (frame.url, text)


def test_the_api_docs_render_without_internet(service: Service, page: Page) -> None:
    """A9: Swagger UI comes from the service itself; requests to any other host fail here."""
    elsewhere: list[str] = []
    page.route(
        "**/*",
        lambda route: (
            route.continue_()
            if route.request.url.startswith(service.url) or route.request.url.startswith("data:")
            else (elsewhere.append(route.request.url), route.abort())[1]
        ),
    )
    page.goto(service.url + "/api/v1/docs")
    expect(page.get_by_text("identity-worker configuration service").first).to_be_visible(timeout=15000)
    expect(page.get_by_text("/api/v1/communities/{community_id}/keys").first).to_be_visible()
    assert elsewhere == []
