"""A real Prometheus scrapes a real worker processing real events.

Debian's `prometheus` server runs on 127.0.0.1 in a temporary folder, scraping every second the
/metrics of `identity-worker run` (a child process, reading the shared broker and a migrated
PostgreSQL) and evaluating deploy/prometheus/alerts.yml. Then every expression of the alerts
(each side of their comparisons, and the whole rule) and of the Grafana dashboard is queried
through Prometheus's HTTP API and must return data of the expected shape: a renamed metric or
label fails here, not in an operator's night.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.ports import free_port
from tests.support.processes import terminate
from tests.support.promql import (
    ALERTS,
    SCRAPE_CONFIG,
    Expression,
    alert_expressions,
    dashboard_expressions,
    grouping,
    operands,
)
from tests.support.worker import (
    Outputs,
    Store,
    every_reason,
    new_topics,
    own_store,
    produce,
    start_worker,
    stream_values,
    wait_ready,
)

pytestmark = pytest.mark.integration

JOB = yaml.safe_load(SCRAPE_CONFIG.read_text())["scrape_configs"][0]["job_name"]
DEADLINE = 30.0  # seconds for every expression to show data once the events are committed


class Prometheus:
    """`prometheus` on a free loopback port, its data in `folder`; `query` is its HTTP API."""

    def __init__(self, folder: Path, target_port: int) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus is missing: deploy/local/prerequisites installs Debian's package")
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {"job_name": JOB, "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}]}
            ],
        }
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = folder / "prometheus.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={folder / 'prometheus.yml'}",
                    f"--storage.tsdb.path={folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def get(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:  # 400/422: the body says why (a bad expression)
            return json.loads(exc.read())

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"prometheus exited: {self.log.read_text()[-2000:]}"
            ready = f"http://127.0.0.1:{self.port}/-/ready"
            with contextlib.suppress(OSError), urllib.request.urlopen(ready, timeout=2) as response:
                if response.status == 200:
                    return
            time.sleep(0.2)
        raise AssertionError(f"prometheus not ready after {timeout} s: {self.log.read_text()[-2000:]}")

    def wait_for_scrapes(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        expr = f'count_over_time(identity_worker_ready{{job="{JOB}"}}[1m]) >= {count}'
        while not self.query(expr)["result"]:
            assert time.monotonic() < deadline, f"fewer than {count} scrapes of the worker in {timeout} s"
            time.sleep(0.5)

    def query(self, expr: str) -> dict[str, Any]:
        answer = self.get("/api/v1/query", query=expr)
        assert answer["status"] == "success", f"{expr}: {answer.get('error')}"
        data: dict[str, Any] = answer["data"]
        return data

    def stop(self) -> None:
        terminate(self.process, 20)


def shape_problem(expr: str, data: dict[str, Any]) -> str | None:
    """None when `data` is what `expr` should give on a live worker, else what is wrong.

    Expected: an instant vector with at least one series, every value a finite number, each
    series labelled exactly by the outermost aggregation's `by (…)` (less `le`); an expression
    without one keeps the target's job and instance (or only labels some inner `by` names).
    """
    if data["resultType"] != "vector":
        return f"a {data['resultType']}, not an instant vector"
    series = data["result"]
    if not series:
        return "no data"
    expected = grouping(expr)
    inner = {label.strip() for group in re.findall(r"\bby\s*\(([^)]*)\)", expr) for label in group.split(",")}
    for item in series:
        labels, value = set(item["metric"]) - {"__name__"}, float(item["value"][1])
        if not math.isfinite(value):
            return f"{item['metric']} is {value}"
        if expected is not None and labels != expected:
            return f"labels {sorted(labels)}, expected {sorted(expected)}"
        if expected is None and inner and not labels <= inner - {"le", ""}:
            return f"labels {sorted(labels)} beyond {sorted(inner)}"
        if expected is None and not inner and not {"job", "instance"} <= labels:
            return f"labels {sorted(labels)} without job and instance"
    return None


def checked_expressions() -> list[Expression]:
    """Each side of every alert's comparisons, and every dashboard query."""
    found = []
    for alert in alert_expressions():
        found += [Expression(alert.where, operand) for operand in operands(alert.text)]
    return found + dashboard_expressions()


