"""The configuration cache's counters are served as metrics (DESIGN §7; C1–C3, T1, V2): each
`CacheStats` field has its `identity_worker_config_*` series, read at scrape time."""

from __future__ import annotations

import dataclasses

from worker.ops.metrics import Metrics
from worker.runtime.service import CommunitySource
from worker.store.cache import ConfigCache


def test_every_cache_counter_is_a_metric() -> None:
    cache = ConfigCache("postgresql://nobody@127.0.0.1:1/none")  # never started: no I/O
    metrics = Metrics()
    CommunitySource(cache, cache).export_stats(metrics)
    fields = [field.name for field in dataclasses.fields(cache.stats)]
    for n, name in enumerate(fields, start=1):
        setattr(cache.stats, name, 100 + n)  # a distinct value each, set after the export: read live
    text = metrics.registry.collect()
    served = {
        sample.value
        for family in text
        if family.name.startswith("identity_worker_config_")
        for sample in family.samples
    }
    assert {100 + n for n in range(1, len(fields) + 1)} <= served, fields
    sample = metrics.registry.get_sample_value
    assert sample("identity_worker_config_full_reads_total") == 100 + fields.index("full_reloads") + 1
    assert sample("identity_worker_config_last_read_rows") == 100 + fields.index("last_refresh_rows") + 1
    assert sample("identity_worker_config_communities") == 0


def test_without_a_store_no_cache_metric_is_served() -> None:
    metrics = Metrics()
    CommunitySource({}).export_stats(metrics)
    assert not [f for f in metrics.registry.collect() if f.name.startswith("identity_worker_config_")]
