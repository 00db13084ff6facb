"""The decider (worker/runtime/decide.py) on a batch, with no broker and no database: what it
decides for valid events, an unknown community (V2's double check against the store), a store
that cannot answer (a wait, never a verdict: V2, C3, K8, K10) and a record whose processing
raises (a dead letter, the others go on: K9, DESIGN §2.4).

The store is the decider's two parameters: the community lookup the pipeline reads (a dict for
offline use, the store cache in `run`) and `recheck_community`. `decide_batch` hands one
partition's batch to `Decider.decide`, as the member does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from tests.support.core import NOW, acme_config, acme_lookup, event, make_token, validate_output
from worker.core.community import Community, ConfigUnavailable
from worker.core.pipeline import DEFAULT_LIMITS, Output
from worker.ops.metrics import Metrics
from worker.runtime.decide import Decider, pipeline_processor

WAITS = "waits"  # what `decide_batch` gives for a record that must wait: no verdict


@dataclass
class Store:
    """The store as the decider sees it: what is cached, what PostgreSQL holds, and whether
    PostgreSQL answers. A community only in `stored` has not reached the cache yet (C1)."""

    cached: dict[str, Community]
    stored: dict[str, Community] = field(default_factory=dict)
    down: bool = False
    rechecked: list[str] = field(default_factory=list)

    def get(self, community_id: str, /) -> Community | None:
        found = self.cached.get(community_id)
        if found is None and self.down:
            raise ConfigUnavailable("PostgreSQL cannot be reached")
        return found

    async def recheck(self, community_id: str) -> bool:
        self.rechecked.append(community_id)
        if self.down:
            raise OSError("connection refused")  # what asyncpg raises: the decider must classify it
        if community_id in self.stored:
            self.cached[community_id] = self.stored[community_id]
            return True
        return False


def decider(store: Store, processor: Callable[..., Output] | None = None) -> Decider:
    return Decider(
        processor or pipeline_processor(store, DEFAULT_LIMITS, None),
        metrics=Metrics(),
        max_attempts=3,
        recheck_community=store.recheck,
        clock=lambda: NOW,
    )


async def decide_batch(decider: Decider, values: list[bytes]) -> list[Output | str]:
    """One verdict per record, in order, or WAITS for the record where its partition must wait
    (it and the rest of the partition are fetched and decided again later)."""
    records = [
        ConsumerRecord("raw", 0, offset, 0, 0, None, value, None, 0, len(value), ())
        for offset, value in enumerate(values)
    ]
    decided, waiting = await decider.decide({TopicPartition("raw", 0): records})
    outputs: list[Output | str] = [d.output for d in decided]
    assert [d.record.offset for d in decided] == list(range(len(decided)))  # K3: in order
    if waiting:
        assert waiting[TopicPartition("raw", 0)].offset == len(decided)
        outputs.append(WAITS)
    return outputs


def verdicts(decided: list[Output | str]) -> list[str]:
    """`enriched`, the rejection reason, `dead_letter` or WAITS, per record."""
    return [d if isinstance(d, str) else (d.reason.value if d.reason else d.outcome.value) for d in decided]


def acme() -> dict[str, Community]:
    return acme_lookup()


async def test_a_batch_of_valid_events_is_enriched_in_order() -> None:
    store = Store(acme())
    values = [event(make_token(), event_id=f"e-{i}") for i in range(3)]
    decided = await decide_batch(decider(store), values)
    assert verdicts(decided) == ["enriched"] * 3
    assert [validate_output(d)["event_id"] for d in decided if not isinstance(d, str)] == [
        "e-0",
        "e-1",
        "e-2",
    ]
    assert store.rechecked == []  # a known community needs no double check


async def test_an_unknown_community_is_rejected_once_the_store_confirms_it_does_not_exist() -> None:
    store = Store(acme())
    decided = await decide_batch(
        decider(store), [event(make_token(), community_id="ghost"), event(make_token())]
    )
    assert verdicts(decided) == ["unknown_community", "enriched"]
    assert store.rechecked == ["ghost"]  # V2: checked against the store before it is published


async def test_a_community_created_a_moment_ago_is_found_by_the_double_check() -> None:
    """V2, C2: the community is in PostgreSQL but not yet in the cache."""
    newco = acme_lookup(id="newco")
    store = Store(acme(), stored=newco)
    decided = await decide_batch(decider(store), [event(make_token(), community_id="newco")])
    assert verdicts(decided) == ["enriched"]
    assert store.rechecked == ["newco"]


@pytest.mark.parametrize("community_id", ["ghost", "acme"])
async def test_with_the_store_down_an_uncached_community_waits_and_a_cached_one_is_decided(
    community_id: str,
) -> None:
    """V2, C3, K8, K10: an event of an uncached community waits (no verdict, not even
    unknown_community) and holds back the rest of its partition (K9); the cached community is
    served from the cache."""
    store = Store(acme(), down=True)
    values = [event(make_token()), event(make_token(), community_id=community_id), event(make_token())]
    decided = await decide_batch(decider(store), values)
    assert verdicts(decided) == (["enriched", WAITS] if community_id == "ghost" else ["enriched"] * 3)


async def test_a_double_check_that_cannot_reach_the_store_waits() -> None:
    """K10: the store adapter's own exception (here OSError) is infrastructure, not a verdict:
    the cache says "no such community" but the double check cannot ask PostgreSQL."""

    class Unreachable(Store):
        async def recheck(self, community_id: str) -> bool:
            self.rechecked.append(community_id)
            raise OSError("connection refused")

    store = Unreachable(acme())
    decided = await decide_batch(
        decider(store), [event(make_token()), event(make_token(), community_id="ghost")]
    )
    assert verdicts(decided) == ["enriched", WAITS]
    assert store.rechecked == ["ghost"]


async def test_a_record_whose_processing_raises_becomes_a_dead_letter_and_the_batch_goes_on() -> None:
    """K9, DESIGN §2.4: tried `max_attempts` times, then a dead letter; the next record is decided."""
    store = Store(acme())
    production = pipeline_processor(store, DEFAULT_LIMITS, None)
    calls: list[int] = []

    def poison_at_offset_0(value: bytes | None, source: Any, now: float) -> Output:
        calls.append(source.offset)
        if source.offset == 0:
            raise ValueError("a bug")
        return production(value, source, now)

    decided = await decide_batch(
        decider(store, poison_at_offset_0), [event(make_token()), event(make_token())]
    )
    assert verdicts(decided) == ["dead_letter", "enriched"]
    assert calls == [0, 0, 0, 1]
    dead = decided[0]
    assert not isinstance(dead, str) and dead.record["error_type"] == "ValueError"


async def test_a_large_batch_lets_the_event_loop_run_every_few_milliseconds() -> None:
    """T1: deciding yields to the loop by time, not only every so many records: 200 records
    of 1 ms of CPU each never hold the loop more than a few milliseconds (the loop's thread
    time between two ticks of a probe, so a busy machine's waits for a core do not count)."""
    store = Store(acme_config())
    pipeline = pipeline_processor(store, DEFAULT_LIMITS, None)

    def slow(value: bytes | None, source: Any, now: float) -> Output:
        spin_until = time.thread_time() + 0.001  # a record that costs 1 ms of CPU
        while time.thread_time() < spin_until:
            pass
        return pipeline(value, source, now)

    held: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        while not done.is_set():
            before = time.thread_time()
            await asyncio.sleep(0)
            held.append(time.thread_time() - before)

    token = make_token()
    probing = asyncio.create_task(probe())
    outputs = await decide_batch(decider(store, slow), [event(token)] * 200)
    done.set()
    await probing
    assert len(outputs) == 200 and all(isinstance(o, Output) for o in outputs)
    assert len(held) >= 20, "the loop hardly ran while the batch was decided"
    assert max(held) < 0.025, f"the loop was held {max(held) * 1000:.0f} ms in one piece"
