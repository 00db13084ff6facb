"""Fixtures of the configuration service tests: a real `admin serve` on a real
PostgreSQL database, one per test module, reseeded before each test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.support.admin import Service, seed, start_service
from tests.support.console import CHROMIUM, CHROMIUM_ARGS
from tests.support.store import migrated_database

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def admin_db(admin_database_url: str) -> Iterator[str]:
    with migrated_database(admin_database_url) as url:
        yield url


@pytest.fixture(scope="module")
def running(admin_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = start_service(admin_db, tmp_path_factory.mktemp("admin") / "serve.log")
    yield service
    service.stop()


@pytest.fixture
def service(running: Service) -> Service:
    """The module's service, its database back at the seed state (see harness.SEED)."""
    seed(running)
    return running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless chromium per module (the console's tests, A5)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: $CONSOLE_SCREENSHOTS_DIR (`make console-screenshots`: docs/console)."""
    folder = Path(os.environ.get("CONSOLE_SCREENSHOTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
