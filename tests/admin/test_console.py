"""A5: the console end to end in a real headless browser (Debian's chromium driven by
Playwright for Python; never `playwright install`): sign in, add an HS256 key and see it
listed by fingerprint, see a refused change's API message beside its field, test a token,
remove the key, read the audit trail; a community token cannot open another community.

Screenshots of each section go to $CONSOLE_SCREENSHOTS_DIR when set (`make console-screenshots`
writes docs/console/), else to the test's temporary folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.admin import SECRET_2, Service, add_health, hs256, mark_used, snapshot
from worker.core.keys import HMAC_SECRET

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("CONSOLE_SCREENSHOTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sign_in(page: Page, service: Service, who: str) -> None:
    page.goto(service.url + "/")
    page.get_by_label("API token").fill(service.tokens[who])
    page.get_by_role("button", name="Sign in").click()


def test_a_community_administrator_rotates_a_key_in_the_console(
    service: Service, page: Page, shots: Path
) -> None:
    page.goto(service.url + "/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.screenshot(path=shots / "signin.png")
    sign_in(page, service, "acme")
    expect(page).to_have_url(service.url + "/communities/acme")
    expect(page.get_by_role("heading", name="Community acme")).to_be_visible()
    page.locator("#handling").screenshot(path=shots / "handling.png")

    # Add an HS256 key: listed by its fingerprint, the secret nowhere on the page.
    keys = page.locator("#keys")
    keys.get_by_label("Key ID (kid)").fill("acme_2027")
    keys.get_by_label("HMAC secret (HS256)").fill(SECRET_2)
    keys.get_by_role("button", name="Add key").click()
    expect(page.get_by_role("status")).to_have_text("key acme_2027 added")
    fingerprint = HMAC_SECRET.key("acme_2027", SECRET_2).fingerprint
    expect(keys.locator("tr", has_text="acme_2027")).to_contain_text(fingerprint)
    assert SECRET_2 not in page.content()
    keys.screenshot(path=shots / "keys.png")

    # A refused change: the API's own message, beside the field it is about; nothing written.
    before = snapshot(service.database_url)
    keys.get_by_label("Key ID (kid)").fill("acme_bad")
    keys.get_by_label("HMAC secret (HS256)").fill("not-hex-and-too-short")
    keys.get_by_role("button", name="Add key").click()
    with service.client("acme") as api:
        refused = api.post(
            "/api/v1/communities/acme/keys", json={"kid": "acme_bad", "hmac_secret": "not-hex-and-too-short"}
        )
    assert refused.status_code == 422
    expect(page.locator("#keys-hmac_secret-error")).to_have_text(refused.json()["error"])
    expect(keys.get_by_label("HMAC secret (HS256)")).to_have_attribute("aria-invalid", "true")
    expect(keys.get_by_label("Key ID (kid)")).to_have_value("acme_bad")  # kept; the secret is not
    assert "not-hex-and-too-short" not in page.content()
    assert snapshot(service.database_url) == before
    keys.screenshot(path=shots / "keys-refused.png")

    page.locator("#mappings").screenshot(path=shots / "mappings.png")
    page.locator("#fields").screenshot(path=shots / "fields.png")

    # Test a token signed with the new key.
    check = page.locator("#token-check")
    check.get_by_label("Token (JWT)").fill(hs256(SECRET_2, "acme_2027"))
    check.get_by_role("button", name="Check token").click()
    expect(page.locator("#token-check .verdict")).to_have_text("accepted")
    expect(page.locator("#token-check table.steps tr", has_text="V7")).to_contain_text("verifies")
    page.locator("#token-check").screenshot(path=shots / "token-check.png")

    # Remove the old key: gone from the list; then the trail shows both changes by this token.
    keys.get_by_role("button", name="Remove key k1").click()
    expect(page.get_by_role("status")).to_have_text("key k1 removed")
    expect(keys.locator("td.kid")).to_have_text(["acme_2027"])
    audit = page.locator("#audit")
    expect(audit.locator("tbody tr")).to_have_count(2)
    expect(audit.locator("tbody tr").nth(0)).to_contain_text("keys remove")
    expect(audit.locator("tbody tr").nth(0)).to_contain_text("token acme")
    expect(audit.locator("tbody tr").nth(1)).to_contain_text(f"+ key acme/acme_2027 (HS256 {fingerprint})")
    audit.screenshot(path=shots / "audit.png")
    page.screenshot(path=shots / "community.png", full_page=True)
    for secret in (SECRET_2, "not-hex-and-too-short", service.tokens["acme"]):
        assert secret not in service.log_text()


def test_removing_a_key_in_use_shows_the_refusal_and_offers_a_forced_removal(
    service: Service, page: Page, shots: Path
) -> None:
    """L3 in the console: the API's 409 line beside the key, nothing written; 'Remove anyway'
    (a CSRF form like the others) removes it and the trail says it was forced."""
    with service.client("acme") as api:
        added = api.post("/api/v1/communities/acme/keys", json={"kid": "k2", "hmac_secret": SECRET_2})
        assert added.status_code == 201
    mark_used(service.database_url, "acme", "k2", 3)
    sign_in(page, service, "acme")
    keys = page.locator("#keys")
    expect(keys.locator("tr", has_text="k2").locator("td.uses_24h")).to_have_text("3")  # L2
    expect(keys.locator("tr", has_text="k2").locator("td.last_used_at")).to_contain_text(" UTC")
    expect(keys.locator("tr", has_text="k1").locator("td.last_used_at")).to_have_text("–")
    before = snapshot(service.database_url)
    keys.get_by_role("button", name="Remove key k2", exact=True).click()
    refusal = keys.locator("#keys-remove-error")
    expect(refusal).to_contain_text("key acme/k2 last verified a token at ")
    expect(refusal).to_contain_text("3 token(s) in the last 24 h")
    expect(keys.locator("td.kid")).to_have_text(["k1", "k2"])
    assert snapshot(service.database_url) == before
    keys.screenshot(path=shots / "keys-remove-refused.png")
    keys.get_by_role("button", name="Remove key k2 anyway").click()
    expect(page.get_by_role("status")).to_have_text("key k2 removed (forced)")
    expect(keys.locator("td.kid")).to_have_text(["k1"])
    expect(page.locator("#audit tbody tr").nth(0)).to_contain_text("keys remove --force")


def test_the_health_section_shows_the_last_hour(service: Service, page: Page, shots: Path) -> None:
    """L5: the API's GET …/health rows for the last hour, in the console."""
    add_health(service.database_url, "acme", "expiry_too_soon", 4, minutes_ago=5)
    add_health(service.database_url, "acme", "unknown_kid", 2, minutes_ago=180)
    sign_in(page, service, "acme")
    health = page.locator("#health")
    expect(health.locator("td.reason")).to_have_text(["expiry_too_soon"])
    expect(health.locator("td.events")).to_have_text(["4"])
    expect(health.locator("td.detail")).to_have_text(["detail of expiry_too_soon"])
    health.screenshot(path=shots / "health.png")


