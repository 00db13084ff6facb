"""The Kafka security settings and options, without a broker: the environment names,
coherence checks as one line without values, the TLS context, secrets from files, redaction."""

from __future__ import annotations

import os
import ssl
import subprocess
from pathlib import Path

import pytest

from tests.support.certs import self_signed
from tests.support.worker import CLI
from worker.core.redaction import redact_dsn
from worker.kafka.security import KafkaMisconfiguration, security_options
from worker.ops.logging import scrub
from worker.security_settings import SecurityProtocol
from worker.settings import SettingsError, load_topic_names

SECRET = "s3cret-Value-42"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("KAFKA_", "IDENTITY_WORKER_KAFKA_")):
            monkeypatch.delenv(name)


@pytest.mark.parametrize("prefix", ["KAFKA_", "IDENTITY_WORKER_KAFKA_"])
def test_both_environment_forms_of_kafka_property_names_are_read(
    prefix: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "password").write_text(SECRET + "\n")
    monkeypatch.setenv(f"{prefix}SECURITY_PROTOCOL", "sasl_ssl")
    monkeypatch.setenv(f"{prefix}SASL_MECHANISM", "scram-sha-512")
    monkeypatch.setenv(f"{prefix}SASL_USERNAME", "worker")
    monkeypatch.setenv(f"{prefix}SASL_PASSWORD_FILE", str(tmp_path / "password"))
    settings = load_topic_names()
    assert settings.kafka_security_protocol is SecurityProtocol.SASL_SSL
    options = security_options(settings)
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "worker"
    assert options["sasl_plain_password"] == SECRET  # the file's newline is not part of it
    context = options["ssl_context"]
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname  # on by default
    assert SECRET not in repr(settings)


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        (
            {"KAFKA_SASL_PASSWORD": SECRET},
            "kafka_sasl_password given but kafka_security_protocol is PLAINTEXT",
        ),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "kafka_sasl_mechanism is required with SASL_SSL"),
        (
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KAFKA_SASL_MECHANISM": "PLAIN",
                "KAFKA_SASL_USERNAME": "u",
            },
            "PLAIN needs kafka_sasl_password (or kafka_sasl_password_file)",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "OAUTHBEARER"},
            "OAUTHBEARER needs kafka_sasl_oauthbearer_token_file",
        ),
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "kafka_security_protocol: Input should be"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_LOCATION": "/no/such/ca.pem"},
            "does not point to a file",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM": "maybe"},
            "must be https",
        ),
    ],
)
def test_incoherent_settings_are_one_line_without_values(
    env: dict[str, str], problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as refused:
        load_topic_names()
    assert problem in str(refused.value)
    assert SECRET not in str(refused.value) and "\n" not in str(refused.value)


def test_a_bad_flag_is_one_line_and_exit_2() -> None:
    result = subprocess.run(
        [*CLI, "topics", "create", "--kafka-security-protocol", "TLS"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "kafka_security_protocol" in result.stderr


def test_mutual_tls_loads_an_encrypted_key_and_hostname_checks_can_be_turned_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path, "client", password=SECRET)
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("KAFKA_SSL_CERTIFICATE_LOCATION", str(cert))
    monkeypatch.setenv("KAFKA_SSL_KEY_LOCATION", str(key))
    monkeypatch.setenv("KAFKA_SSL_KEY_PASSWORD", SECRET)
    monkeypatch.setenv("KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM", "")  # Java's way to say none
    context = security_options(load_topic_names())["ssl_context"]
    assert not context.check_hostname and context.verify_mode is ssl.CERT_REQUIRED

    monkeypatch.setenv("KAFKA_SSL_KEY_PASSWORD", "wrong-password")
    with pytest.raises(KafkaMisconfiguration) as refused:
        security_options(load_topic_names())
    assert "cannot load KAFKA_SSL_CERTIFICATE_LOCATION / KAFKA_SSL_KEY_LOCATION" in str(refused.value)
    assert "wrong-password" not in str(refused.value)


def test_dsn_secrets_in_the_query_are_redacted() -> None:
    url = f"postgresql://u:{SECRET}@db:5432/x?sslmode=verify-full&sslrootcert=/ca.pem&sslpassword={SECRET}"
    shown = redact_dsn(url)
    assert SECRET not in shown
    assert "sslmode=verify-full" in shown and "sslrootcert=/ca.pem" in shown
    assert SECRET not in scrub(f"connecting to {url} failed")
