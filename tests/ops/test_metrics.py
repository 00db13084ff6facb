"""LoopHistogram exposes exactly what prometheus_client's Histogram does (DESIGN §7)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from worker.ops.metrics import VERIFICATION_BUCKETS, LoopHistogram, Metrics

# Values on the bounds themselves are the edge a wrong bisect gets wrong ("le" is inclusive).
amounts = st.one_of(
    st.sampled_from(VERIFICATION_BUCKETS),
    st.floats(min_value=0.0, max_value=5.0, allow_nan=False),
)


def _exposition(registry: CollectorRegistry) -> list[str]:
    """The text format without `_created`, which only the library's histogram has."""
    return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]


@given(st.lists(amounts, max_size=60))
def test_same_exposition_as_prometheus_histogram(values: list[float]) -> None:
    reference_registry, loop_registry = CollectorRegistry(), CollectorRegistry()
    reference = Histogram("t_seconds", "doc", buckets=VERIFICATION_BUCKETS, registry=reference_registry)
    loop = LoopHistogram("t_seconds", "doc", VERIFICATION_BUCKETS, registry=loop_registry)
    for value in values:
        reference.observe(value)
        loop.observe(value)
    assert _exposition(loop_registry) == _exposition(reference_registry)


def test_value_on_a_bound_is_counted_in_that_bucket() -> None:
    registry = CollectorRegistry()
    loop = LoopHistogram("b_seconds", "doc", (0.1, 1.0), registry=registry)
    loop.observe(0.1)
    assert registry.get_sample_value("b_seconds_bucket", {"le": "0.1"}) == 1.0
    assert registry.get_sample_value("b_seconds_count") == 1.0


def test_worker_metrics_expose_verification_seconds() -> None:
    metrics = Metrics()
    metrics.verification_seconds.observe(0.0003)
    metrics.verification_seconds.observe(2.0)
    sample = metrics.registry.get_sample_value
    assert sample("identity_worker_verification_seconds_bucket", {"le": "0.0005"}) == 1.0
    assert sample("identity_worker_verification_seconds_bucket", {"le": "+Inf"}) == 2.0
    assert sample("identity_worker_verification_seconds_sum") == 2.0003


def test_name_clash_is_refused_like_any_collector() -> None:
    registry = CollectorRegistry()
    LoopHistogram("c_seconds", "doc", (1.0,), registry=registry)
    try:
        LoopHistogram("c_seconds", "doc", (1.0,), registry=registry)
    except ValueError as exc:
        assert "Duplicated timeseries" in str(exc)
    else:
        raise AssertionError("a second collector with the same name was accepted")


def test_observe_all_counts_like_observe_one_by_one() -> None:
    one_by_one, all_at_once = CollectorRegistry(), CollectorRegistry()
    single = LoopHistogram("d_seconds", "doc", (0.1, 1.0), registry=one_by_one)
    batch = LoopHistogram("d_seconds", "doc", (0.1, 1.0), registry=all_at_once)
    values = [0.05, 0.1, 0.5, 3.0]
    for value in values:
        single.observe(value)
    batch.observe_all(iter(values))
    assert generate_latest(all_at_once) == generate_latest(one_by_one)


def test_event_delay_is_commit_time_minus_record_timestamp() -> None:
    """(the dashboard's p50/p99 delay): seconds from each record's Kafka timestamp."""
    metrics = Metrics()
    now = 1_800_000_000.0
    # 40 ms, 2 s, a producer clock 1 s ahead (counts as 0), no timestamp (-1: skipped)
    metrics.observe_delays([int(now * 1000) - 40, int(now * 1000) - 2000, int(now * 1000) + 1000, -1], now)
    sample = metrics.registry.get_sample_value
    assert sample("identity_worker_event_delay_seconds_count") == 3.0
    assert sample("identity_worker_event_delay_seconds_bucket", {"le": "0.01"}) == 1.0
    assert sample("identity_worker_event_delay_seconds_bucket", {"le": "0.05"}) == 2.0
    assert sample("identity_worker_event_delay_seconds_bucket", {"le": "2.5"}) == 3.0
    assert abs(sample("identity_worker_event_delay_seconds_sum") - 2.04) < 1e-9


def test_commit_results_exist_before_the_first_commit() -> None:
    """Alerts on aborted commits need the series at 0, not absent, from the start."""
    sample = Metrics().registry.get_sample_value
    assert sample("identity_worker_commits_total", {"result": "committed"}) == 0.0
    assert sample("identity_worker_commits_total", {"result": "aborted"}) == 0.0
