"""The Grafana dashboard has the panels docs/operations.md describes; each of its queries is among those
tests/ops/test_real_scrape.py runs on a real Prometheus scraping a real worker."""

from __future__ import annotations

from tests.support.promql import dashboard, dashboard_expressions, panels


def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    board = dashboard()
    titles = [panel["title"] for panel in panels(board)]
    for wanted in (
        "Throughput by outcome",
        "Rejections by reason",
        "Delay p50 / p99",
        "Consumer lag by partition",
        "Batch commit time p50 / p99",
        "Token cache hit ratio",
        "Store health",
        "CPU per worker (cores)",
        "Memory per worker",
    ):
        assert wanted in titles
    assert len({panel["id"] for panel in panels(board)}) == len(titles)
    assert board["uid"] and board["templating"]["list"][0]["type"] == "datasource"


def test_every_panel_queries_prometheus_through_the_datasource_variable() -> None:
    for panel in panels(dashboard()):
        assert panel["targets"], panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for target in panel["targets"]:
            assert 'job=~"$job"' in target["expr"], f"{panel['title']}: not filtered by the job variable"
    assert len(dashboard_expressions()) == sum(len(panel["targets"]) for panel in panels(dashboard()))
