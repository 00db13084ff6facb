"""What the worker counts per committed batch (L1, L5), without I/O: key uses, signature failures,
outcomes per community (unconfigured ids under ''), and community-labelled metrics only for the
allow-list (bounded cardinality). The store side is covered by tests/store/test_lifecycle.py
and the whole path by tests/broker/test_usage.py."""

from __future__ import annotations

import gc

import pytest
from prometheus_client import generate_latest

from worker.core.reasons import Outcome, Reason
from worker.core.records import Output
from worker.ops.metrics import Metrics
from worker.runtime.service import CommunitySource, usage_recorder
from worker.runtime.usage_recorder import HealthTally, KeyTally, UsageRecorder
from worker.settings import SettingsError, load_settings

NOW = 1_764_496_800.0 + 125  # 2025-11-30T10:02:05Z: minute 10:02, hour 10:00
CONFIGURED = {"acme", "beta"}


def out(
    community: str | None, reason: Reason | None = None, kid: str | None = None, detail: str = "d"
) -> Output:
    record: dict[str, object] = {"community_id": community}
    if reason is not None:
        record["detail"] = detail
    return Output(Outcome.ENRICHED if reason is None else Outcome.REJECTED, record, reason, kid=kid)


def recorder(**kwargs: object) -> UsageRecorder:
    return UsageRecorder(None, configured=CONFIGURED.__contains__, **kwargs)  # type: ignore[arg-type]


def test_uses_failures_and_outcomes_of_one_batch() -> None:
    usage = recorder()
    usage.count(
        [out("acme", kid="k1")] * 3
        + [out("acme", Reason.EXPIRY_TOO_SOON, "k1", "soon")]  # a use: the signature verified
        + [out("acme", Reason.TOKEN_EXPIRED, "k1")]  # not a use: only proves a past one
        + [
            out("acme", Reason.INVALID_SIGNATURE, "k2", "first"),
            out("acme", Reason.INVALID_SIGNATURE, "k2", "last"),
        ]
        + [out("acme", Reason.UNKNOWN_KID, None)],
        NOW,
    )
    hour, minute = NOW - 125, NOW - 5
    assert usage.keys == {
        ("acme", "k1", hour): KeyTally(4, 0, NOW, None),
        ("acme", "k2", hour): KeyTally(0, 2, None, NOW),
    }
    assert usage.health == {
        ("acme", minute, "enriched", ""): HealthTally(3, None, NOW),
        ("acme", minute, "rejected", "expiry_too_soon"): HealthTally(1, "soon", NOW),
        ("acme", minute, "rejected", "token_expired"): HealthTally(1, "d", NOW),
        ("acme", minute, "rejected", "invalid_signature"): HealthTally(2, "last", NOW),
        ("acme", minute, "rejected", "unknown_kid"): HealthTally(1, "d", NOW),
    }


def test_unconfigured_and_unreadable_communities_share_one_bucket() -> None:
    usage = recorder()
    usage.count(
        [
            out(f"ghost-{i}", Reason.UNKNOWN_COMMUNITY, detail=f"community ghost-{i} is not configured")
            for i in range(500)
        ]
        + [out(None, Reason.MALFORMED_EVENT)],
        NOW,
    )
    assert set(usage.health) == {
        ("", NOW - 5, "rejected", "unknown_community"),
        ("", NOW - 5, "rejected", "malformed_event"),
    }
    assert (
        usage.health[("", NOW - 5, "rejected", "unknown_community")].last_detail
        == "community ghost-499 is not configured"
    )
    assert usage.keys == {}


def test_batches_add_up_in_their_buckets_and_move_to_the_next_minute() -> None:
    usage = recorder()
    usage.count([out("acme", kid="k1")], NOW)
    usage.count([out("acme", kid="k1")] * 2, NOW + 30)
    usage.count([out("acme", kid="k1")], NOW + 60)
    assert usage.keys[("acme", "k1", NOW - 125)] == KeyTally(4, 0, NOW + 60, None)
    assert [t.events for t in usage.health.values()] == [3, 1]


def _source() -> CommunitySource:
    """As `run` has it with the store: a lookup of the configured communities, and a cache."""
    return CommunitySource(lookup={"acme": object(), "beta": object()}, cache=object())  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("allow", "labelled"), [("", set()), ("acme", {"acme"}), ("acme, beta", {"acme", "beta"})]
)
def test_community_labels_only_for_the_allow_list(allow: str, labelled: set[str]) -> None:
    settings = load_settings(database_url="postgresql://identity@127.0.0.1:1/x", metrics_communities=allow)
    metrics = Metrics()
    usage = usage_recorder(settings, _source(), metrics)
    assert usage is not None
    usage.count(
        [
            out("acme", kid="k1"),
            out("beta", Reason.INVALID_SIGNATURE, "k9"),
            out("ghost", Reason.UNKNOWN_COMMUNITY),
        ],
        NOW,
    )
    text = generate_latest(metrics.registry).decode()
    series = {
        line.split('community="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith("identity_worker_community_events_total{")
    }
    assert series == labelled
    assert "identity_worker_usage_dropped_events_total 0.0" in text
    assert "identity_worker_usage_flush_statements_total 0.0" in text
    assert "identity_worker_usage_pending_buckets " in text


def test_counting_can_be_switched_off_and_needs_a_store() -> None:
    off = load_settings(database_url="postgresql://identity@127.0.0.1:1/x", usage_counting=False)
    assert usage_recorder(off, _source(), Metrics()) is None
    no_store = load_settings(config_file="x.yaml")
    assert usage_recorder(no_store, CommunitySource({}), Metrics()) is None


def test_the_allow_list_must_name_community_ids() -> None:
    with pytest.raises(SettingsError, match="metrics_communities"):
        load_settings(metrics_communities="acme,not an id")


def test_a_counting_bug_never_raises_into_the_commit() -> None:
    usage = recorder()
    broken = Output(
        Outcome.REJECTED, {"community_id": "acme"}, Reason.INVALID_SIGNATURE, kid="k1"
    )  # no detail
    usage.count([out("acme", kid="k1"), broken], NOW)
    assert usage.errors == 1 and usage.dropped == 2
    usage.count([out("acme", kid="k1")], NOW)  # the next batch counts again
    assert usage.keys[("acme", "k1", NOW - 125)].verified == 1


def test_counting_events_spread_over_communities_leaves_nothing_for_the_collector() -> None:
    """T6: spread over many communities every event makes new buckets; holding them must not add
    objects the garbage collector tracks (4 an event made it collect every ~2 500 events and walk
    the buckets, while one community's events made it collect almost never)."""
    communities = [f"c{i:05d}" for i in range(4000)]
    usage = UsageRecorder(None, configured=lambda community_id: True)
    outputs = [out(c, kid="k1") for c in communities] + [
        out(c, Reason.INVALID_SIGNATURE, "k2") for c in communities
    ]
    gc.collect()
    gc.disable()
    try:
        before = gc.get_count()[0]
        for start in range(0, len(outputs), 500):
            usage.count(outputs[start : start + 500], NOW)
        made = gc.get_count()[0] - before  # tracked objects made and still alive
    finally:
        gc.enable()
    assert usage.pending == 4 * len(communities)  # per community: 2 outcomes, 2 kids
    # `made` also holds a few hundred per-batch scratch tuples (freed into CPython's free lists,
    # which keep them counted), whatever the number of buckets: far below one per bucket.
    assert made < usage.pending / 8, f"{made} collectable objects kept for {usage.pending} buckets"
