"""The secured deployment files agree with the product and with `stack certs`.

No Docker engine runs here: these tests read docker-compose.secure.yml and check that every
file a setting names is mounted from where `deploy/local/stack certs` makes it, and that the
settings are names and values the worker reads. The Helm chart's TLS mount is checked in
tests/ops/test_helm_chart.py.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from tests.test_deploy_files import ROOT, env_names_read_by_settings
from worker.security_settings import SaslMechanism, SecurityProtocol

PATH_SETTINGS = re.compile(r"^KAFKA_.*(_LOCATION|_FILE)$")


def files_named(env: dict[str, Any]) -> list[PurePosixPath]:
    """Every file path a worker environment names: Kafka's and the DSN's `sslrootcert`."""
    paths = [PurePosixPath(str(v)) for k, v in env.items() if PATH_SETTINGS.match(k)]
    query = parse_qs(urlsplit(str(env.get("DATABASE_URL", ""))).query)
    paths += [PurePosixPath(p) for p in query.get("sslrootcert", [])]
    return paths


def check_security_values(env: dict[str, Any]) -> None:
    SecurityProtocol(env["KAFKA_SECURITY_PROTOCOL"])
    if "KAFKA_SASL_MECHANISM" in env:
        SaslMechanism(env["KAFKA_SASL_MECHANISM"])
    assert "KAFKA_SASL_PASSWORD" not in env, "a password belongs in a file (a Secret), not in the env"


@pytest.fixture(scope="module")
def compose_certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the override's first step makes: `stack certs` for the names kafka and postgres."""
    folder = tmp_path_factory.mktemp("compose-certs")
    env = {**os.environ, "STACK_DIR": str(folder), "STACK_TLS_NAMES": "kafka,postgres,localhost"}
    result = subprocess.run(
        [str(ROOT / "deploy/local/stack"), "certs"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip())


def test_compose_override_names_only_files_stack_certs_makes(compose_certs: Path) -> None:
    override = yaml.safe_load((ROOT / "docker-compose.secure.yml").read_text())
    services = override["services"]
    base = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert set(services) - set(base) == {"kafka-users"}
    made = {path.name for path in compose_certs.iterdir()}

    def mounted(service: str) -> set[PurePosixPath]:
        """The container folders of the service's mounts, each the read-only .compose-secure/tls."""
        volumes = [v.split(":") for v in services[service].get("volumes", [])]
        assert all(host == "./.compose-secure/tls" and mode == "ro" for host, _, mode in volumes), volumes
        return {PurePosixPath(inside) for _, inside, _ in volumes}

    for service in ("migrate", "topics", "worker", "console"):
        env = services[service]["environment"]
        assert set(env) <= env_names_read_by_settings(), f"{service}: a variable the worker does not read"
        check_security_values(env)
        folders = mounted(service)
        for path in files_named(env):
            assert path.parent in folders and path.name in made, (service, path)
    kafka = services["kafka"]["environment"]
    assert PurePosixPath("/etc/kafka/secrets") in mounted("kafka")
    for name in (
        "KAFKA_SSL_KEYSTORE_FILENAME",
        "KAFKA_SSL_KEYSTORE_CREDENTIALS",
        "KAFKA_SSL_KEY_CREDENTIALS",
    ):
        assert kafka[name] in made
    jaas = kafka["KAFKA_OPTS"].split("=", 1)[1]
    assert PurePosixPath(jaas).name in made
    listener = re.search(r"SASL_SSL://(kafka:\d+)", kafka["KAFKA_ADVERTISED_LISTENERS"])
    assert listener and services["worker"]["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == listener.group(1)
    scripts = " ".join(services["postgres"]["command"] + services["kafka-users"]["command"])
    read_by_scripts = set(re.findall(r"[\s(]/tls/([\w.-]+)", scripts))
    assert read_by_scripts >= {"pg-server.pem", "pg-server.key", "sasl.username", "sasl.password"}
    assert read_by_scripts <= made
    # The server certificates name the hosts the clients use (verify-full, hostname checks).
    san = subprocess.run(
        ["openssl", "x509", "-in", str(compose_certs / "broker.pem"), "-noout", "-ext", "subjectAltName"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "DNS:kafka" in san and "DNS:postgres" in san
