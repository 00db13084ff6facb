"""A rewind right after a commit never duplicates (issue 11 item 10, K1, K2, K8).

Right after `commit_transaction()` the group coordinator may still answer the previous
offsets for a few ms (the transaction's markers are written after it returns): a rewind that
read them there redid the batch just committed. The runtime now rewinds to the offsets it
committed itself. Here a fetch fault is marked while each commit is in flight (and the commit
outlasts the fetch backoff), so the rewind runs the moment the commit returns, as in the
duplicate seen; every input must still have exactly one output.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.worker import (
    Outputs,
    in_process_worker,
    new_topics,
    produce_signed,
)
from worker.runtime.checkpoint import Checkpoint
from worker.runtime.recovery import Redo

pytestmark = pytest.mark.integration

ROUNDS = 15


async def test_a_rewind_right_after_each_commit_duplicates_nothing(
    kafka_bootstrap: str,
    unique_topic: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topics = await new_topics(kafka_bootstrap, unique_topic("i11-rewind"), 1)
    inputs: list[tuple[int, int]] = []
    async with (
        in_process_worker(kafka_bootstrap, topics) as member,
        Outputs(kafka_bootstrap, topics) as outputs,
    ):
        commit = Checkpoint.commit
        rewinds = 0

        async def commit_during_a_fetch_fault(checkpoint: Checkpoint, *args: Any, **kwargs: Any) -> None:
            nonlocal rewinds
            member.recovery.need(Redo.REWIND)  # what a fetch fault while this commit is in flight does
            rewinds += 1
            await asyncio.sleep(0.25)  # the commit outlasts the fetch backoff
            await commit(checkpoint, *args, **kwargs)

        monkeypatch.setattr(Checkpoint, "commit", commit_during_a_fetch_fault)
        for round_ in range(ROUNDS):
            inputs += await produce_signed(kafka_bootstrap, topics.raw, f"r{round_}", 3)
            await outputs.wait_for(len(inputs), 30)
            await asyncio.sleep(0.1)
        await outputs.settle(1.5)
    lost, duplicated = outputs.check_exactly_once(inputs)
    print(f"\n{len(inputs)} inputs, {rewinds} rewinds right after a commit: {lost} lost, {duplicated} dup.")
    assert rewinds >= ROUNDS
    assert (lost, duplicated) == (0, 0)
