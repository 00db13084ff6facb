"""Where each output goes and what its topic accepts (K1, K3, K9, K10).

- `Routing`: the output topic by outcome, the output partition from the input partition
  (K3), and what each output topic accepts (`TopicFacts`), read at start, again after a
  failed commit and every `REFRESH_SECONDS`.
- `reshaped`: an output its topic would refuse (too large, keyless on a compacted topic)
  made into one it takes, saying so (K9, `worker.core.fitting`).
- `unusable_output`: an output topic that leaves no room for any output (K10).

The checkpoint (`worker.runtime.checkpoint`) asks these while it builds its record batches.
"""

from __future__ import annotations

import time
from typing import Any, Final

import structlog
from aiokafka.structs import TopicPartition

from worker.core.contracts import Source
from worker.core.fitting import MIN_OUTPUT_BYTES, CannotFit, derived_key, fit
from worker.core.reasons import Outcome
from worker.kafka.clients import producer_max_request_size
from worker.kafka.framing import FRAME, value_budget
from worker.kafka.producer import OutputProducer
from worker.kafka.topics import OutputTopicMissing, OutputTopicUnusable, TopicFacts, existing_topics
from worker.runtime.decide import Decided
from worker.settings import Settings

log = structlog.get_logger(__name__)

# Output topics are read again this often (seconds) even when nothing failed.
REFRESH_SECONDS: Final = 60.0


class Routing:
    """K1/K3: the output topic by outcome; the output partition follows the input partition.

    Output partition = input partition modulo the output topic's partition count, so every
    input partition's outputs stay in one output partition, in input order — for null keys
    too — and a key (which lives in one input partition) keeps its order (K3).

    It also holds what each output topic accepts (`TopicFacts`: partitions, record size,
    compaction), read at start and read again (`prepare`) after any failed commit — the topic
    may have been re-created with fewer partitions, a smaller `max.message.bytes` or
    `cleanup.policy=compact` (K9) — and every `REFRESH_SECONDS`.
    """

    def __init__(self, settings: Settings, facts: dict[str, TopicFacts]) -> None:
        self.settings = settings
        self.topics = {
            Outcome.ENRICHED: settings.enriched_topic,
            Outcome.REJECTED: settings.rejected_topic,
            Outcome.DEAD_LETTER: settings.dlq_topic,
        }
        self.stale = False
        self.problem: str | None = None  # why outputs cannot be written (/readyz), else None
        self._refresh_at = time.monotonic() + REFRESH_SECONDS
        self.update(facts)

    def update(self, facts: dict[str, TopicFacts]) -> None:
        max_request = producer_max_request_size(self.settings)
        self.partition_counts = {topic: fact.partitions for topic, fact in facts.items()}
        # Largest record batch the topic takes (bytes): the broker's limit, and the producer's.
        self.limits = {topic: min(fact.max_message_bytes, max_request) for topic, fact in facts.items()}
        # A record of len(key) + len(value) + headers_bytes at most this fits a batch alone (K9).
        self.room = {topic: limit - FRAME for topic, limit in self.limits.items()}
        self.compacted = frozenset(topic for topic, fact in facts.items() if fact.compacted)
        # Topics whose limit is below the producer's batch size: their batches close early.
        self.batch_caps = {
            topic: limit for topic, limit in self.limits.items() if limit < self.settings.kafka_batch_bytes
        }

    def output_partitions(self) -> list[TopicPartition]:
        """Every partition of every output topic, as last read."""
        return [TopicPartition(topic, p) for topic, n in self.partition_counts.items() for p in range(n)]

    def target(self, decided: Decided) -> tuple[str, int]:
        topic = self.topics[decided.output.outcome]
        return topic, decided.record.partition % self.partition_counts[topic]

    async def prepare(self, producer: OutputProducer) -> None:
        """Before a batch: read the output topics again when stale or due (K9).

        Raises OutputTopicMissing (retriable) while an output topic does not exist, and
        OutputTopicUnusable when one leaves no room for an output.
        """
        if not self.stale and time.monotonic() < self._refresh_at:
            return
        outputs = self.settings.outputs()
        facts = await existing_topics(self.settings, outputs)
        missing = [topic for topic in outputs if topic not in facts]
        if missing:
            self.problem = f"output topic(s) {', '.join(missing)} do not exist"
            raise OutputTopicMissing(self.problem)
        self.problem = unusable_output(self.settings, facts)
        if self.problem is not None:
            raise OutputTopicUnusable(self.problem)
        if self.stale:  # the producer's own view of the partitions must agree with ours
            await producer.refresh_metadata()
        self.update(facts)
        self.stale = False
        self._refresh_at = time.monotonic() + REFRESH_SECONDS


