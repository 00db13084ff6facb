"""One secured stack for the whole session: `deploy/local/stack up --secure` in a
folder of its own (never the shared stack's), stopped at the end.

    secure_stack: SecureStack   its three Kafka listeners as `Bootstrap`s and its TLS files
    secure_database: str        a fresh database on the TLS-only PostgreSQL (verify-full and a
                                client certificate), migrated with the CLI
    secure_store: Store         communities of the test's own in it, loaded with the CLI
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import stack
from tests.support.kafka import Bootstrap
from tests.support.private_stack import run_stack
from tests.support.secure import STACK_UP_TIMEOUT_S, SecureStack, profile
from tests.support.worker import Store, cli, own_store


@pytest.fixture(scope="session")
def secure_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureStack]:
    folder = tmp_path_factory.mktemp("secure-stack")
    started = run_stack("up", folder, STACK_UP_TIMEOUT_S, "--secure")
    try:
        if started.returncode != 0:
            pytest.fail(f"`stack up --secure` failed:\n{started.stderr[-3000:]}", pytrace=False)
        profiles = {name: profile(folder / f"env.{name}") for name in ("sasl_ssl", "ssl", "plain")}

        def listener(name: str) -> Bootstrap:
            env = {k: v for k, v in profiles[name].items() if k.startswith("KAFKA_")}
            return Bootstrap(env.pop("KAFKA_BOOTSTRAP_SERVERS"), env)

        yield SecureStack(
            folder,
            listener("sasl_ssl"),
            listener("ssl"),
            profiles["plain"]["KAFKA_BOOTSTRAP_SERVERS"],
            profiles["plain"]["DATABASE_URL"],
        )
    finally:
        run_stack("down", folder, 120, "--secure")


@pytest.fixture(scope="session")
def secure_database(secure_stack: SecureStack) -> Iterator[str]:
    """A fresh database on the TLS-only server, migrated with `db migrate` over verify-full TLS."""
    url = stack.create_database(secure_stack.database_url)
    cli("db", "migrate", env={**os.environ, "DATABASE_URL": url})
    yield url
    stack.drop_database(secure_stack.database_url, url)


@pytest.fixture
def secure_store(secure_database: str, tmp_path: Path) -> Store:
    """Communities of this test's own (a rotation removes a key), loaded with `config apply`."""
    return own_store(secure_database, "tls", tmp_path)
