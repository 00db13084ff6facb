"""Fixtures for the configuration store tests (DESIGN §5, §7): real PostgreSQL, never mocked.

Tests run on databases of their own on the shared stack's server, dropped afterwards:
`store_url` is a migrated database per test module, emptied before each test (tests never
see each other's rows); `fresh_db` is an empty database per test. Admin commands run
in-process through `worker.cli.main.main` (`cli`) or, to check the real entry point, as a
subprocess (`cli_subprocess`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.store import Cli, Result, migrated_database, run_sql
from worker.cli.main import main

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def module_db(admin_database_url: str) -> Iterator[str]:
    """A migrated database shared by one test module (creating one costs ~0.3 s)."""
    with migrated_database(admin_database_url) as url:
        yield url


@pytest.fixture
def store_url(module_db: str) -> str:
    """The module's migrated database, emptied for this test: no rows of another test."""
    run_sql(module_db, "TRUNCATE communities CASCADE")
    return module_db


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], store_url: str, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Run `identity-worker ARGS...` in-process against `store_url` (via DATABASE_URL)."""
    monkeypatch.setenv("DATABASE_URL", store_url)

    def run(*args: str, stdin: str | None = None) -> Result:
        capsys.readouterr()
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", _Stdin(stdin))
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        else:
            code = 0
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


class _Stdin:
    """A text stdin for in-process commands (`-` arguments)."""

    def __init__(self, text: str) -> None:
        import io

        self._io = io.StringIO(text)

    def read(self, *args: Any) -> str:
        return self._io.read(*args)

    def readline(self, *args: Any) -> str:
        return self._io.readline(*args)

    def isatty(self) -> bool:
        return False
