"""One batch, from its first fetch to its commit (K1, K2, K4, K5): after Quix Streams' `Checkpoint`.

A `Checkpoint` is made by `Member._collect` under the assignment's generation, filled with the
records fetched (K4), then with what `Decider.decide` made of them and the offsets
`Partitions.offsets` says it commits; `Member._commit` publishes and commits it in one
transaction (exactly_once) or outputs first, offsets after (at_least_once). It is dropped,
and its records fetched again from the committed offsets, when the generation moved (a
revocation, K5) or a recovery is pending (K8) before it commits.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from aiokafka.structs import TopicPartition

from worker.kafka.consumer import Offsets, Record
from worker.ops.metrics import Metrics
from worker.runtime.decide import Decided


@dataclass(slots=True)
class Checkpoint:
    generation: int  # the assignment it was collected under (K5)
    records: dict[TopicPartition, list[Record]] = field(default_factory=dict)
    count: int = 0  # records fetched
    fetch_fault: bool = False  # a fetch failed: nothing fetched at all means back off (K8)
    started: float = 0.0  # `time.perf_counter()` when deciding began (batch_seconds)
    decided: list[Decided] = field(default_factory=list)  # one output per record (K1)
    offsets: Offsets = field(default_factory=dict)  # the next offset per input partition (K2, K11)

    def add(self, fetched: dict[TopicPartition, list[Record]]) -> None:
        records = self.records
        for tp, got in fetched.items():
            records.setdefault(tp, []).extend(got)
            self.count += len(got)

    @property
    def commits(self) -> bool:
        """Something to commit: outputs, or offsets only (past control records, K11)."""
        return bool(self.decided or self.offsets)

    def observe(self, metrics: Metrics) -> None:
        """Once committed: the verdicts, the batch's size and time, each record's delay."""
        decided = self.decided
        verdicts = Counter((item.output.outcome, item.output.reason) for item in decided)
        metrics.count_events(
            {(outcome.value, reason.value if reason else ""): n for (outcome, reason), n in verdicts.items()}
        )
        metrics.batch_size.observe(len(decided))
        metrics.batch_seconds.observe(time.perf_counter() - self.started)
        metrics.observe_delays([item.record.timestamp for item in decided])  # issue 16: delay panel