async def outcome_totals(prometheus: Prometheus, expected: dict[str, float]) -> dict[str, float]:
    """`identity_worker_events_total` by outcome, once it equals `expected` or after 10 s."""
    totals = f'sum by (outcome) (identity_worker_events_total{{job="{JOB}"}})'
    seen: dict[str, float] = {}
    for _ in range(20):  # the last batch's counts reach the next scrape within 1 s
        result = prometheus.query(totals)["result"]
        seen = {item["metric"]["outcome"]: float(item["value"][1]) for item in result}
        if seen == expected:
            break
        await asyncio.sleep(0.5)
    return seen


async def shape_problems(prometheus: Prometheus, expressions: list[Expression]) -> dict[str, str | None]:
    """Each expression's `shape_problem`, queried again every second until none or DEADLINE."""
    problems: dict[str, str | None] = {expr.text: "not queried yet" for expr in expressions}
    deadline = time.monotonic() + DEADLINE
    while any(problems.values()) and time.monotonic() < deadline:
        for text, problem in problems.items():
            if problem is not None:
                problems[text] = shape_problem(text, prometheus.query(text))
        if any(problems.values()):
            await asyncio.sleep(1)
    return problems


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> Store:
    return own_store(database_url, "i16", tmp_path)


@contextlib.contextmanager
def running(stop: Callable[[], object]) -> Iterator[None]:
    try:
        yield
    finally:
        stop()


async def test_every_alert_and_dashboard_expression_returns_data_from_a_real_scrape(
    kafka_bootstrap: str, store: Store, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    started = time.monotonic()
    topics = await new_topics(kafka_bootstrap, unique_topic("i16-scrape"), 2)
    worker = start_worker(tmp_path, "worker", kafka_bootstrap, store.url, topics)
    with running(worker.stop):
        await wait_ready(worker)
        prometheus = Prometheus(tmp_path, worker.metrics_port)
        with running(prometheus.stop):
            prometheus.wait_ready()
            prometheus.wait_for_scrapes(2)  # counters are seen before they move: rates are not 0/0
            now = time.time()
            cases = every_reason(store.acme, store.shop, now)  # every outcome but dead_letter, every reason
            values = [case.value for case in cases] + stream_values(store.acme, 2000, now, unique_tokens=50)
            items = [(f"visitor-{i % 10}".encode(), value, None) for i, value in enumerate(values)]
            inputs = await produce(kafka_bootstrap, topics.raw, items)
            async with Outputs(kafka_bootstrap, topics) as outputs:
                await outputs.wait_for(len(inputs), 60)
            committed = Counter(data["outcome"] for _, _, data in outputs.records)

            # What Prometheus scraped is what the worker committed, outcome by outcome (K1).
            expected = {"enriched": 0.0, "rejected": 0.0, "dead_letter": 0.0}
            expected.update({outcome: float(n) for outcome, n in committed.items()})
            assert await outcome_totals(prometheus, expected) == expected

            expressions = checked_expressions()
            problems = await shape_problems(prometheus, expressions)
            failed = "\n".join(
                f"{e.where}: {e.text}\n  -> {problems[e.text]}" for e in expressions if problems[e.text]
            )
            assert not failed, failed

            # Whole alert expressions evaluate (no many-to-many matching, no type error), and
            # Prometheus's own rule evaluation found every rule healthy.
            for alert in alert_expressions():
                prometheus.query(alert.text)
            rules = prometheus.get("/api/v1/rules")["data"]["groups"]
            health = {r["name"]: (r["health"], r.get("lastError", "")) for g in rules for r in g["rules"]}
            assert health and all(state == "ok" for state, _ in health.values()), health
            # A healthy worker fires nothing (the run is shorter than every `for:`; dead letters
            # fire at once and there are none).
            assert not prometheus.query('ALERTS{alertstate="firing"}')["result"]
            (target,) = prometheus.get("/api/v1/targets")["data"]["activeTargets"]
            assert target["health"] == "up" and target["labels"]["job"] == JOB, target
    print(f"\nreal scrape: {len(expressions)} expressions checked in {time.monotonic() - started:.1f} s")
