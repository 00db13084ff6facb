"""`make admin` (issue 14, item 6): the example community loaded, a platform and a community
token printed with the URL, the service answering both tokens as their scopes say."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import httpx
import pytest

from worker.demo import free_port

pytestmark = pytest.mark.integration


def test_make_admin_prints_the_url_and_two_working_tokens(fresh_db: str) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "worker.devtools.quickstart", "--port", str(port)],
        env={**os.environ, "DATABASE_URL": fresh_db},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        deadline = time.monotonic() + 90
        while not any(line.startswith("  acme token:") for line in lines):
            assert time.monotonic() < deadline and process.poll() is None, "".join(lines)
            lines.append(process.stdout.readline())
        text = "".join(lines)
        assert f"console:         http://127.0.0.1:{port}/" in text
        platform = re.search(r"platform token:\s+(\S+)", text)
        acme = re.search(r"acme token:\s+(\S+)", text)
        assert platform and acme
        url = f"http://127.0.0.1:{port}/api/v1/communities"
        for _ in range(300):
            try:
                answer = httpx.get(url, headers={"Authorization": f"Bearer {platform[1]}"})
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert [c["id"] for c in answer.json()] == ["acme", "openshop"]
        mine = httpx.get(url, headers={"Authorization": f"Bearer {acme[1]}"}).json()
        assert [(c["id"], c["keys"], c["custom_fields"], c["mappings"]) for c in mine] == [("acme", 2, 1, 3)]
    finally:
        process.terminate()
        process.wait(30)
