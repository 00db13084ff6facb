"""The PromQL of the shipped alert rules and dashboard, read from the files themselves.

    alert_expressions() -> [Expression]      every `expr` of deploy/prometheus/alerts.yml
    dashboard_expressions() -> [Expression]  every target `expr` of deploy/grafana/*.json, with
                                             Grafana's variables replaced by what a test scrape uses
    operands(expr) -> [str]                  the sides of its top-level comparison and set
                                             operators (`A > 0.01 and B > 3 * C` -> A, B, 3 * C):
                                             the quantities an alert watches, which must exist
                                             even while it does not fire
    grouping(expr) -> frozenset[str] | None  the labels of its outermost aggregation (`sum by (…)`)

No PromQL parser ships in Debian's Prometheus 2.42 (its HTTP API has no parse_query), so the
split is lexical: strings and bracket depth are respected, which the shipped files need.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy/prometheus/alerts.yml"
DASHBOARD = ROOT / "deploy/grafana/identity-worker.json"
SCRAPE_CONFIG = ROOT / "deploy/prometheus/prometheus.yml"
# What the test scrape substitutes for Grafana's variables (a 1 s scrape: a 1 m window holds 60).
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "${job}": "identity-worker", "$job": "identity-worker"}

_SET_OPERATORS = ("and", "or", "unless")
_COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")
_MODIFIER = re.compile(
    r"^\s*(?:bool\s+)?(?:(?:on|ignoring)\s*\([^)]*\)\s*)?(?:(?:group_left|group_right)\s*(?:\([^)]*\))?\s*)?"
)
_NUMBER = re.compile(r"^\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*$")
_OUTER_AGGREGATION = re.compile(r"^\s*\(?\s*(?:sum|min|max|avg|count)\s*(?:by\s*\(([^)]*)\)\s*)?\(")


@dataclass(frozen=True)
class Expression:
    where: str  # "alert IdentityWorkerStalled", "panel 'Lag' A"
    text: str


def alert_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(ALERTS.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def alert_expressions() -> list[Expression]:
    return [Expression(f"alert {rule['alert']}", rule["expr"].strip()) for rule in alert_rules()]


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    found = []
    for panel in board["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def substitute(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    if "$" in expr:
        raise AssertionError(f"a Grafana variable the scrape test does not know: {expr}")
    return expr


def dashboard_expressions() -> list[Expression]:
    found = []
    for panel in panels(dashboard()):
        for target in panel.get("targets", []):
            where = f"panel {panel['title']!r} {target.get('refId', '')}".rstrip()
            found.append(Expression(where, substitute(target["expr"])))
    return found


def _top_level_splits(expr: str) -> list[tuple[int, int]]:
    """(start, end) of each top-level binary comparison or set operator."""
    spans: list[tuple[int, int]] = []
    depth, i, n = 0, 0, len(expr)
    while i < n:
        char = expr[i]
        if char in "\"'`":
            end = i + 1
            while end < n and expr[end] != char:
                end += 2 if expr[end] == "\\" else 1
            i = end + 1
            continue
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif depth == 0:
            word = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", expr[i:])
            if word:
                if word.group() in _SET_OPERATORS:
                    spans.append((i, i + len(word.group())))
                i += len(word.group())
                continue
            for op in _COMPARISONS:
                if expr.startswith(op, i):
                    spans.append((i, i + len(op)))
                    i += len(op) - 1
                    break
        i += 1
    return spans


def operands(expr: str) -> list[str]:
    """The non-literal sides of `expr`'s top-level comparison and set operators (or `expr` itself)."""
    parts, start = [], 0
    for begin, end in _top_level_splits(expr):
        parts.append(expr[start:begin])
        start = end
    parts.append(expr[start:])
    cleaned = [_MODIFIER.sub("", part, count=1).strip() for part in parts]
    return [part for part in cleaned if part and not _NUMBER.match(part)]


def grouping(expr: str) -> frozenset[str] | None:
    """Labels of the outermost `sum|min|max|avg|count [by (…)]`, less `le`; None without one."""
    inner = re.sub(r"^\s*histogram_quantile\s*\(\s*[0-9.]+\s*,", "", expr)
    match = _OUTER_AGGREGATION.match(inner)
    if match is None:
        return None
    labels = match.group(1) or ""
    return frozenset(label.strip() for label in labels.split(",") if label.strip()) - {"le"}
