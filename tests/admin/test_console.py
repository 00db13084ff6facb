"""A5: the console end to end in a real headless browser (tests/support/console.py): a
customer's administrator adds a key the console generates (its secret shown once, with a copy
button), sees each refused value's problem in plain words beside its field, tests a token,
removes keys through a confirmation page (and a key in use only with "Remove anyway", L3),
reads Health and the audit trail; a community token cannot open another community.

Screenshots go to $CONSOLE_SCREENSHOTS_DIR when set (`make console-screenshots` writes
docs/console/), else to the test's temporary folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.support.admin import SECRET_2, Service, add_health, hs256, mark_used, snapshot
from tests.support.console import sign_in
from worker.core.keys import HMAC_SECRET

pytestmark = pytest.mark.integration

#: A 24-character base64 text: the length is right, the characters are not.
BASE64_SECRET = "QUJDREVGR0hJSktMTU5PUFFS"


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

    # The console generates the secret: shown once beside the new key, with a copy button.
    keys = page.locator("#keys")
    keys.get_by_label("Key ID (kid)").fill("acme_2027")
    expect(keys.get_by_label("Generate an HMAC secret for me (HS256; shown once)")).to_be_checked()
    keys.get_by_role("button", name="Add key").click()
    expect(keys.get_by_role("status")).to_contain_text("Key acme_2027 added with a new secret")
    expect(page.locator("#keys-note")).to_be_focused()  # the note of what changed has the focus
    secret = keys.locator("#new-secret").inner_text().strip()
    assert len(secret) == 24 and all(c in "0123456789abcdef" for c in secret)
    keys.get_by_role("button", name="Copy").click()
    expect(keys.locator(".copied")).to_have_text("Copied.")
    assert page.evaluate("() => navigator.clipboard.readText()") == secret
    fingerprint = HMAC_SECRET.key("acme_2027", secret).fingerprint
    expect(keys.locator("tr", has_text="acme_2027")).to_contain_text(fingerprint)
    keys.screenshot(path=shots / "keys-generated.png")
    page.goto(service.url + "/communities/acme")
    assert secret not in page.content()  # shown once: never again
    keys.screenshot(path=shots / "keys.png")

    page.locator("#mappings").screenshot(path=shots / "mappings.png")
    page.locator("#fields").screenshot(path=shots / "fields.png")

    # Test a token signed with the generated secret.
    check = page.locator("#token-check")
    check.get_by_label("Token (JWT)").fill(hs256(secret, "acme_2027"))
    check.get_by_role("button", name="Check token").click()
    expect(page.locator("#token-check .verdict")).to_have_text("accepted")
    expect(page.locator("#token-check table.steps tr", has_text="V7")).to_contain_text("verifies")
    page.locator("#token-check").screenshot(path=shots / "token-check.png")

    # Remove the old key: a confirmation page first, then gone; the trail shows both changes.
    keys.get_by_role("link", name="Remove key k1").click()
    expect(page.get_by_role("heading", name="Remove key k1?")).to_be_visible()
    expect(page.locator("ul.facts")).to_contain_text("Last verified a token: never")
    expect(page.locator("#confirm-title")).to_be_focused()  # the question, not the button that removes
    page.screenshot(path=shots / "keys-remove-confirm.png")
    page.get_by_role("button", name="Remove key k1").click()
    expect(keys.get_by_role("status")).to_have_text("Key k1 removed.")
    expect(keys.locator("td.kid")).to_have_text(["acme_2027"])
    audit = page.locator("#audit")
    expect(audit.locator("tbody tr")).to_have_count(2)
    expect(audit.locator("tbody tr").nth(0)).to_contain_text("keys remove")
    expect(audit.locator("tbody tr").nth(0)).to_contain_text("token acme")
    expect(audit.locator("tbody tr").nth(1)).to_contain_text(f"+ key acme/acme_2027 (HS256 {fingerprint})")
    audit.screenshot(path=shots / "audit.png")
    page.screenshot(path=shots / "community.png", full_page=True)
    for hidden in (secret, service.tokens["acme"]):
        assert hidden not in service.log_text()
    with service.client("platform") as api:  # the secret is write-only everywhere else (A3)
        assert secret not in api.get("/api/v1/communities/acme/keys").text
        assert secret not in api.get("/api/v1/audit").text


def test_each_refusal_is_in_plain_words_beside_its_own_field(
    service: Service, page: Page, shots: Path
) -> None:
    """A bad kid under Key ID, a base64 secret under the secret, each saying what is wrong
    (no regex, no "got 24 characters"); the first refused field has the focus; nothing written."""
    sign_in(page, service, "acme")
    before = snapshot(service.database_url)
    keys = page.locator("#keys")
    keys.get_by_label("Key ID (kid)").fill("Acme-2027")
    keys.get_by_label("Paste an HMAC secret (HS256)").check()
    keys.get_by_label("HMAC secret", exact=True).fill(BASE64_SECRET)
    keys.get_by_role("button", name="Add key").click()
    kid_error, secret_error = page.locator("#keys-kid-error"), page.locator("#keys-hmac_secret-error")
    expect(kid_error).to_have_text(
        "Use only lower-case letters, digits and underscores (this one has upper-case letters and hyphens)."
    )
    expect(secret_error).to_contain_text("looks like a base64 or other text secret")
    expect(secret_error).to_contain_text("let the console generate one")
    for text in (kid_error.inner_text(), secret_error.inner_text()):
        assert "^[" not in text and "got 24" not in text and "kid must match" not in text
    expect(keys.get_by_label("Key ID (kid)")).to_have_attribute("aria-invalid", "true")
    expect(keys.get_by_label("HMAC secret", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(keys.get_by_label("HMAC secret", exact=True)).to_have_attribute(
        "aria-describedby", "keys-hmac_secret-rule keys-hmac_secret-error"
    )
    expect(page.locator("#keys-kid")).to_be_focused()
    expect(keys.get_by_label("Key ID (kid)")).to_have_value("Acme-2027")  # kept; the secret is not
    expect(keys.get_by_label("Paste an HMAC secret (HS256)")).to_be_checked()
    assert BASE64_SECRET not in page.content()
    assert snapshot(service.database_url) == before
    keys.screenshot(path=shots / "keys-refused.png")

    # A wrong length of hex, a private key: each its own sentence.
    keys.get_by_label("Key ID (kid)").fill("acme_2027")
    keys.get_by_label("HMAC secret", exact=True).fill("abc123")
    keys.get_by_role("button", name="Add key").click()
    expect(secret_error).to_have_text("Must be exactly 24 characters 0-9 and a-f; this one has 6.")
    keys.get_by_label("Paste an RSA public key (RS256)").check()
    keys.get_by_label("RSA public key", exact=True).fill(
        "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----"
    )
    keys.get_by_role("button", name="Add key").click()
    expect(page.locator("#keys-rsa_public_key-error")).to_have_text(
        "This is a private key: paste the public key only. It was not stored."
    )
    assert "MIIE" not in page.content()
    # A kid that is already there: under Key ID, with what to do.
    keys.get_by_label("Key ID (kid)").fill("k1")
    keys.get_by_label("Generate an HMAC secret for me (HS256; shown once)").check()
    keys.get_by_role("button", name="Add key").click()
    expect(kid_error).to_contain_text("This community already has a key k1. To rotate, add the new key")
    assert snapshot(service.database_url) == before


def test_a_mapping_to_an_undeclared_field_names_the_row_the_table_shows(service: Service, page: Page) -> None:
    sign_in(page, service, "acme")
    mappings = page.locator("#mappings")
    mappings.get_by_label("From", exact=True).fill("extra_values.plan")
    mappings.get_by_label("To", exact=True).fill("custom_fields.plan")
    mappings.get_by_role("button", name="Add mapping").click()
    # The table shows mapping 1; the refused one would have been mapping 2 (not "mappings[1].to").
    expect(page.locator("#mappings-to-error")).to_have_text(
        "There is no custom field plan (mapping 2): declare it under Custom fields first."
    )
    expect(page.locator("#mappings-to")).to_be_focused()
    expect(mappings.get_by_label("From", exact=True)).to_have_value("extra_values.plan")


def test_removing_a_key_in_use_shows_the_refusal_and_offers_a_forced_removal(
    service: Service, page: Page, shots: Path
) -> None:
    """L3 in the console: the confirmation page shows the key's use; the removal is refused
    there with the store's facts, nothing written; 'Remove key k2 anyway' removes it, audited."""
    with service.client("acme") as api:
        added = api.post("/api/v1/communities/acme/keys", json={"kid": "k2", "hmac_secret": SECRET_2})
        assert added.status_code == 201
    mark_used(service.database_url, "acme", "k2", 3)
    sign_in(page, service, "acme")
    keys = page.locator("#keys")
    expect(keys.locator("tr", has_text="k2").locator("td.uses_24h")).to_have_text("3")  # L2
    expect(keys.locator("tr", has_text="k2").locator("td.last_used_at")).to_have_text("1 min ago")
    expect(keys.locator("tr", has_text="k1").locator("td.last_used_at")).to_have_text("never")
    before = snapshot(service.database_url)
    keys.get_by_role("link", name="Remove key k2", exact=True).click()
    expect(page.locator("ul.facts")).to_contain_text("3 token(s) in the last 24 h")
    page.get_by_role("button", name="Remove key k2", exact=True).click()
    refusal = page.get_by_role("alert")
    expect(refusal).to_contain_text("Key acme/k2 last verified a token at ")
    expect(refusal).to_contain_text("3 token(s) in the last 24 h")
    expect(page.locator("#confirm-error")).to_be_focused()
    assert snapshot(service.database_url) == before
    page.screenshot(path=shots / "keys-remove-refused.png")
    page.get_by_role("button", name="Remove key k2 anyway").click()
    expect(page.locator("#keys").get_by_role("status")).to_have_text(
        "Key k2 removed (forced, although in use)."
    )
    expect(page.locator("#keys td.kid")).to_have_text(["k1"])
    expect(page.locator("#audit tbody tr").nth(0)).to_contain_text("keys remove --force")


