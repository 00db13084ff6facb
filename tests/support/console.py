"""The console in a real headless browser (DESIGN §10, A5): Debian's chromium driven by
Playwright for Python (never `playwright install`), and axe-core from npm (pinned by
tests/admin/package-lock.json) injected into a page to check it for keyboard and screen-reader
problems.

sign_in(page, service, who)       the sign-in form with `who`'s token
serious_violations(page) -> list  axe-core's serious and critical violations of the page
dangling_references(page) -> list aria-describedby / aria-labelledby ids that name no element
overflow(page) -> int             how many CSS pixels the page is wider than its viewport
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from playwright.sync_api import Page

from tests.support.admin import Service
from tests.support.node import node_packages

CHROMIUM: Final = "/usr/bin/chromium"
CHROMIUM_ARGS: Final = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ADMIN_TESTS: Final = Path(__file__).resolve().parents[1] / "admin"
AXE: Final = ADMIN_TESTS / "node_modules" / "axe-core" / "axe.min.js"


def sign_in(page: Page, service: Service, who: str) -> None:
    page.goto(service.url + "/")
    page.get_by_label("API token").fill(service.tokens[who])
    page.get_by_role("button", name="Sign in").click()


def serious_violations(page: Page, rules: list[str] | None = None) -> list[dict[str, Any]]:
    """axe-core's rules (all of them, or only `rules`) over the whole page; the violations of
    impact serious or critical, each with the elements it found."""
    node_packages(ADMIN_TESTS, "axe-core/axe.min.js")
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    options: dict[str, Any] = {"resultTypes": ["violations"]}
    if rules is not None:
        options["runOnly"] = {"type": "rule", "values": rules}
    found: list[dict[str, Any]] = page.evaluate(
        """async (options) => (await axe.run(document, options)).violations
             .map(v => ({id: v.id, impact: v.impact, help: v.help,
                         nodes: v.nodes.map(n => n.target.join(' '))}))""",
        options,
    )
    return [v for v in found if v["impact"] in ("serious", "critical")]


def dangling_references(page: Page) -> list[str]:
    found: list[str] = page.evaluate(
        """() => [...document.querySelectorAll('[aria-describedby], [aria-labelledby]')].flatMap(el =>
             ['aria-describedby', 'aria-labelledby'].flatMap(attr =>
               (el.getAttribute(attr) || '').split(/\\s+/).filter(id => id && !document.getElementById(id))
                 .map(id => `${el.tagName.toLowerCase()}#${el.id} ${attr}=${id}`)))"""
    )
    return found


def overflow(page: Page) -> int:
    width: int = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    return width
