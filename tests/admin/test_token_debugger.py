"""The token debugger in the API and the console (A5, DESIGN §7, L4): the token
decoded with its dates, the verdict, the notes and a preview of what agents see; the console
keeps the pasted token; whitespace and `Bearer ` get a note and the token alone's verdict."""

from __future__ import annotations

import os
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.support.admin import IDENTITY_WORKER, SECRET, Service, hs256

pytestmark = pytest.mark.integration

ACME = "/api/v1/communities/acme"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]


def test_the_api_s_token_check_decodes_dates_and_previews(service: Service) -> None:
    token = hs256(SECRET, "k1", ttl=7080, firstname="Ada", extra_values={"customer_id": "C123456"})
    with service.client("acme") as api:
        answer = api.post(f"{ACME}/token-check", json={"token": token}).json()
    assert answer["accepted"], answer
    assert answer["header"] == {"alg": "HS256", "kid": "k1", "typ": "JWT"}
    assert answer["payload"]["firstname"] == "Ada"
    exp = next(t for t in answer["times"] if t["claim"] == "exp")
    assert exp["relative"] in ("expires in 1 h 58 min", "expires in 1 h 57 min") and exp["utc"].endswith("Z")
    preview = answer["preview"]
    assert preview["published"] and preview["identity_group"]["firstname"] == "Ada"
    assert token not in str(answer) and SECRET not in str(answer)


def test_the_api_s_token_check_diagnoses_bearer_and_milliseconds(service: Service) -> None:
    token = hs256(SECRET, "k1")
    with service.client("acme") as api:
        bearer = api.post(f"{ACME}/token-check", json={"token": f"Bearer {token}"}).json()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            millis = hs256(SECRET, "k1", exp=1796426579000)
        late = api.post(f"{ACME}/token-check", json={"token": millis}).json()
    assert bearer["reason"] == "malformed_token"
    assert any("'Bearer '" in note for note in bearer["notes"])
    assert bearer["notes"][-1] == "the token alone, without what surrounds it, would be: accepted"
    assert late["reason"] == "invalid_exp"
    assert "must be an integer" not in late["detail"] and "looks like milliseconds" in late["detail"]


@contextmanager
def signed_in(service: Service) -> Iterator[Page]:
    """A console page signed in with the acme token, in Debian's headless chromium."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(service.url + "/")
            page.get_by_label("API token").fill(service.tokens["acme"])
            page.get_by_role("button", name="Sign in").click()
            expect(page).to_have_url(service.url + "/communities/acme")
            yield page
        finally:
            browser.close()


def test_the_console_keeps_the_token_and_shows_the_debugger(service: Service, tmp_path: Path) -> None:
    with signed_in(service) as page:
        _debug_in_console(page, tmp_path)


def _debug_in_console(page: Page, tmp_path: Path) -> None:
    token = hs256(SECRET, "k1", ttl=600, firstname="Ada")  # expires before the minimum validity
    check = page.locator("#token-check")
    check.get_by_label("Token (JWT)").fill(token + "\n")
    check.get_by_role("button", name="Check token").click()
    expect(check.locator(".verdict strong")).to_have_text("rejected: malformed_token")
    expect(check.get_by_label("Token (JWT)")).to_have_value(token + "\n")  # kept for the next try
    expect(check.locator(".notes")).to_contain_text("whitespace after it")
    expect(check.locator(".notes")).to_contain_text("would be: expiry_too_soon")
    expect(check.get_by_label("Payload")).to_contain_text('"firstname": "Ada"')
    expect(check.locator("table.times tr", has_text="exp")).to_contain_text("expires in 9 min")
    expect(check.locator(".preview")).to_contain_text("identity_group.firstname")
    check.get_by_label("Token (JWT)").fill(token)
    check.get_by_role("button", name="Check token").click()
    expect(check.locator(".verdict strong")).to_have_text("rejected: expiry_too_soon")
    expect(check.locator(".stored-detail")).to_contain_text("note: the token expires")
    folder = Path(os.environ.get("CONSOLE_SCREENSHOTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    check.screenshot(path=folder / "token-debugger.png")


def test_token_verify_reads_the_store_of_database_url(service: Service) -> None:
    """Like `report` and `config export`, `token verify` without --config or --database-url reads
    the store $DATABASE_URL names."""
    env = {**os.environ, "DATABASE_URL": service.database_url}
    done = subprocess.run(
        [IDENTITY_WORKER, "token", "verify", "--community", "acme", hs256(SECRET, "k1")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == "accepted", done.stderr
