"""Fixtures of the configuration service tests (issue 14): a real `admin serve` on a real
PostgreSQL database, one per test module, reseeded before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.admin import Service, seed, start_service
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
