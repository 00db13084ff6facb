"""The Helm chart deploy/helm/identity-worker, checked by the tools operators run.

`helm lint --strict`, `helm template` (Kubernetes 1.31, with the Prometheus operator and KEDA
offered) and kubeconform -strict over every rendered object, against the built-in schemas and
the vendored CRD schemas (tests/support/helm.py). Then what kubeconform cannot know: the chart
agrees with the worker (its commands, its settings, K6's bound, K7's partitions), the Secret is
never a placeholder, the alert rules are the one file promtool tests.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from tests.support.helm import CHART, ROOT, by_name, helm, kubeconform, refusal, render, template_text
from tests.test_deploy_files import env_names_read_by_settings, resolve_command
from worker.cli.main import cli
from worker.settings import Settings

URL = "postgresql://identity@db.example.net:5432/identity?sslmode=verify-full"
#: Every optional part on: what the kinds test and kubeconform must see.
FULL: dict[str, Any] = {
    "database": {"existingSecret": "identity-db", "existingSecretKey": "url"},
    "kafka": {
        "bootstrapServers": "kafka-kafka-bootstrap.kafka.svc:9093",
        "securityProtocol": "SASL_SSL",
        "saslMechanism": "SCRAM-SHA-512",
        "tls": {
            "existingSecret": "identity-kafka",
            "caKey": "ca.crt",
            "saslUsernameKey": "username",
            "saslPasswordKey": "password",
        },
    },
    "worker": {"processes": 2},
    "topics": {"partitions": 12},
    "console": {
        "ingress": {"enabled": True, "className": "nginx", "tlsSecretName": "identity-admin-tls"},
        "podDisruptionBudget": {"enabled": True},
    },
    "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
    "keda": {"enabled": True, "authenticationRef": "identity-kafka"},
    "networkPolicy": {"metricsFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]},
}
DEFAULT: dict[str, Any] = {"database": {"url": URL}}


def invalid(resources: list[dict[str, Any]]) -> list[str]:
    return [f"{r['kind']} {r['name']}: {r.get('msg')}" for r in resources if r["status"] != "statusValid"]


def test_helm_lint_passes_strictly(tmp_path: Path) -> None:
    result = helm("lint", "--strict", values=DEFAULT, tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", [DEFAULT, FULL], ids=["defaults", "everything-on"])
def test_every_rendered_object_passes_kubeconform_strict(tmp_path: Path, values: dict[str, Any]) -> None:
    resources = kubeconform(template_text(values, tmp_path))
    assert resources and not invalid(resources), invalid(resources)
    kinds = {r["kind"] for r in resources}
    assert {"Deployment", "Service", "ConfigMap", "Job", "NetworkPolicy", "PodDisruptionBudget"} <= kinds
    if values is FULL:
        assert {"ScaledObject", "ServiceMonitor", "PrometheusRule", "Ingress"} <= kinds


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    [
        ("ScaledObject", ("spec", "minReplicas"), 2),  # a typo of minReplicaCount
        ("ScaledObject", ("spec", "triggers", 0, "metadata", "lagThreshold"), 20000),  # strings only
        ("ServiceMonitor", ("spec", "endpoints", 0, "intervall"), "15s"),
        ("PrometheusRule", ("spec", "groups", 0, "rules", 0, "expression"), "up"),
        ("Deployment", ("spec", "template", "spec", "terminationGracePeriod"), 60),
        ("Job", ("spec", "template", "spec", "containers", 0, "argz"), ["run"]),
    ],
)
def test_kubeconform_refuses_what_the_api_server_would(
    tmp_path: Path, kind: str, path: tuple[str | int, ...], value: object
) -> None:
    docs = render(FULL, tmp_path)
    doc = next(d for d in docs if d["kind"] == kind)
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    (result,) = kubeconform([doc])
    assert result["status"] == "statusInvalid", result


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "set database.existingSecret"),  # never a placeholder Secret
        ({**DEFAULT, "worker": {"replicass": 3}}, "replicass"),  # values.schema.json
        ({**DEFAULT, "worker": {"guarantee": "exactly-once"}}, "guarantee"),
        ({**DEFAULT, "keda": {"enabled": True, "lagThreshold": 20000}}, "lagThreshold"),
        ({**DEFAULT, "console": {"ingress": {"enabled": True}}}, "set tlsSecretName"),
        ({**DEFAULT, "keda": {"enabled": True, "maxReplicaCount": 7}}, "exceeds topics.partitions"),
        ({**DEFAULT, "kafka": {"tls": {"existingSecret": "s", "caKey": "ca.crt"}}}, "PLAINTEXT"),
    ],
    ids=[
        "no-database",
        "unknown-key",
        "bad-enum",
        "threshold-not-string",
        "ingress-without-tls",
        "idle-members",
        "tls-in-clear",
    ],
)
def test_bad_values_are_refused_with_a_line_naming_them(
    tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    assert message in refusal(values, tmp_path)


def test_no_secret_holds_a_placeholder_and_the_url_reaches_every_pod(tmp_path: Path) -> None:
    docs = by_name(render(DEFAULT, tmp_path))
    secrets = {name: doc for (kind, name), doc in docs.items() if kind == "Secret"}
    assert set(secrets) == {"iw-identity-worker", "iw-identity-worker-hooks"}
    for secret in secrets.values():
        assert secret["stringData"] == {"DATABASE_URL": URL}
    assert (
        secrets["iw-identity-worker-hooks"]["metadata"]["annotations"]["helm.sh/hook"]
        == "pre-install,pre-upgrade"
    )
    with_existing = by_name(render(FULL, tmp_path))
    assert not [key for key in with_existing if key[0] == "Secret"], "existingSecret: the chart makes none"
    for deployment in ("iw-identity-worker", "iw-identity-worker-console"):
        (container,) = with_existing[("Deployment", deployment)]["spec"]["template"]["spec"]["containers"]
        ref = next(e for e in container["env"] if e["name"] == "DATABASE_URL")["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "identity-db", "key": "url"}


def pods(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        f"{d['kind']}/{d['metadata']['name']}": d["spec"]["template"]["spec"]
        for d in docs
        if d["kind"] in {"Deployment", "Job"}
    }


def test_every_pod_runs_as_non_root_on_a_read_only_root(tmp_path: Path) -> None:
    found = pods(render(FULL, tmp_path))
    assert len(found) == 4, found.keys()  # worker, console, migrate, topics
    for name, pod in found.items():
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"], name


def test_the_jobs_are_hooks_running_real_commands_with_settings_the_worker_reads(tmp_path: Path) -> None:
    docs = by_name(render(FULL, tmp_path))
    topics, migrate = docs[("Job", "iw-identity-worker-topics")], docs[("Job", "iw-identity-worker-migrate")]
    # Topics first (no store needed), then the schema, both before install and every upgrade.
    assert int(topics["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        migrate["metadata"]["annotations"]["helm.sh/hook-weight"]
    )
    for job in (topics, migrate):
        assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
        (container,) = job["spec"]["template"]["spec"]["containers"]
        args = container["args"]
        command = resolve_command([a for a in args if not a.startswith("--") and not a.isdigit()])
        flags = {o for p in command.params for o in p.opts}
        assert {a for a in args if a.startswith("--")} <= flags
        names = {e["name"] for e in container["env"]}
        assert names <= env_names_read_by_settings()
    assert topics["spec"]["template"]["spec"]["containers"][0]["args"][-4:] == [
        "--partitions",
        "12",
        "--replication-factor",
        "3",
    ]


def test_the_worker_and_console_run_real_commands_from_the_configmap(tmp_path: Path) -> None:
    docs = by_name(render(FULL, tmp_path))
    config = docs[("ConfigMap", "iw-identity-worker")]["data"]
    assert set(config) <= env_names_read_by_settings()
    assert "DATABASE_URL" not in config
    assert config["IDENTITY_WORKER_PROCESSES"] == "2"
    for name in ("iw-identity-worker", "iw-identity-worker-console"):
        deployment = docs[("Deployment", name)]
        pod = deployment["spec"]["template"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        (container,) = pod["spec"]["containers"]
        resolve_command([a for a in container["args"] if not a.startswith("-")][:2])
        assert container["envFrom"] == [{"configMapRef": {"name": "iw-identity-worker"}}]
    console = docs[("Deployment", "iw-identity-worker-console")]["spec"]["template"]["spec"]["containers"][0]
    assert console["args"][:2] == ["admin", "serve"]
    service = docs[("Service", "iw-identity-worker-console")]
    ingress = docs[("Ingress", "iw-identity-worker-console")]["spec"]
    assert ingress["tls"][0]["secretName"] == "identity-admin-tls"
    assert (
        ingress["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == service["metadata"]["name"]
    )


def test_the_grace_period_covers_k6s_bound_and_the_probes_fit_the_worker(tmp_path: Path) -> None:
    for values in (
        DEFAULT,
        {**DEFAULT, "worker": {"shutdownTimeoutSeconds": 90.5, "requestTimeoutMs": 30001}},
    ):
        docs = by_name(render(values, tmp_path))
        config = docs[("ConfigMap", "iw-identity-worker")]["data"]
        pod = docs[("Deployment", "iw-identity-worker")]["spec"]["template"]["spec"]
        shutdown = float(config["IDENTITY_WORKER_SHUTDOWN_TIMEOUT_SECONDS"])
        request = float(config["IDENTITY_WORKER_REQUEST_TIMEOUT_MS"])
        # The batch's commit (K6 bound), then settling the last transaction (request timeout + 5 s).
        assert pod["terminationGracePeriodSeconds"] >= shutdown + request / 1000 + 5
    (container,) = pod["containers"]
    readiness, liveness = container["readinessProbe"], container["livenessProbe"]
    assert readiness["httpGet"]["path"] == "/readyz" and liveness["httpGet"]["path"] == "/healthz"
    # An outage makes the worker unready (K8), never restarted: liveness gives the loop a minute.
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 60
    assert "cpu" not in container["resources"]["limits"]
    assert Settings.model_fields["metrics_port"].default == container["ports"][0]["containerPort"]


def test_keda_scales_the_worker_on_its_own_group_topic_and_brokers(tmp_path: Path) -> None:
    docs = by_name(render({**DEFAULT, "keda": {"enabled": True}}, tmp_path))
    scaled = docs[("ScaledObject", "iw-identity-worker")]["spec"]
    config = docs[("ConfigMap", "iw-identity-worker")]["data"]
    assert "replicas" not in docs[("Deployment", "iw-identity-worker")]["spec"], "the HPA owns the count"
    assert scaled["scaleTargetRef"]["name"] == "iw-identity-worker"
    (trigger,) = scaled["triggers"]
    metadata = trigger["metadata"]
    assert metadata["bootstrapServers"] == config["KAFKA_BOOTSTRAP_SERVERS"]
    assert metadata["consumerGroup"] == config["IDENTITY_WORKER_GROUP_ID"]
    assert metadata["topic"] == config["IDENTITY_WORKER_INPUT_TOPIC"]
    create = cli.commands["topics"].commands["create"]  # type: ignore[attr-defined]
    partitions = next(param.default for param in create.params if param.name == "partitions")
    assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"] <= partitions
    guide = (ROOT / "docs/operations.md").read_text()
    assert f'`lagThreshold: "{metadata["lagThreshold"]}"`' in guide
    assert f"`minReplicaCount: {scaled['minReplicaCount']}`" in guide
    assert f"`maxReplicaCount: {scaled['maxReplicaCount']}`" in guide


def test_every_member_port_is_served_scraped_and_admitted(tmp_path: Path) -> None:
    docs = by_name(render(FULL, tmp_path))
    (container,) = docs[("Deployment", "iw-identity-worker")]["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 9108, "metrics-1": 9109}  # Settings.for_member: port + index (K7)
    service = docs[("Service", "iw-identity-worker-metrics")]["spec"]
    assert {p["targetPort"] for p in service["ports"]} == set(ports)
    monitor = docs[("ServiceMonitor", "iw-identity-worker")]["spec"]
    assert {e["port"] for e in monitor["endpoints"]} == set(ports)
    assert monitor["selector"]["matchLabels"].items() <= service["selector"].items()
    policy = docs[("NetworkPolicy", "iw-identity-worker-worker")]["spec"]
    assert {p["port"] for p in policy["ingress"][0]["ports"]} == set(ports.values())


def test_the_prometheusrule_is_the_alert_file_with_absolute_runbooks(tmp_path: Path) -> None:
    base = "https://runbooks.example.net/identity-worker/operations.md"
    values = {**DEFAULT, "metrics": {"prometheusRule": {"enabled": True, "runbookBaseUrl": base}}}
    rule = by_name(render(values, tmp_path))[("PrometheusRule", "iw-identity-worker")]
    source = yaml.safe_load((CHART / "files/alerts.yml").read_text())
    assert (ROOT / "deploy/prometheus/alerts.yml").resolve() == (CHART / "files/alerts.yml").resolve()
    rendered = rule["spec"]["groups"]
    assert [r["alert"] for g in rendered for r in g["rules"]] == [
        r["alert"] for g in source["groups"] for r in g["rules"]
    ]
    for group, original in zip(rendered, source["groups"], strict=True):
        for ours, theirs in zip(group["rules"], original["rules"], strict=True):
            assert ours["expr"] == theirs["expr"] and ours.get("for") == theirs.get("for")
            anchor = theirs["annotations"]["runbook_url"].split("#")[1]
            assert ours["annotations"]["runbook_url"] == f"{base}#{anchor}"


def test_tls_settings_name_only_files_of_the_mounted_secret(tmp_path: Path) -> None:
    docs = by_name(render(FULL, tmp_path))
    config = docs[("ConfigMap", "iw-identity-worker")]["data"]
    assert config["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert "KAFKA_SASL_PASSWORD" not in config, "a password belongs in a file (a Secret)"
    named = {k: PurePosixPath(v) for k, v in config.items() if k.endswith(("_LOCATION", "_FILE"))}
    assert set(named) == {"KAFKA_SSL_CA_LOCATION", "KAFKA_SASL_USERNAME_FILE", "KAFKA_SASL_PASSWORD_FILE"}
    for pod in pods(list(docs.values())).values():
        volume = next(v for v in pod["volumes"] if v.get("secret", {}).get("secretName") == "identity-kafka")
        assert volume["secret"]["defaultMode"] == 0o440
        assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsUser"]
        mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume["name"])
        assert mount["readOnly"] is True
        for path in named.values():
            assert path.parent == PurePosixPath(mount["mountPath"])
    assert {p.name for p in named.values()} == {"ca.crt", "username", "password"}