def test_every_removal_asks_first_and_works_without_javascript(service: Service, page: Page) -> None:
    """An unused custom field, a mapping, a key: Remove opens a confirmation page (no script
    runs); Cancel changes nothing; the confirmed removal's note sits in its section."""
    context = page.context.browser.new_context(java_script_enabled=False)  # type: ignore[union-attr]
    nojs = context.new_page()
    try:
        with service.client("acme") as api:
            assert (
                api.post(
                    "/api/v1/communities/acme/custom-fields", json={"key": "plan", "label": "Plan"}
                ).status_code
                == 201
            )
        sign_in(nojs, service, "acme")
        before = snapshot(service.database_url)
        for section, link, heading in (
            ("#fields", "Remove custom field plan", "Remove custom field plan?"),
            (
                "#mappings",
                "Remove mapping 1: extra_values.customer_id to custom_fields.customer_id",
                "Remove mapping 1?",
            ),
        ):
            nojs.locator(section).get_by_role("link", name=link).click()
            expect(nojs.get_by_role("heading", name=heading)).to_be_visible()
            nojs.get_by_role("link", name="Cancel").click()
            assert snapshot(service.database_url) == before
        nojs.locator("#fields").get_by_role("link", name="Remove custom field plan").click()
        expect(nojs.locator("ul.facts")).to_contain_text("No mapping writes it")
        nojs.get_by_role("button", name="Remove custom field plan").click()
        expect(nojs.locator("#fields").get_by_role("status")).to_have_text("Custom field plan removed.")
        # The field a mapping writes: the confirmation page says which row; the refusal too.
        nojs.locator("#fields").get_by_role("link", name="Remove custom field customer_id").click()
        expect(nojs.locator("ul.facts")).to_contain_text(
            "Mapping 1 (extra_values.customer_id → custom_fields.customer_id)"
        )
        nojs.get_by_role("button", name="Remove custom field customer_id").click()
        expect(nojs.get_by_role("alert")).to_have_text(
            "Mapping 1 (extra_values.customer_id → custom_fields.customer_id) writes this field: "
            "remove that mapping first."
        )
        nojs.goto(service.url + "/communities/acme")
        nojs.locator("#mappings").get_by_role(
            "link", name="Remove mapping 1: extra_values.customer_id to custom_fields.customer_id"
        ).click()
        nojs.get_by_role("button", name="Remove mapping 1").click()
        expect(nojs.locator("#mappings").get_by_role("status")).to_have_text(
            "Mapping extra_values.customer_id → custom_fields.customer_id removed."
        )
        expect(nojs.locator("#mappings")).to_contain_text("No mappings.")
        # The last key of a require community: the page says so, and the refusal says what to do.
        nojs.locator("#keys").get_by_role("link", name="Remove key k1").click()
        expect(nojs.locator("ul.facts")).to_contain_text("only key")
        nojs.get_by_role("button", name="Remove key k1").click()
        expect(nojs.get_by_role("alert")).to_contain_text("This is the community's last key")
        expect(nojs.get_by_role("button", name="Remove key k1")).to_have_count(0)
    finally:
        context.close()


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