def save_handling(page: Page, settings: dict[str, str]) -> None:
    """Fill the Handling form's fields by label, then save it."""
    handling = page.locator("#handling")
    for label, value in settings.items():
        handling.get_by_label(label).fill(value)
    handling.get_by_role("button", name="Save handling").click()


def test_handling_sets_maximum_validity_and_retirement_window(service: Service, page: Page) -> None:
    """V9's maximum validity and L3's retirement window, as PATCH …/communities/{id} sets them."""
    sign_in(page, service, "acme")
    handling = page.locator("#handling")
    expect(handling.get_by_label("Maximum validity (seconds)")).to_have_value("")
    expect(handling.get_by_label("Key retirement window (seconds)")).to_have_value("86400")
    save_handling(page, {"Maximum validity (seconds)": "60"})  # below min_validity_seconds
    expect(handling.get_by_role("alert")).to_contain_text(
        "max_validity_seconds (60) must be at least min_validity_seconds (3600)"
    )
    save_handling(page, {"Maximum validity (seconds)": "7200", "Key retirement window (seconds)": "3600"})
    expect(page.get_by_role("status")).to_have_text("handling saved")
    expect(handling.get_by_label("Maximum validity (seconds)")).to_have_value("7200")
    with service.client("acme") as api:
        shown = api.get("/api/v1/communities/acme").json()
        assert (shown["max_validity_seconds"], shown["retirement_window_seconds"]) == (7200, 3600)
        save_handling(page, {"Maximum validity (seconds)": ""})  # empty: no maximum
        expect(page.get_by_role("status")).to_have_text("handling saved")
        assert api.get("/api/v1/communities/acme").json()["max_validity_seconds"] is None
        patched = api.patch("/api/v1/communities/acme", json={"retirement_window_seconds": 0})
        assert patched.json()["retirement_window_seconds"] == 0, patched.text
    page.reload()
    expect(handling.get_by_label("Key retirement window (seconds)")).to_have_value("0")


