"""SASL/OAUTHBEARER with a token from a file, against the secured stack's SASL_SSL
listener, whose broker validates unsigned tokens (Kafka's unsecured validator: `sub` and `exp`
are checked, not a signature — enough to see the worker's side of the exchange)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.secure import SecureStack
from tests.support.worker import CLI
from worker.kafka.security import FileTokenProvider

pytestmark = pytest.mark.integration


def unsigned_token(subject: str, expires_in: int) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    now = int(time.time())
    return f"{part({'alg': 'none'})}.{part({'sub': subject, 'iat': now - 5, 'exp': now + expires_in})}."


def oauth_env(secure: SecureStack, token_file: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")},
        "KAFKA_BOOTSTRAP_SERVERS": str(secure.sasl_ssl),
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SSL_CA_LOCATION": secure.sasl_ssl.env["KAFKA_SSL_CA_LOCATION"],
        "KAFKA_SASL_MECHANISM": "OAUTHBEARER",
        "KAFKA_SASL_OAUTHBEARER_TOKEN_FILE": str(token_file),
    }


def test_topics_create_authenticates_with_the_token_file_and_a_refused_token_is_one_line(
    secure_stack: SecureStack, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(unsigned_token("identity-worker", 3600) + "\n")
    topic = f"tls-oauth-{os.getpid()}-{time.time_ns()}"
    env = {**oauth_env(secure_stack, token_file), "IDENTITY_WORKER_INPUT_TOPIC": topic}
    accepted = subprocess.run([*CLI, "topics", "create"], env=env, capture_output=True, text=True)
    assert accepted.returncode == 0, accepted.stderr
    assert f"created {topic}" in accepted.stdout

    expired = unsigned_token("identity-worker", -600)
    token_file.write_text(expired)
    refused = subprocess.run([*CLI, "topics", "create"], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 3
    assert refused.stderr.strip() == (
        f"identity-worker: error: Kafka bootstrap {secure_stack.sasl_ssl} (SASL_SSL): "
        "SASL OAUTHBEARER authentication failed: the broker refused the token"
    )
    assert expired not in refused.stderr


async def test_the_token_is_read_again_only_when_the_file_changes(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first\n")
    provider = FileTokenProvider(token_file)
    assert await provider.token() == "first"
    # A Kubernetes secret update swaps the file (a new inode through a symlink), here a rename.
    (tmp_path / "next").write_text("second")
    (tmp_path / "next").rename(token_file)
    assert await provider.token() == "second"
    assert await provider.token() == "second"
