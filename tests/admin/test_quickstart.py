"""`make admin`: the example community loaded, a platform and
a community token printed with the URL, the service answering both tokens as their scopes say;
a worker running behind it, the example secret and a sample token printed, and the printed
`make send-events` filling the keys' usage (L2) and Health (L5)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support.ports import free_port
from worker.devtools.examples import HMAC_SECRET

pytestmark = pytest.mark.integration


def _until(check: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        try:
            found = check()
        except httpx.TransportError:
            found = None
        if found:
            return found
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_make_admin_prints_the_url_tokens_secret_sample_and_runs_a_worker(
    fresh_db: str, kafka_bootstrap: str, tmp_path: Any
) -> None:
    port = free_port()
    suffix = f"qs{time.time_ns()}"
    env = {
        **os.environ,
        "DATABASE_URL": fresh_db,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "IDENTITY_WORKER_GROUP_ID": suffix,
        "IDENTITY_WORKER_USAGE_FLUSH_SECONDS": "0.5",
        **{
            f"IDENTITY_WORKER_{t.upper()}_TOPIC": f"{suffix}.{t}"
            for t in ("input", "enriched", "rejected", "dlq")
        },
    }
    command = [sys.executable, "-m", "worker.devtools.quickstart", "--port", str(port)]
    log = tmp_path / "worker.log"
    process = subprocess.Popen(
        [*command, "--worker-log", str(log)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 120
        while not any(line.startswith("Ctrl-C stops") for line in lines):
            assert time.monotonic() < deadline and process.poll() is None, "".join(lines)
            lines.append(process.stdout.readline())
        text = "".join(lines)
        assert f"console:         http://127.0.0.1:{port}/" in text
        assert f"HS256 secret {HMAC_SECRET}" in text and "make send-events" in text
        platform = re.search(r"platform token:\s+(\S+)", text)
        acme = re.search(r"acme token:\s+(\S+)", text)
        sample = re.search(r"\n  (eyJ\S+)\n", text)
        assert platform and acme and sample
        base = f"http://127.0.0.1:{port}/api/v1/communities"
        auth = {"Authorization": f"Bearer {platform[1]}"}
        answer = _until(lambda: httpx.get(base, headers=auth), 30, "the service never answered")
        assert [c["id"] for c in answer.json()["items"]] == ["acme", "openshop"]  # one page (T5)
        mine = httpx.get(base, headers={"Authorization": f"Bearer {acme[1]}"}).json()["items"]
        assert [(c["id"], c["keys"], c["custom_fields"], c["mappings"]) for c in mine] == [("acme", 2, 1, 3)]
        check = httpx.post(f"{base}/acme/token-check", headers=auth, json={"token": sample[1]}).json()
        assert check["accepted"], check

        sent = subprocess.run(
            [sys.executable, "-m", "worker.devtools.send_events"], env=env, capture_output=True, text=True
        )
        assert sent.returncode == 0 and sent.stdout.startswith("sent 8 example events"), sent.stderr

        def used() -> bool:
            keys = httpx.get(f"{base}/acme/keys", headers=auth).json()["items"]
            return any(k["kid"] == "acme_2026" and k["uses_24h"] > 0 for k in keys)

        _until(used, 60, f"no usage counted; worker log: {log.read_text()[-2000:]}")

        def healthy() -> bool:
            health = httpx.get(f"{base}/acme/health", headers=auth).json()
            return {row["reason"] for row in health} >= {"", "token_expired", "invalid_signature"}

        _until(healthy, 60, "Health never showed the example events' outcomes")
    finally:
        process.terminate()
        process.wait(60)
    assert process.returncode == 0


def test_make_admin_fails_when_the_console_s_port_is_taken(fresh_db: str, kafka_bootstrap: str) -> None:
    """The service's failure is the command's: a taken port once printed the whole banner and
    still exited 0 (found by a newcomer's run of the README)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        suffix = f"qs{time.time_ns()}"
        env = {
            **os.environ,
            "DATABASE_URL": fresh_db,
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "IDENTITY_WORKER_GROUP_ID": suffix,
            **{
                f"IDENTITY_WORKER_{t.upper()}_TOPIC": f"{suffix}.{t}"
                for t in ("input", "enriched", "rejected", "dlq")
            },
        }
        done = subprocess.run(
            [sys.executable, "-m", "worker.devtools.quickstart", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert done.returncode != 0, done.stdout[-2000:]
    assert "configuration service stopped" in done.stderr and "ADMIN_PORT" in done.stderr
