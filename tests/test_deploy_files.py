"""The deployment files parse and agree with the product (DESIGN sections 7 and 8).

No Docker engine or cluster runs here, so these tests read docker-compose.yml and
deploy/Dockerfile and check that they use the real commands of `identity-worker`, the
environment variables its settings read and the probe paths its HTTP endpoint serves. The Helm
chart has its own tests (tests/ops/test_helm_chart.py).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from pydantic import AliasChoices

from worker.cli.main import cli
from worker.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
METRICS_PORT = 9108
WORKER_ENV = {
    "KAFKA_BOOTSTRAP_SERVERS",
    "DATABASE_URL",
    "IDENTITY_WORKER_GUARANTEE",
    "IDENTITY_WORKER_METRICS_PORT",
}


def load_yaml(path: str) -> Any:
    return yaml.safe_load((ROOT / path).read_text())


def resolve_command(args: list[str]) -> click.Command:
    """The click command `identity-worker ARGS...` names (fails when it does not exist)."""
    command: click.Command = cli
    ctx = click.Context(cli)
    for word in args:
        assert isinstance(command, click.Group), f"{args}: {word!r} follows a command"
        sub = command.get_command(ctx, word)
        assert sub is not None, f"identity-worker has no command {' '.join(args)!r}"
        command = sub
    return command


def env_names_read_by_settings() -> set[str]:
    names = {"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL"}
    names |= {f"IDENTITY_WORKER_{field.upper()}" for field in Settings.model_fields}
    for info in Settings.model_fields.values():  # KAFKA_SECURITY_PROTOCOL, …
        if isinstance(info.validation_alias, AliasChoices):
            names |= {choice for choice in info.validation_alias.choices if isinstance(choice, str)}
    return {name for name in names if name.isupper()}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = load_yaml("docker-compose.yml")
    assert isinstance(data, dict)
    return data


def test_compose_kafka_is_the_official_image_in_kraft_mode_with_transactions_on_one_node(
    compose: dict[str, Any],
) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    # K2/K7 on one node: replication factor 1 for offsets and transaction state.
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 1
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == 1
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == 1
    assert "healthcheck" in kafka


def test_compose_postgres_is_the_official_image_with_a_healthcheck(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    assert postgres["image"].startswith("postgres:")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])


@pytest.mark.parametrize(
    ("service", "command"),
    [
        ("migrate", ["db", "migrate"]),
        ("topics", ["topics", "create"]),
        ("worker", ["run"]),
        ("console", ["admin", "serve", "--host", "0.0.0.0", "--port", "8080"]),
    ],
)
def test_compose_services_run_real_identity_worker_commands(
    compose: dict[str, Any], service: str, command: list[str]
) -> None:
    spec = compose["services"][service]
    assert spec["build"]["dockerfile"] == "deploy/Dockerfile"
    assert spec["command"] == command
    words = [word for word in command if not word.startswith("--") and not word[0].isdigit()]
    flags = {opt for param in resolve_command(words).params for opt in param.opts}
    assert {word for word in command if word.startswith("--")} <= flags
    env = spec["environment"]
    assert set(env) >= WORKER_ENV
    assert set(env) <= env_names_read_by_settings(), "a variable the worker does not read"
    assert str(env["IDENTITY_WORKER_METRICS_PORT"]) == str(METRICS_PORT)
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:19092"
    assert "@postgres:5432/" in env["DATABASE_URL"]


def test_compose_worker_waits_for_the_one_shot_services_and_checks_readiness(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    worker = services["worker"]
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert worker["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert f"127.0.0.1:{METRICS_PORT}/readyz" in " ".join(worker["healthcheck"]["test"])
    # The configuration service needs the schema only, and answers its sign-in page.
    console = services["console"]
    assert console["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "127.0.0.1:8080/" in " ".join(console["healthcheck"]["test"])
    # Published on the host's loopback only (DESIGN section 8).
    for spec in services.values():
        for port in spec.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), port


def test_dockerfile_builds_a_non_root_image_whose_entrypoint_is_the_console_script() -> None:
    text = (ROOT / "deploy/Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert re.search(r"^RUN pip install \.", text, re.M)
    user = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert user and user[-1] not in {"root", "0"}
    script = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert 'ENTRYPOINT ["identity-worker"]' in text
    assert "identity-worker" in script
    assert f"EXPOSE {METRICS_PORT}" in text


def test_the_worker_serves_the_probe_paths_the_manifests_use() -> None:
    source = "\n".join(p.read_text() for p in sorted((ROOT / "worker").rglob("*.py")))
    for path in ("/healthz", "/readyz", "/metrics"):
        assert f'"{path}"' in source, f"no module of worker/ serves {path}"
