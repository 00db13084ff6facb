"""What a member must redo before its next batch, after a fault (K5, K8): one explicit state.

The state is the set of steps left (`Redo`); a fault adds steps (`need`), the recovery takes
them off as they succeed, in this order:

    NEW_PRODUCER  a new producer with the same transactional id: it ends whatever transaction
                  the old one left open (completed or aborted, K8) and settles the last one
    ASK           the group coordinator's offsets are the truth, not ours: a commit failed and
                  its outcome is unknown (asked once the new producer has settled it); first,
                  no transaction of our producer id may be left open by the broker
                  (worker.kafka.transactions: closed if it was aborted, else not ready)
    SEEK          every owned partition back to the committed offsets (nothing skipped, K1)

The faults and what they need: a batch collected before a revocation or decided while the
state changed, `REWIND` (SEEK); the last transaction not settled before the partitions moved
(K5), `RENEW` (NEW_PRODUCER, SEEK); a failed commit, `resync` (NEW_PRODUCER under
exactly_once, ASK, SEEK).

`failing` is separate: from a failed commit until the next one succeeds the member is not
ready (/readyz), whatever is left to redo (a seek or an answered probe does not count).

Pure bookkeeping: no I/O.
"""

from __future__ import annotations

import enum

from aiokafka.structs import TopicPartition


class Redo(enum.Flag):
    NOTHING = 0
    SEEK = enum.auto()
    NEW_PRODUCER = enum.auto()
    ASK = enum.auto()
    REWIND = SEEK
    RENEW = NEW_PRODUCER | SEEK


class Recovery:
    __slots__ = ("failed", "failing", "left", "resync")

    def __init__(self, *, transactional: bool) -> None:
        self.left = Redo.NOTHING
        self.failing = False
        #: The offsets the last failed commit would have committed (its outcome is unknown).
        self.failed: dict[TopicPartition, int] = {}
        #: What a failed commit needs: exactly_once ends its transaction with a new producer.
        self.resync = Redo.ASK | Redo.SEEK | (Redo.NEW_PRODUCER if transactional else Redo.NOTHING)

    def need(self, steps: Redo) -> None:
        """A fault asks for `steps` before the next batch (added to what is left)."""
        self.left |= steps

    def commit_failed(self, offsets: dict[TopicPartition, int] | None = None) -> None:
        self.left |= self.resync
        self.failing = True
        self.failed = dict(offsets or {})

    def committed(self) -> None:
        self.failing = False

    def producer_renewed(self) -> None:
        self.left &= ~Redo.NEW_PRODUCER

    def done(self) -> None:
        """The partitions were sought back: the next batch starts from the committed offsets."""
        self.left = Redo.NOTHING
        self.failed = {}

    @property
    def pending(self) -> bool:
        """A rewind must happen before any further commit (K1: nothing skipped)."""
        return bool(self.left)

    @property
    def renew_producer(self) -> bool:
        return Redo.NEW_PRODUCER in self.left

    @property
    def ask_coordinator(self) -> bool:
        return Redo.ASK in self.left

    @property
    def clean(self) -> bool:
        """False from a failed commit until the rewind: the batch in hand is redone, not lost."""
        return Redo.ASK not in self.left

    @property
    def healthy(self) -> bool:
        """Nothing to redo and no commit failing: a probe that Kafka answers may say ready."""
        return not self.left and not self.failing
