"""Session fixtures giving tests REAL services (DESIGN section 8): a Kafka broker and a
PostgreSQL server, from KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL when both are set, else from
`deploy/local/stack up` (idempotent, shared by every pytest session; `make stack-down`
stops it). Nothing is mocked and nothing is skipped: an unreachable service fails the tests
that need it, with the reason.

    kafka_bootstrap: str          "127.0.0.1:PORT"
    admin_database_url: str       the server's DATABASE_URL (may create databases)
    database_url: str             a fresh database for this pytest session, dropped at the end
    fresh_db: str                 an empty database (no schema) for one test, dropped after it
    unique_topic: (prefix) -> str a topic name no other test or session uses
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from hypothesis import settings

from tests.support import stack

# Hypothesis's 200 ms per-example deadline measures the machine, not the code: under load (a
# shared CI runner, helpers running suites side by side) a slow example is reported as a
# failure that "did not reproduce". Correctness properties keep every assertion; only the
# wall-clock guard is off.
settings.register_profile("identity-worker", deadline=None)
settings.load_profile("identity-worker")


@pytest.fixture(scope="session")
def stack_services() -> stack.Services:
    try:
        return stack.services()
    except stack.ServiceUnavailable as exc:
        problem = str(exc)
    pytest.fail(problem, pytrace=False)


@pytest.fixture(scope="session")
def kafka_bootstrap(stack_services: stack.Services) -> str:
    return stack_services.kafka_bootstrap


@pytest.fixture(scope="session")
def admin_database_url(stack_services: stack.Services) -> str:
    return stack_services.admin_database_url


@pytest.fixture(scope="session")
def database_url(admin_database_url: str) -> Iterator[str]:
    try:
        url = stack.create_database(admin_database_url)
    except stack.ServiceUnavailable as exc:
        problem = str(exc)
    else:
        yield url
        stack.drop_database(admin_database_url, url)
        return
    pytest.fail(problem, pytrace=False)


@pytest.fixture(scope="session")
def unique_topic() -> Callable[[str], str]:
    return stack.unique_topic


@pytest.fixture
def fresh_db(admin_database_url: str) -> Iterator[str]:
    """An empty database of its own (no schema)."""
    url = stack.create_database(admin_database_url)
    yield url
    stack.drop_database(admin_database_url, url)
