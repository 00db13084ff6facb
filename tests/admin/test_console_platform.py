"""The platform view of the console (DESIGN §10, A2, A5; L5): every community with its last
hour of health, a search by id prefix, a community created with its first key (S1, the secret
generated and shown once), refusals in plain words beside their field, and a community removed
behind a confirmation page. A community token never sees it."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.support.admin import Service, add_health, snapshot
from tests.support.console import sign_in
from worker.core.keys import HMAC_SECRET

pytestmark = pytest.mark.integration


def test_the_platform_view_searches_by_prefix_and_shows_each_communitys_health(
    service: Service, page: Page, shots: Path
) -> None:
    add_health(service.database_url, "acme", "expiry_too_soon", 4, minutes_ago=5)
    add_health(service.database_url, "acme", "unknown_kid", 1, minutes_ago=3)
    sign_in(page, service, "platform")
    listing = page.locator("#communities")
    expect(listing.locator("tbody tr")).to_have_count(2)
    expect(listing.locator("tr", has_text="acme").locator("td.health")).to_contain_text(
        "5 rejected (mostly expiry_too_soon), 0 accepted"
    )
    expect(listing.locator("tr", has_text="shop").locator("td.health")).to_have_text("no events")
    page.screenshot(path=shots / "platform.png", full_page=True)
    listing.get_by_label("Community id starts with").fill("sh")
    listing.get_by_role("button", name="Search").click()
    expect(listing.locator("tbody tr")).to_have_count(1)
    expect(listing.get_by_role("link", name="shop")).to_be_visible()
    expect(listing.locator("#search-count")).to_have_text("1 community starting with sh.")
    listing.get_by_label("Community id starts with").fill("zz")
    listing.get_by_role("button", name="Search").click()
    expect(listing).to_contain_text("No community id starts with zz.")
    listing.get_by_role("link", name="Show all").click()
    page.get_by_role("link", name="shop").click()
    expect(page.get_by_role("heading", name="Community shop")).to_be_visible()


def test_the_platform_creates_a_community_with_a_generated_key_and_removes_one(
    service: Service, page: Page, shots: Path
) -> None:
    sign_in(page, service, "platform")
    create = page.locator("#create")
    before = snapshot(service.database_url)
    # Refused: a bad id beside the id, and S1's rule in plain words (require needs its key).
    create.get_by_label("Community id").fill("new shop")
    create.get_by_role("button", name="Create community").click()
    expect(page.locator("#create-id-error")).to_have_text(
        "Use 1 to 64 letters, digits, underscores and hyphens."
    )
    create.get_by_label("Community id").fill("newshop")
    create.get_by_role("button", name="Create community").click()
    expect(page.locator("#create-kid-error")).to_contain_text("Give the key an ID")
    assert snapshot(service.database_url) == before
    page.locator("#create").screenshot(path=shots / "platform-create-refused.png")

    create.get_by_label("Key ID (kid)").fill("newshop_1")
    create.get_by_role("button", name="Create community").click()
    expect(page.get_by_role("heading", name="Community newshop")).to_be_visible()
    keys = page.locator("#keys")
    expect(keys.get_by_role("status")).to_contain_text("Community newshop created with key newshop_1")
    secret = keys.locator("#new-secret").inner_text().strip()
    fingerprint = HMAC_SECRET.key("newshop_1", secret).fingerprint
    expect(keys.locator("tr", has_text="newshop_1")).to_contain_text(fingerprint)
    assert secret not in service.log_text()

    # In reject mode a key is optional; then the community goes, behind its confirmation page.
    page.goto(service.url + "/")
    create.get_by_label("Community id").fill("quiet")
    create.get_by_label("Signed identities").select_option("reject")
    create.get_by_role("button", name="Create community").click()
    expect(page.get_by_role("status")).to_have_text("Community quiet created.")
    page.get_by_role("link", name="Remove community").click()
    expect(page.get_by_role("heading", name="Remove community quiet?")).to_be_visible()
    expect(page.locator("ul.facts")).to_contain_text("0 key(s), 0 custom field(s) and 0 mapping(s)")
    page.get_by_role("button", name="Remove community quiet").click()
    expect(page.locator("#communities").get_by_role("status")).to_have_text("Community quiet removed.")
    expect(page.locator("#communities tbody tr")).to_have_count(3)


def test_a_community_token_never_sees_the_platform_view(service: Service, page: Page) -> None:
    sign_in(page, service, "acme")
    expect(page).to_have_url(service.url + "/communities/acme")
    expect(page.get_by_role("link", name="Remove community")).to_have_count(0)
    refused = page.goto(service.url + "/communities/acme/remove")
    assert refused is not None and refused.status == 403


def test_a_long_section_of_a_community_has_pages_of_its_own(service: Service, page: Page) -> None:
    """T5: a community's sections show 500 rows at a time, with a link to the next rows and
    back to the first; a cursor that is not one of ours is refused in plain words (422)."""
    from tests.support.admin import run_sql

    run_sql(
        service.database_url,
        "INSERT INTO custom_fields (community_id, key, label) "
        "SELECT 'shop', 'f' || lpad(n::text, 4, '0'), 'Field ' || n FROM generate_series(1, 501) n",
    )
    sign_in(page, service, "platform")
    page.goto(f"{service.url}/communities/shop")
    fields = page.locator("#fields")
    expect(fields.locator("tbody tr")).to_have_count(500)
    fields.get_by_role("link", name="More custom fields →").click()
    expect(fields.locator("tbody tr")).to_have_count(1)
    expect(fields.locator("tbody tr")).to_contain_text("f0501")
    expect(fields.get_by_role("link", name="More custom fields →")).to_have_count(0)
    fields.get_by_role("link", name="First custom fields").click()
    expect(fields.locator("tbody tr")).to_have_count(500)
    expect(page.locator("#keys").get_by_role("link", name="More keys →")).to_have_count(0)
    refused = page.goto(f"{service.url}/communities/shop?keys_after=not-a-cursor")
    assert refused is not None and refused.status == 422