def unusable_output(settings: Settings, facts: dict[str, TopicFacts]) -> str | None:
    """One line when an output topic takes records too small for any output (K10), else None."""
    max_request = producer_max_request_size(settings)
    for topic in settings.outputs():
        fact = facts.get(topic)
        if fact is not None and min(fact.max_message_bytes, max_request) - FRAME < MIN_OUTPUT_BYTES:
            return (
                f"output topic {topic} takes records of at most {fact.max_message_bytes} bytes "
                f"(max.message.bytes); outputs need at least {MIN_OUTPUT_BYTES + FRAME}"
            )
    return None


def reshaped(item: Decided, routing: Routing) -> tuple[Decided, bytes | None, list[Any]]:
    """K9: the output as a record its topic takes — shortened, keyed, headers dropped — saying so.

    In order: the record is shortened beside the input's key and headers (`worker.core.fitting`);
    when even its skeleton does not fit, the headers are dropped, then a long key is replaced by
    the derived one. An enriched output is never shortened: it loses its headers first, and
    becomes a dead letter only when it cannot fit without them. Returns (item, key, headers).
    """
    record = item.record
    source = Source(record.topic, record.partition, record.offset)
    headers = list(record.headers) if record.headers else []
    output = item.output
    for _ in range(2):  # an enriched output may become a dead letter, for another topic
        topic = routing.topics[output.outcome]
        key, key_derived = record.key, False
        if key is None and topic in routing.compacted:
            key, key_derived = derived_key(source), True
        attempts = [(key, key_derived, headers)]
        if headers:
            attempts.append((key, key_derived, []))
        derived = derived_key(source)
        if key is not None and not key_derived and len(key) > len(derived):
            attempts.append((derived, True, []))
        for number, (key, key_derived, kept) in enumerate(attempts, 1):
            budget = value_budget(routing.limits[topic], key, kept)
            enriched = output.outcome is Outcome.ENRICHED
            if enriched and number < len(attempts) and len(output.to_json()) > budget:
                continue  # keep the identity whole: drop what frames it first
            try:
                fitted = fit(
                    output,
                    record.value,
                    budget,
                    now=time.time(),
                    key_derived=key_derived,
                    headers_dropped=len(headers) - len(kept),
                )
            except CannotFit:
                continue
            if fitted.outcome is not output.outcome:
                output = fitted
                break
            truncated = bool(fitted.record.get("raw_truncated"))
            if truncated or len(kept) < len(headers) or fitted.outcome is not item.output.outcome:
                log.warning(  # a derived key alone is the steady state of its topic: not logged
                    "output shortened to fit its topic",
                    topic=topic,
                    source_partition=source.partition,
                    source_offset=source.offset,
                    decided=item.output.outcome.value,
                    outcome=fitted.outcome.value,
                    raw_truncated=truncated,
                    headers_dropped=len(headers) - len(kept),
                    key_derived=key_derived,
                )
            return Decided(record, fitted), key, kept
    topic = routing.topics[item.output.outcome]
    raise OutputTopicUnusable(  # K10: the topic and the sizes, in the one fatal line
        f"an output of {source.topic}:{source.partition}:{source.offset} fits no record of {topic} "
        f"(records of at most {routing.limits[topic]} bytes; max.message.bytes)"
    )
