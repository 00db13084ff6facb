"""The service and a PostgreSQL outage: 503 with one safe line (never a verdict, never a
stack trace, never the URL's password), and it serves again once the server is back.

Runs on a private PostgreSQL server (tests/support/private_stack.py): the shared one is never stopped.
"""

from __future__ import annotations

import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.support.admin import start_service
from tests.support.private_stack import private_postgres
from tests.support.store import run_async
from worker.store import api_tokens
from worker.store.migrate import migrate

pytestmark = pytest.mark.integration


def test_an_outage_is_a_503_and_the_service_recovers(tmp_path: Path) -> None:
    with private_postgres() as server:

        async def prepare() -> str:
            conn = await asyncpg.connect(server.dsn)
            try:
                await migrate(conn)
                async with conn.transaction():
                    token, _ = await api_tokens.create(conn, "ops", None, actor="test")
                return token
            finally:
                await conn.close()

        token = run_async(prepare)
        service = start_service(server.dsn, tmp_path / "serve.log")
        headers = {"Authorization": f"Bearer {token}"}
        try:
            service.tokens["ops"] = token
            with (
                httpx.Client(base_url=service.url, headers=headers) as api,
                service.console("ops") as browser,
            ):
                assert api.get("/api/v1/communities").status_code == 200
                server.stop()
                down = api.get("/api/v1/communities")
                console = browser.get("/")
                server.start()
                deadline = time.monotonic() + 30
                while (back := api.get("/api/v1/communities")).status_code != 200:
                    assert back.status_code == 503 and time.monotonic() < deadline, back.text
                    time.sleep(0.2)
        finally:
            service.stop()
    assert down.status_code == 503
    assert down.json()["error"].startswith("cannot reach PostgreSQL"), down.text
    assert console.status_code == 503 and "cannot reach PostgreSQL" in console.text
    assert "Traceback" not in service.log_text()
