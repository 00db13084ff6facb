"""The Kubernetes manifests, checked by the tools their users run (issue 16, item 4).

- Rendered by kustomize (the version `deploy/local/prerequisites` pins and builds from the Go
  module proxy), the base alone and with the KEDA component, through an overlay in a
  temporary folder as a user would write one.
- Every rendered object validated by kubernetes-validate (PyPI, pinned in pyproject.toml) in
  strict mode (unknown fields are errors) against KUBERNETES_VERSION; the ScaledObject by the
  published CRD schema of KEDA 2.16.1 kept in deploy/k8s/components/keda/crd/, with the API
  server's field validation (an unknown field is an error, like `kubectl apply --validate=strict`).
- And consistent with the worker: KEDA's trigger names the worker's own group, topic and
  brokers; no more replicas than `topics create` makes partitions; the grace period covers
  K6's bound.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.support.promql import ROOT
from worker.cli.main import cli
from worker.settings import Settings

# KEDA 2.16 supports Kubernetes 1.29-1.31: the manifests target the newest of those.
KUBERNETES_VERSION = "1.31.0"
BASE = ROOT / "deploy/k8s"
KEDA = BASE / "components/keda"
CRD = KEDA / "crd/scaledobjects.keda.sh.yaml"


def kustomize_command() -> list[str]:
    """The kustomize that `deploy/local/prerequisites` builds (pinned there, once per machine)."""
    script = (ROOT / "deploy/local/prerequisites").read_text()
    version = re.search(r"^KUSTOMIZE_VERSION=(\S+)$", script, re.M)
    assert version, "deploy/local/prerequisites pins no KUSTOMIZE_VERSION"
    cache = os.environ.get("IDENTITY_WORKER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "identity-worker"
    )
    binary = Path(cache) / "bin" / f"kustomize-{version.group(1)}"
    if not binary.is_file():
        pytest.fail(f"{binary} is missing: run deploy/local/prerequisites (make test does)")
    return [str(binary), "build"]


def render(tmp_path: Path, *components: Path) -> list[dict[str, Any]]:
    """`kustomize build` of an overlay in `tmp_path` holding the base and `components`."""
    overlay = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(BASE, tmp_path)],  # kustomize refuses absolute roots
        "components": [os.path.relpath(c, tmp_path) for c in components],
    }
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(overlay))
    result = subprocess.run(
        [*kustomize_command(), str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = {doc["kind"]: doc for doc in docs}
    assert len(kinds) == len(docs), "one object of each kind expected"
    return kinds


def strict(schema: Any) -> Any:
    """A CRD's structural schema as the API server applies it: fields it does not declare are
    errors (field validation Strict), unless it preserves unknown fields. `metadata` is the
    ObjectMeta, which kubernetes-validate checks on the built-in kinds."""
    if isinstance(schema, dict):
        schema = {key: strict(value) for key, value in schema.items()}
        declared = "properties" in schema and "additionalProperties" not in schema
        if declared and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


def crd_schema() -> Any:
    crd = yaml.safe_load(CRD.read_text())
    (version,) = crd["spec"]["versions"]
    return strict(version["schema"]["openAPIV3Schema"])


def validate(doc: dict[str, Any]) -> None:
    if doc["apiVersion"] == "keda.sh/v1alpha1":
        crd = yaml.safe_load(CRD.read_text())
        assert doc["kind"] == crd["spec"]["names"]["kind"]
        jsonschema.validate(doc, crd_schema())
    else:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_base_renders_and_every_object_is_valid_kubernetes(tmp_path: Path) -> None:
    docs = render(tmp_path)
    assert set(by_kind(docs)) == {"ConfigMap", "Secret", "Deployment", "Service"}
    for doc in docs:
        validate(doc)
    assert by_kind(docs)["Deployment"]["spec"]["replicas"] >= 2


def test_with_the_keda_component_the_scaledobject_is_valid_and_owns_the_replicas(tmp_path: Path) -> None:
    docs = render(tmp_path, KEDA)
    kinds = by_kind(docs)
    assert set(kinds) == {"ConfigMap", "Secret", "Deployment", "Service", "ScaledObject"}
    for doc in docs:
        validate(doc)
    assert "replicas" not in kinds["Deployment"]["spec"], "the HPA owns the count; apply must not reset it"


def test_the_keda_crd_kept_in_the_repo_is_a_valid_v1_crd() -> None:
    kubernetes_validate.validate(yaml.safe_load(CRD.read_text()), KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "minReplicas"), 2),  # a typo of minReplicaCount
        (("spec", "triggers", 0, "metadata", "lagThreshold"), 20000),  # metadata values are strings
        (("spec", "scaleTargetRef", "nam"), "x"),
    ],
)
def test_the_scaledobject_check_refuses_what_keda_would(
    tmp_path: Path, path: tuple[str | int, ...], value: object
) -> None:
    scaled = by_kind(render(tmp_path, KEDA))["ScaledObject"]
    node: Any = scaled
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        validate(scaled)


def test_the_deployment_check_refuses_an_unknown_field(tmp_path: Path) -> None:
    deployment = by_kind(render(tmp_path))["Deployment"]
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 60
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)


def test_keda_scales_the_worker_on_its_own_group_topic_and_brokers(tmp_path: Path) -> None:
    kinds = by_kind(render(tmp_path, KEDA))
    scaled, config = kinds["ScaledObject"]["spec"], kinds["ConfigMap"]["data"]
    assert scaled["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": kinds["Deployment"]["metadata"]["name"],
    }
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "kafka"
    metadata = trigger["metadata"]
    assert metadata["bootstrapServers"] == config["KAFKA_BOOTSTRAP_SERVERS"]
    assert metadata["consumerGroup"] == config["IDENTITY_WORKER_GROUP_ID"]
    assert metadata["topic"] == config["IDENTITY_WORKER_INPUT_TOPIC"]
    assert metadata["offsetResetPolicy"] == "earliest"  # like the worker's consumer
    assert int(metadata["lagThreshold"]) > 0
    create = cli.commands["topics"].commands["create"]  # `identity-worker topics create`
    partitions = next(param.default for param in create.params if param.name == "partitions")
    assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"] <= partitions


def test_the_grace_period_covers_k6s_bound_and_the_probes_fit_the_worker(tmp_path: Path) -> None:
    kinds = by_kind(render(tmp_path, KEDA))
    config = kinds["ConfigMap"]["data"]
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    defaults = Settings.model_fields
    shutdown = float(
        config.get("IDENTITY_WORKER_SHUTDOWN_TIMEOUT_SECONDS", defaults["shutdown_timeout_seconds"].default)
    )
    request = float(config.get("IDENTITY_WORKER_REQUEST_TIMEOUT_MS", defaults["request_timeout_ms"].default))
    # The batch's commit (K6 bound), then settling the last transaction (request timeout + 5 s).
    assert pod["terminationGracePeriodSeconds"] >= shutdown + request / 1000 + 5
    (container,) = pod["containers"]
    readiness, liveness = container["readinessProbe"], container["livenessProbe"]
    assert readiness["httpGet"]["path"] == "/readyz" and liveness["httpGet"]["path"] == "/healthz"
    # A broker or store outage makes the worker unready (K8), never restarted: liveness only
    # asks the event loop, and gives it a minute.
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 60
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"] and "cpu" not in resources["limits"]


def test_the_operations_guide_states_the_scaledobjects_figures(tmp_path: Path) -> None:
    """docs/operations.md explains the threshold and bounds: it must quote the ones shipped."""
    scaled = by_kind(render(tmp_path, KEDA))["ScaledObject"]["spec"]
    guide = (ROOT / "docs/operations.md").read_text()
    assert f'`lagThreshold: "{scaled["triggers"][0]["metadata"]["lagThreshold"]}"`' in guide
    assert f"`minReplicaCount: {scaled['minReplicaCount']}`" in guide
    assert f"`maxReplicaCount: {scaled['maxReplicaCount']}`" in guide
