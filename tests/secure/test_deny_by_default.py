"""On the secured stack's deny-by-default broker (allow.everyone.if.no.acl.found=false), a
principal lacking one ACL of docs/security.md#acls makes the worker stop with one line naming
the operation and the resource, at start or while running (K10). The
OAUTHBEARER subjects `no-describe-configs` and `no-write` have every ACL of the list but that
one (deploy/local/kafka/WorkerAcls.java); `identity-worker` has them all (every other test)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.secure.test_oauthbearer import oauth_env, unsigned_token
from tests.support.secure import SecureStack
from tests.support.worker import CLI, Store, new_topics, produce, raw_event, sign

pytestmark = pytest.mark.integration


def run_as(subject: str, secure: SecureStack, store: Store, topics: object, tmp_path: Path) -> str:
    token = tmp_path / "token"
    token.write_text(unsigned_token(subject, 3600))
    env = {
        **oauth_env(secure, token),
        **topics.env(),  # type: ignore[attr-defined]
        "DATABASE_URL": store.url,
        "IDENTITY_WORKER_GROUP_ID": f"{topics.raw}.group",  # type: ignore[attr-defined]
        "IDENTITY_WORKER_METRICS_PORT": "0",
        "IDENTITY_WORKER_STARTUP_TIMEOUT_SECONDS": "60",
    }
    process = subprocess.Popen(
        [*CLI, "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        _, err = process.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
        raise AssertionError(f"still running after 90 s; its log:\n{err[-3000:]}") from None
    assert process.returncode == 3, err[-2000:]
    # The one line: at start `identity-worker: error: …`; while running the `fatal: …` log event.
    lines = err.strip().splitlines()
    said = [
        line for line in lines if line.startswith("identity-worker: error:") or '"event": "fatal:' in line
    ]
    assert len(said) == 1, err[-2000:]
    return said[0]


async def test_a_missing_describe_configs_acl_stops_the_start_naming_it(
    secure_stack: SecureStack, secure_store: Store, tmp_path: Path
) -> None:
    topics = await new_topics(secure_stack.plain, f"acl-dc-{os.getpid()}-{time.time_ns()}", 1)
    line = run_as("no-describe-configs", secure_stack, secure_store, topics, tmp_path)
    assert "not authorized to DescribeConfigs topic" in line and topics.raw in line, line
    assert "does not exist" not in line


async def test_a_missing_write_acl_stops_the_worker_naming_the_output_topic(
    secure_stack: SecureStack, secure_store: Store, tmp_path: Path
) -> None:
    topics = await new_topics(secure_stack.plain, f"acl-w-{os.getpid()}-{time.time_ns()}", 1)
    token = sign({"uuid": "v", "exp": int(time.time()) + 7200}, kid="hs_1")
    await produce(
        secure_stack.plain,
        topics.raw,
        [(b"k", raw_event("e", secure_store.acme, time.time(), signed_identity=token), None)],
    )
    line = run_as("no-write", secure_stack, secure_store, topics, tmp_path)
    assert "not authorized to Write topic" in line and topics.enriched in line, line