def test_handling_and_custom_fields_in_the_console(service: Service, page: Page) -> None:
    sign_in(page, service, "acme")
    handling = page.locator("#handling")
    save_handling(page, {"Leeway (seconds)": "99999"})
    expect(page.locator("#handling-leeway_seconds-error")).to_contain_text(
        "leeway_seconds: Input should be less than or equal to 3600"
    )
    handling.get_by_label("Signed identities").select_option("reject")
    save_handling(page, {"Leeway (seconds)": "30"})
    expect(page.get_by_role("status")).to_have_text("handling saved")
    expect(handling.get_by_label("Leeway (seconds)")).to_have_value("30")

    fields = page.locator("#fields")
    fields.get_by_label("Key", exact=True).fill("plan")
    fields.get_by_label("Label", exact=True).fill("Plan")
    fields.get_by_label("Regex", exact=True).fill("(gold")
    fields.get_by_role("button", name="Add custom field").click()
    expect(page.locator("#fields-regex-error")).to_contain_text("regex is not valid RE2 syntax")
    fields.get_by_label("Regex", exact=True).fill("(gold|free)")
    fields.get_by_role("button", name="Add custom field").click()
    expect(fields.locator("tbody tr", has_text="plan")).to_contain_text("(gold|free)")

    mappings = page.locator("#mappings")
    mappings.get_by_label("From", exact=True).fill("extra_values.plan")
    mappings.get_by_label("To", exact=True).fill("custom_fields.plan")
    mappings.get_by_role("button", name="Add mapping").click()
    expect(mappings.locator("tbody tr")).to_have_count(2)
    fields.get_by_role("button", name="Remove custom field plan").click()
    expect(page.locator("#fields [role=alert]")).to_contain_text("remove that mapping first")
    mappings.get_by_role("button", name="Remove mapping extra_values.plan to custom_fields.plan").click()
    expect(mappings.locator("tbody tr")).to_have_count(1)


def test_a_community_token_cannot_open_another_communitys_pages(service: Service, page: Page) -> None:
    sign_in(page, service, "acme")
    other = page.goto(service.url + "/communities/shop")
    assert other is not None and other.status == 404
    shop_text = page.locator("main").inner_text()
    missing = page.goto(service.url + "/communities/nosuch")
    assert missing is not None and missing.status == 404
    assert page.locator("main").inner_text().replace("nosuch", "shop") == shop_text
    assert "shop" in shop_text and "s1" not in page.content()


def test_the_platform_token_lists_every_community(service: Service, page: Page) -> None:
    sign_in(page, service, "platform")
    expect(page.get_by_role("link", name="acme")).to_be_visible()
    page.get_by_role("link", name="shop").click()
    expect(page.get_by_role("heading", name="Community shop")).to_be_visible()


def test_a_bad_token_stays_on_the_sign_in_page(service: Service, page: Page) -> None:
    page.goto(service.url + "/")
    page.get_by_label("API token").fill(service.tokens["revoked"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("the token is unknown, revoked or expired")


def test_a_form_posted_without_the_console_s_csrf_value_or_from_another_site_is_refused(
    service: Service,
) -> None:
    """CSRF (A5): the session cookie alone cannot make a change."""
    before = snapshot(service.database_url)
    with service.console("acme") as browser_like:
        page = browser_like.get("/communities/acme")
        assert page.status_code == 200
        csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
        form = {"kid": "evil", "hmac_secret": SECRET_2}
        forged = browser_like.post("/communities/acme/keys", data=form)
        wrong = browser_like.post("/communities/acme/keys", data={**form, "csrf": "0" * 64})
        foreign = browser_like.post(
            "/communities/acme/keys", data={**form, "csrf": csrf}, headers={"origin": "https://evil.example"}
        )
    assert [r.status_code for r in (forged, wrong, foreign)] == [403, 403, 403]
    assert snapshot(service.database_url) == before
