"""The alert rules, checked by the tool their users run: Debian's `prometheus`
package's promtool (`check rules`, `check config`, `test rules` on tests/ops/alerts_test.yml).

promtool is installed by deploy/local/prerequisites (deploy/local/debian-packages.txt); without
it these tests fail, never skip.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.promql import ALERTS, ROOT, SCRAPE_CONFIG, alert_rules, grouping, operands

HERE = Path(__file__).parent
UNIT_TESTS = HERE / "alerts_test.yml"
OPERATIONS = ROOT / "docs/operations.md"


def promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail("promtool is missing: deploy/local/prerequisites installs Debian's prometheus package")
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_promtool_checks_the_rules_and_the_example_scrape_config() -> None:
    for args in (("check", "rules", str(ALERTS)), ("check", "config", str(SCRAPE_CONFIG))):
        result = promtool(*args)
        assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_every_alert_pass() -> None:
    result = promtool("test", "rules", UNIT_TESTS.name, cwd=HERE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_issue_asks_for_these_alerts_and_each_has_unit_tests() -> None:
    names = [rule["alert"] for rule in alert_rules()]
    assert names == [
        "IdentityWorkerNotReady",
        "IdentityWorkerStalled",
        "IdentityWorkerDeadLetters",
        "IdentityWorkerRejectionJump",
        "IdentityWorkerStoreDegraded",
        "IdentityWorkerCommitFailures",
        "IdentityWorkerLagGrowing",
        "IdentityWorkerDelayHigh",
    ]
    tested = {case["alertname"] for test in yaml.safe_load(UNIT_TESTS.read_text())["tests"]
              for case in test.get("alert_rule_test", [])}  # fmt: skip
    assert tested == set(names)


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
@pytest.mark.parametrize("broken", ["always", "never"])
def test_unit_tests_catch_an_alert_that_always_or_never_fires(
    rule: dict[str, str], broken: str, tmp_path: Path
) -> None:
    """Each alert's unit tests have a case where it must fire and one where it must stay quiet:
    replacing its expression by one that always (or never) fires makes promtool fail."""
    data = yaml.safe_load(ALERTS.read_text())
    for group in data["groups"]:
        for candidate in group["rules"]:
            if candidate["alert"] == rule["alert"]:
                candidate["expr"] = "vector(1)" if broken == "always" else "vector(1) < 0"
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(data))
    tests = yaml.safe_load(UNIT_TESTS.read_text())
    tests["rule_files"] = ["alerts.yml"]
    (tmp_path / "alerts_test.yml").write_text(yaml.safe_dump(tests))
    result = promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert result.returncode != 0, f"promtool passed with {rule['alert']} {broken} firing"
    assert f"alertname: {rule['alert']}," in result.stdout + result.stderr


def test_every_alert_links_a_section_of_the_operations_guide_and_has_a_severity() -> None:
    """Absolute links (Alertmanager opens them as they are), to the base the chart defaults to."""
    base = yaml.safe_load((ROOT / "deploy/helm/identity-worker/values.yaml").read_text())
    base_url = base["metrics"]["prometheusRule"]["runbookBaseUrl"]
    assert base_url.startswith("https://") and base_url.endswith("/docs/operations.md")
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in OPERATIONS.read_text().splitlines()
        if line.startswith("#")
    }
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"page", "ticket"}
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path == base_url and anchor in anchors, f"{rule['alert']}: no section {url}"
        assert {"summary", "description"} <= set(rule["annotations"])


def test_operands_are_the_sides_of_top_level_comparisons_and_set_operators() -> None:
    assert operands('min by (job) (x) == 0 or up{job="a"} == 0') == ["min by (job) (x)", 'up{job="a"}']
    assert operands("(a / ignoring (r) group_left b) > 0.01 and c > 3 * d") == [
        "(a / ignoring (r) group_left b)",
        "c",
        "3 * d",
    ]
    assert operands('x{le=">"} > on (job) group_left (r) y') == ['x{le=">"}', "y"]
    assert operands("rate(x[5m])") == ["rate(x[5m])"]
    assert grouping("histogram_quantile(0.99, sum by (le) (rate(x[1m])))") == frozenset()
    assert grouping("(sum by (job, reason) (a) / b)") == {"job", "reason"}
    assert grouping("sum(rate(a[1m])) / (sum(rate(b[1m])) + 1)") == frozenset()
    assert grouping("3 * sum by (job) (a)") is None
