"""Keyboard and screen-reader checks of every console page (DESIGN §10, A5): axe-core
(tests/support/console.py) finds no serious or critical violation (every rule in light mode,
colour contrast in dark mode); no
aria-describedby/labelledby names a missing element; nothing is wider than a 360 px screen;
the skip link is the first stop of the keyboard and leads to the content."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.admin import Service, add_health, hs256, mark_used
from tests.support.console import dangling_references, overflow, serious_violations, sign_in

pytestmark = pytest.mark.integration

Step = Callable[[Page, Service], None]


def _open(path: str) -> Step:
    def step(page: Page, service: Service) -> None:
        page.goto(service.url + path)

    return step


def _refused_signin(page: Page, service: Service) -> None:
    page.goto(service.url + "/")
    page.get_by_label("API token").fill("nonsense")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_be_visible()


def _refused_key(page: Page, service: Service) -> None:
    page.goto(service.url + "/communities/acme")
    keys = page.locator("#keys")
    keys.get_by_label("Key ID (kid)").fill("Bad-Kid")
    keys.get_by_label("Paste an HMAC secret (HS256)").check()
    keys.get_by_label("HMAC secret", exact=True).fill("xyz")
    keys.get_by_role("button", name="Add key").click()
    expect(page.locator("#keys-kid-error")).to_be_visible()


def _generated_key(page: Page, service: Service) -> None:
    page.goto(service.url + "/communities/acme")
    page.locator("#keys").get_by_label("Key ID (kid)").fill("fresh")
    page.locator("#keys").get_by_role("button", name="Add key").click()
    expect(page.locator("#new-secret")).to_be_visible()


def _checked_token(page: Page, service: Service) -> None:
    page.goto(service.url + "/communities/acme")
    page.get_by_label("Token (JWT)").fill(hs256("0" * 24, "k1"))
    page.get_by_role("button", name="Check token").click()
    expect(page.locator("#token-check .verdict")).to_be_visible()


def _refused_handling(page: Page, service: Service) -> None:
    page.goto(service.url + "/communities/acme")
    page.locator("#handling").get_by_label("Leeway").fill("soon")
    page.locator("#handling").get_by_role("button", name="Save handling").click()
    expect(page.locator("#handling-leeway_seconds-error")).to_be_visible()


def _refused_removal(page: Page, service: Service) -> None:
    mark_used(service.database_url, "acme", "k1", 2)  # in use: refused, "Remove anyway" offered (L3)
    page.goto(service.url + "/communities/acme/keys/k1/remove")
    page.get_by_role("button", name="Remove key k1").click()
    expect(page.get_by_role("alert")).to_be_visible()


def _refused_creation(page: Page, service: Service) -> None:
    page.goto(service.url + "/")
    page.locator("#create").get_by_label("Community id").fill("bad id")
    page.locator("#create").get_by_role("button", name="Create community").click()
    expect(page.locator("#create-id-error")).to_be_visible()


#: Every page of the console, and every state a form can leave it in, per who signs in.
PAGES: dict[str, tuple[str | None, Step]] = {
    "sign-in": (None, _open("/")),
    "sign-in refused": (None, _refused_signin),
    "community": ("acme", _open("/communities/acme")),
    "key refused": ("acme", _refused_key),
    "key generated": ("acme", _generated_key),
    "token checked": ("acme", _checked_token),
    "handling refused": ("acme", _refused_handling),
    "confirm key": ("acme", _open("/communities/acme/keys/k1/remove")),
    "confirm key refused": ("acme", _refused_removal),
    "confirm field": ("acme", _open("/communities/acme/fields/customer_id/remove")),
    "confirm mapping": (
        "acme",
        _open("/communities/acme/mappings/remove?from=extra_values.customer_id&to=custom_fields.customer_id"),
    ),
    "not found": ("acme", _open("/communities/shop")),
    "platform": ("platform", _open("/")),
    "platform search": ("platform", _open("/?prefix=zz")),
    "platform create refused": ("platform", _refused_creation),
    "confirm community": ("platform", _open("/communities/shop/remove")),
}


@pytest.fixture
def themed(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Callable[..., Page]]:
    contexts = []

    def make(scheme: Literal["light", "dark"], width: int = 1100) -> Page:
        # bypass_csp: axe-core is injected as a script the console's own policy (A9) refuses.
        context = browser.new_context(
            viewport={"width": width, "height": 800}, color_scheme=scheme, bypass_csp=True
        )
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_violation_on_any_console_page(
    service: Service, themed: Callable[..., Page], scheme: Literal["light", "dark"]
) -> None:
    add_health(service.database_url, "acme", "expiry_too_soon", 2, minutes_ago=5)
    found = {}
    for name, (who, step) in PAGES.items():
        page = themed(scheme)
        if who is not None:
            sign_in(page, service, who)
        step(page, service)
        # Dark mode changes colours only: its run is the contrast rule (the light run has all).
        violations = serious_violations(page, ["color-contrast"] if scheme == "dark" else None)
        dangling = dangling_references(page)
        if violations or dangling:
            found[name] = {"axe": violations, "dangling": dangling}
        page.context.close()
    assert not found, found


def test_every_console_page_fits_a_360_px_screen_in_dark_mode_too(
    service: Service, themed: Callable[..., Page], shots: Path
) -> None:
    wide = {}
    for name, (who, step) in PAGES.items():
        page = themed("dark", 360)
        if who is not None:
            sign_in(page, service, who)
        step(page, service)
        page.wait_for_load_state("load")  # the stylesheet too (no-store: fetched again each page)
        if overflow(page) > 0:
            wide[name] = overflow(page)
        if name in ("community", "platform"):
            page.screenshot(path=shots / f"{name}-360-dark.png", full_page=True)
        background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(16, 21, 30)", (name, background)  # dark mode's own colours
        page.context.close()
    assert not wide, wide


def test_the_skip_link_comes_first_and_leads_to_the_content(service: Service, page: Page) -> None:
    sign_in(page, service, "acme")
    expect(page.get_by_role("heading", name="Community acme")).to_be_visible()  # the new page, loaded
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_visible()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Handling")).to_be_focused()  # past the header, into the page
