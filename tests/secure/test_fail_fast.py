"""A credential or certificate that cannot work is a fatal misconfiguration (K10): one
line naming the bootstrap server and the failed check, a non-zero exit within seconds — not a
retry until the 60 s start-up timeout — and no secret in what is printed.

Each case runs the real commands, `run` and `topics create`, against the secured stack.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.certs import self_signed
from tests.support.kafka import worker_env
from tests.support.secure import SecureStack
from tests.support.worker import CLI, Store

pytestmark = pytest.mark.integration

EXIT_STARTUP = 3
FAST_S = 20  # far below the 60 s start-up timeout a retried fault would take


def other_ca(folder: Path) -> Path:
    """A CA nobody signed the broker's (or PostgreSQL's) certificate with."""
    return self_signed(folder, "other-ca")[0]


def case_env(case: str, secure: SecureStack, tmp_path: Path) -> tuple[dict[str, str], str, str]:
    """(the worker's Kafka environment, the bootstrap named in the line, the check's words)."""
    sasl = worker_env(secure.sasl_ssl)
    mtls = worker_env(secure.ssl)
    if case == "wrong_password":
        del sasl["KAFKA_SASL_PASSWORD_FILE"]
        sasl["KAFKA_SASL_PASSWORD"] = "not-the-password"
        return sasl, secure.sasl_ssl, "SASL SCRAM-SHA-512 authentication of user identity-worker failed"
    if case == "unknown_ca":
        sasl["KAFKA_SSL_CA_LOCATION"] = str(other_ca(tmp_path))
        return sasl, secure.sasl_ssl, "the broker's certificate is not trusted"
    if case == "hostname_mismatch":  # the certificate names localhost only
        address = secure.ssl.replace("localhost", "127.0.0.1")
        mtls["KAFKA_BOOTSTRAP_SERVERS"] = address
        return mtls, address, "hostname verification failed"
    if case == "no_client_certificate":
        for name in (
            "KAFKA_SSL_CERTIFICATE_LOCATION",
            "KAFKA_SSL_KEY_LOCATION",
            "KAFKA_SSL_KEY_PASSWORD_FILE",
        ):
            del mtls[name]
        return mtls, secure.ssl, "the broker refused the client certificate"
    raise AssertionError(case)


CASES = ["wrong_password", "unknown_ca", "hostname_mismatch", "no_client_certificate"]


@pytest.mark.parametrize("command", ["run", "topics create"])
@pytest.mark.parametrize("case", CASES)
def test_a_credential_or_certificate_that_cannot_work_fails_fast_with_one_line(
    case: str,
    command: str,
    secure_stack: SecureStack,
    secure_store: Store,
    unique_topic: Callable[[str], str],
    tmp_path: Path,
) -> None:
    kafka_env, bootstrap, check = case_env(case, secure_stack, tmp_path)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")},
        **kafka_env,
        "DATABASE_URL": secure_store.url,
        "IDENTITY_WORKER_INPUT_TOPIC": unique_topic("tls-fail"),
        "IDENTITY_WORKER_METRICS_PORT": "0",
    }
    started = time.monotonic()
    result = subprocess.run([*CLI, *command.split()], env=env, capture_output=True, text=True, timeout=120)
    took = time.monotonic() - started
    assert result.returncode == EXIT_STARTUP, result.stderr
    assert took < FAST_S, f"{took:.1f} s: retried instead of failing fast"
    errors = [line for line in result.stderr.splitlines() if not line.startswith("{")]  # JSON: logs
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"identity-worker: error: Kafka bootstrap {bootstrap} ("), errors[0]
    assert check in errors[0]
    secrets = [
        "not-the-password",
        (secure_stack.tls / "sasl.password").read_text().strip(),
        (secure_stack.tls / "kafka-client.key.password").read_text().strip(),
    ]
    for secret in secrets:
        assert secret not in result.stderr and secret not in result.stdout