def test_handling_shows_and_takes_readable_durations(service: Service, page: Page) -> None:
    """V9's maximum validity and L3's retirement window, as PATCH …/communities/{id} sets them,
    shown as "1 h" and "1 d", typed as "2 h" or seconds; a refusal in the same words."""
    sign_in(page, service, "acme")
    handling = page.locator("#handling")
    expect(handling.get_by_label("Minimum validity")).to_have_value("1 h")
    expect(handling.get_by_label("Leeway")).to_have_value("10 s")
    expect(handling.get_by_label("Maximum validity")).to_have_value("")
    expect(handling.get_by_label("Key retirement window")).to_have_value("1 d")
    save_handling(page, {"Maximum validity": "60"})  # below min_validity_seconds
    expect(page.locator("#handling-max_validity_seconds-error")).to_have_text(
        "Must be at least the minimum validity (1 h), or every token would be refused."
    )
    expect(page.locator("#handling-max_validity_seconds")).to_be_focused()
    save_handling(page, {"Maximum validity": "soon"})
    expect(page.locator("#handling-max_validity_seconds-error")).to_contain_text("Not a duration.")
    save_handling(page, {"Maximum validity": "2 h", "Key retirement window": "3600"})
    expect(handling.get_by_role("status")).to_have_text("Handling saved.")
    expect(handling.get_by_label("Maximum validity")).to_have_value("2 h")
    expect(handling.get_by_label("Key retirement window")).to_have_value("1 h")
    with service.client("acme") as api:
        shown = api.get("/api/v1/communities/acme").json()
        assert (shown["max_validity_seconds"], shown["retirement_window_seconds"]) == (7200, 3600)
        save_handling(page, {"Maximum validity": ""})  # empty: no maximum
        expect(handling.get_by_role("status")).to_have_text("Handling saved.")
        assert api.get("/api/v1/communities/acme").json()["max_validity_seconds"] is None
    save_handling(page, {"Leeway": "2 h"})
    expect(page.locator("#handling-leeway_seconds-error")).to_have_text("At most 1 h.")


