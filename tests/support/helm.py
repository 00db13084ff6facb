"""The Helm chart rendered and validated by the tools operators run.

`helm` and `kubeconform` are the versions `deploy/local/prerequisites` pins and builds from the
Go module proxy (once per machine, into the cache folder). Built-in kinds are validated
against kubernetes-validate's strict schemas for Kubernetes 1.31 (PyPI, pinned), the custom
resources against the CRD schemas vendored in deploy/helm/crd-schemas (kubeconform's catalog
layout). No network is used.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy/helm/identity-worker"
CRD_SCHEMAS = ROOT / "deploy/helm/crd-schemas"
# KEDA 2.16 supports Kubernetes 1.29-1.31: the chart targets the newest of those.
KUBERNETES_VERSION = "1.31.0"
#: The API groups of the optional custom resources, as a cluster with both operators offers.
API_VERSIONS = ("monitoring.coreos.com/v1", "keda.sh/v1alpha1")


def pinned_tool(name: str) -> str:
    """The binary of `name` that `deploy/local/prerequisites` builds (its version pinned there)."""
    script = (ROOT / "deploy/local/prerequisites").read_text()
    version = re.search(rf"^{name.upper()}_VERSION=(\S+)$", script, re.M)
    assert version, f"deploy/local/prerequisites pins no {name.upper()}_VERSION"
    cache = os.environ.get("IDENTITY_WORKER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "identity-worker"
    )
    binary = Path(cache) / "bin" / f"{name}-{version.group(1)}"
    if not binary.is_file():
        pytest.fail(f"{binary} is missing: run deploy/local/prerequisites (make test does)")
    return str(binary)


def helm(
    *args: str, values: dict[str, Any] | None = None, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """`helm ARGS CHART -f values.yaml` (values written to `tmp_path`)."""
    file = tmp_path / "values.yaml"
    file.write_text(yaml.safe_dump(values or {}))
    command = [pinned_tool("helm"), *args, str(CHART), "-f", str(file)]
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(tmp_path / "cache"),
        "HELM_CONFIG_HOME": str(tmp_path / "config"),
    }
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)


def template_text(values: dict[str, Any], tmp_path: Path) -> str:
    """`helm template` of the chart with `values`, as a cluster 1.31 with both operators."""
    apis = [f"--api-versions={api}" for api in API_VERSIONS]
    result = helm(
        "template",
        "iw",
        "--namespace",
        "identity",
        f"--kube-version={KUBERNETES_VERSION}",
        *apis,
        values=values,
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def render(values: dict[str, Any], tmp_path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(template_text(values, tmp_path)) if doc]


def refusal(values: dict[str, Any], tmp_path: Path) -> str:
    """The error `helm template` gives for `values` (fails the test when it renders)."""
    result = helm("template", "iw", f"--kube-version={KUBERNETES_VERSION}", values=values, tmp_path=tmp_path)
    assert result.returncode != 0, "rendered, though it should have been refused"
    return result.stderr


#: The built-in kinds the chart renders, as kubeconform names their schema files.
BUILTIN_KINDS = (
    "configmap-v1",
    "secret-v1",
    "service-v1",
    "serviceaccount-v1",
    "deployment-apps-v1",
    "job-batch-v1",
    "ingress-networking-v1",
    "networkpolicy-networking-v1",
    "poddisruptionbudget-policy-v1",
)


@functools.cache
def builtin_schemas() -> Path:
    """kubernetes-validate's strict schemas of KUBERNETES_VERSION, standalone, in a folder for kubeconform.

    They point at shared definitions (`/api/_definitions.json`) that only kubernetes-validate's
    resolver finds, and kubeconform resolves no reference: each is inlined (a type that contains
    itself, which none of these kinds has, would be left open).
    """
    source = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    source /= f"v{KUBERNETES_VERSION}-local-strict"
    definitions = json.loads((source / "_definitions.json").read_text())["$defs"]

    def inline(node: Any, seen: frozenset[str]) -> Any:
        if isinstance(node, list):
            return [inline(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and "#/$defs/" in ref:
            name = ref.rsplit("/", 1)[1]
            rest = {k: v for k, v in node.items() if k != "$ref"}
            target = {} if name in seen else inline(definitions[name], seen | {name})
            return {**rest, **target}
        return {key: inline(value, seen) for key, value in node.items() if key not in ("$id", "$schema")}

    folder = Path(tempfile.mkdtemp(prefix="kubeconform-schemas-"))
    for kind in BUILTIN_KINDS:
        schema = json.loads((source / f"{kind}.json").read_text())
        (folder / f"{kind}.json").write_text(json.dumps(inline(schema, frozenset())))
    return folder


def kubeconform(docs: list[dict[str, Any]] | str) -> list[dict[str, Any]]:
    """kubeconform -strict on `docs`: its JSON result per resource (status valid/invalid/error)."""
    text = docs if isinstance(docs, str) else yaml.safe_dump_all(docs)
    locations = [
        f"{builtin_schemas()}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json",
        f"{CRD_SCHEMAS}/{{{{ .Group }}}}/{{{{ .ResourceKind }}}}_{{{{ .ResourceAPIVersion }}}}.json",
    ]
    command = [
        pinned_tool("kubeconform"),
        "-strict",
        "-verbose",
        "-output",
        "json",
        "-kubernetes-version",
        KUBERNETES_VERSION,
    ]
    for location in locations:
        command += ["-schema-location", location]
    result = subprocess.run([*command, "-"], input=text, capture_output=True, text=True, timeout=120)
    report = json.loads(result.stdout)
    resources: list[dict[str, Any]] = report["resources"]
    return resources


def by_name(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}
