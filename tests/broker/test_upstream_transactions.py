"""Upstream transactions written by the Kafka Java client (issue 11 items 5 and 6, K11).

The input is read `read_committed` in every mode, so an aborted transaction is never
answered; the committed offsets move past the transaction markers, so a drained group shows
lag 0 to `kafka-consumer-groups` (the Java admin API, as that tool computes it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tests.support.java_peer import JavaPeer
from tests.support.worker import Outputs, in_process_worker, new_topics, signed_events

pytestmark = pytest.mark.integration


async def test_at_least_once_never_answers_an_aborted_upstream_transaction(
    kafka_bootstrap: str, unique_topic: Callable[[str], str], java_peer: JavaPeer
) -> None:
    """Item 5: 6 records in an aborted transaction, then 2 in a committed one: only the 2 are
    answered, in at_least_once mode too (K11)."""
    topics = await new_topics(kafka_bootstrap, unique_topic("i11-aborted"), 1)
    java_peer.transactions(
        kafka_bootstrap,
        topics.raw,
        [(0, False, signed_events("aborted", 6)), (0, True, signed_events("committed", 2))],
    )
    async with (
        in_process_worker(kafka_bootstrap, topics, guarantee="at_least_once"),
        Outputs(kafka_bootstrap, topics) as outputs,
    ):
        await outputs.wait_for(2, 30)
        await outputs.settle(2.0)
    assert [data["event_id"] for _, _, data in outputs.records] == ["committed-0", "committed-1"]
    # offsets 0-5 aborted, 6 the abort marker, 7-8 committed, 9 the commit marker
    assert sorted(outputs.by_source) == [(0, 7), (0, 8)]


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
async def test_a_drained_group_shows_lag_0_after_upstream_transactions(
    kafka_bootstrap: str,
    unique_topic: Callable[[str], str],
    java_peer: JavaPeer,
    guarantee: str,
) -> None:
    """Item 6: after committed and aborted upstream transactions on two partitions, the group's
    committed offsets reach the log end (past the markers): lag 0 (K11)."""
    topics = await new_topics(kafka_bootstrap, unique_topic("i11-lag"), 2)
    java_peer.transactions(
        kafka_bootstrap,
        topics.raw,
        [
            (0, True, signed_events("p0", 3)),
            (1, False, signed_events("p1", 2)),
            (1, True, signed_events("p1c", 1)),
        ],
    )
    async with (
        in_process_worker(kafka_bootstrap, topics, guarantee=guarantee),
        Outputs(kafka_bootstrap, topics) as outputs,
    ):
        await outputs.wait_for(4, 30)
        lag = await asyncio.to_thread(java_peer.lag, kafka_bootstrap, topics.raw, topics.raw, 20)
    # partition 0: records 0-2, marker 3; partition 1: aborted 0-1, marker 2, record 3, marker 4
    assert lag == {0: (4, 4, 0), 1: (5, 5, 0)}
    assert sorted(outputs.by_source) == [(0, 0), (0, 1), (0, 2), (1, 3)]
