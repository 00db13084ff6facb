"""Fixtures of the Kafka worker tests (issue 5): the real broker and a migrated store.

Every test uses its own topics and consumer group (the stack is shared by concurrent
sessions) and its own community ids in the session's fresh database.
"""

from __future__ import annotations

import pytest

from tests.support.java_peer import JavaPeer
from tests.support.worker import Store, own_store


@pytest.fixture(scope="session")
def store(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """The session's database, migrated, with two communities of this module's own."""
    return own_store(database_url, "k5", tmp_path_factory.mktemp("k5"))


@pytest.fixture(scope="session")
def java_peer(tmp_path_factory: pytest.TempPathFactory) -> JavaPeer:
    """The Kafka Java client (TxnPeer.java), compiled once for the session."""
    return JavaPeer.compile(tmp_path_factory.mktemp("java"))