def test_custom_fields_and_mappings_in_the_console(service: Service, page: Page) -> None:
    sign_in(page, service, "acme")
    fields = page.locator("#fields")
    fields.get_by_label("Key", exact=True).fill("Plan")
    fields.get_by_label("Label", exact=True).fill("Plan")
    fields.get_by_label("Pattern (regex)", exact=True).fill("(gold")
    fields.get_by_role("button", name="Add custom field").click()
    expect(page.locator("#fields-key-error")).to_have_text(
        "Use 1 to 64 lower-case letters, digits and underscores (this one has upper-case letters)."
    )
    expect(page.locator("#fields-regex-error")).to_contain_text(
        "This pattern is not a valid regular expression"
    )
    fields.get_by_label("Key", exact=True).fill("plan")
    fields.get_by_label("Pattern (regex)", exact=True).fill("(gold|free)")
    fields.get_by_role("button", name="Add custom field").click()
    expect(fields.get_by_role("status")).to_have_text("Custom field plan added.")
    expect(fields.locator("tbody tr", has_text="plan")).to_contain_text("(gold|free)")
    mappings = page.locator("#mappings")
    mappings.get_by_label("From", exact=True).fill("extra_values.plan")
    mappings.get_by_label("To", exact=True).fill("custom_fields.plan")
    mappings.get_by_role("button", name="Add mapping").click()
    expect(mappings.locator("tbody tr")).to_have_count(2)
    expect(mappings.get_by_role("status")).to_have_text(
        "Mapping extra_values.plan → custom_fields.plan added."
    )


def test_a_community_token_cannot_open_another_communitys_pages(service: Service, page: Page) -> None:
    sign_in(page, service, "acme")
    for path in ("/communities/{}", "/communities/{}/keys/s1/remove", "/communities/{}/remove"):
        other = page.goto(service.url + path.format("shop"))
        assert other is not None and other.status == 404
        shop_text = page.locator("main").inner_text()
        missing = page.goto(service.url + path.format("nosuch"))
        assert missing is not None and missing.status == 404
        assert page.locator("main").inner_text().replace("nosuch", "shop") == shop_text
        assert "shop" in shop_text and "s1" not in page.content()


def test_a_bad_token_stays_on_the_sign_in_page(service: Service, page: Page) -> None:
    page.goto(service.url + "/")
    page.get_by_label("API token").fill(service.tokens["revoked"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("the token is unknown, revoked or expired")


def test_a_form_posted_without_the_console_s_csrf_value_or_from_another_site_is_refused(
    service: Service,
) -> None:
    """CSRF (A5): the session cookie alone cannot make a change, nor remove anything."""
    before = snapshot(service.database_url)
    with service.console("acme") as browser_like:
        page = browser_like.get("/communities/acme")
        assert page.status_code == 200
        csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
        form = {"kid": "evil", "material": "hmac", "hmac_secret": SECRET_2}
        forged = browser_like.post("/communities/acme/keys", data=form)
        wrong = browser_like.post("/communities/acme/keys", data={**form, "csrf": "0" * 64})
        foreign = browser_like.post(
            "/communities/acme/keys", data={**form, "csrf": csrf}, headers={"origin": "https://evil.example"}
        )
        removal = browser_like.post("/communities/acme/keys/k1/remove", data={})
        confirm_page = browser_like.get("/communities/acme/keys/k1/remove")  # a GET changes nothing
    assert [r.status_code for r in (forged, wrong, foreign, removal)] == [403, 403, 403, 403]
    assert confirm_page.status_code == 200
    assert snapshot(service.database_url) == before
