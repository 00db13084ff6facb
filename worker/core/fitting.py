"""What an output becomes when it cannot be written as it is (K9). Pure.

An output topic takes records up to its `max.message.bytes`; an output must also have a key on
a compacted topic. The Kafka adapter (`worker.runtime.routing`) measures a record's framing and
gives the JSON value a budget in bytes; this module changes the record only when it must, and
every change is said in the record itself (DESIGN §2.2–§2.4, optional fields):

- `raw_truncated: true`, `raw_bytes`, `raw_sha256`: a rejection or a dead letter whose `raw`
  echo does not fit keeps the longest prefix that does (in its encoding: a prefix of the text,
  or base64 of a prefix of the bytes), with the original value's length and SHA-256 so the
  original can still be recognised. Example: 200 KB of NUL bytes is valid UTF-8 and its echo,
  JSON-escaped, is 1.2 MB.
- An enriched record is never shortened (it is a verified identity: half of one is a lie).
  When it cannot fit it becomes a dead letter (`OutputTooLarge`) carrying the raw event,
  replayable once the topic accepts larger records.
- `headers_dropped: N`: the input's headers (K1) were not carried over, because the record
  could not fit beside them.
- `key_derived: true`: the output's key is `derived_key(source)` instead of the input's key —
  the input had none and the topic is compacted (a compacted topic refuses keyless records), or
  the input's key alone left no room. `topic:partition:offset` names the input record: unique,
  so compaction never removes another record's output, and the same on every redo, so a
  duplicate written by an at_least_once redo is compacted away with its twin.

Outputs that fit pay nothing here: the adapter compares sizes and calls `fit` only beyond them.
"""

from __future__ import annotations

import hashlib
from typing import Final

from worker.core.contracts import Source
from worker.core.reasons import Outcome
from worker.core.records import Output, dead_letter, dumps

# The smallest record budget an output topic must allow (bytes of JSON): a rejection or dead
# letter without its `raw` echo (event_id ≤ 128 characters, bounded detail, 8 traceback frames)
# always fits well within it. A topic allowing less is refused as a misconfiguration.
MIN_OUTPUT_BYTES: Final = 16 * 1024


class OutputTooLarge(Exception):
    """An enriched output larger than its topic accepts: it is published as a dead letter."""


class CannotFit(Exception):
    """Even shortened, the record does not fit the budget (the caller drops headers or the key)."""


def derived_key(source: Source) -> bytes:
    """The key of an output whose input key cannot be used: `topic:partition:offset` (Kafka
    topic names have no colon, so the text is unambiguous)."""
    return f"{source.topic}:{source.partition}:{source.offset}".encode("ascii")


def fit(
    output: Output,
    value: bytes | None,
    budget: int,
    *,
    now: float,
    key_derived: bool = False,
    headers_dropped: int = 0,
) -> Output:
    """`output` as a record whose JSON is at most `budget` bytes, with the notes it needs.

    `value` is the input record's value (what `raw` echoes); `now` is epoch seconds, for a dead
    letter's `processed_at`. An enriched output that does not fit comes back as a dead letter
    (its outcome changes, so its topic and budget do too: the caller fits that again).
    Raises CannotFit when the record without its `raw` echo is still over `budget`.
    """
    record = dict(output.record)
    if key_derived:
        record["key_derived"] = True
    if headers_dropped:
        record["headers_dropped"] = headers_dropped
    fitted = Output(output.outcome, record, output.reason)
    size = len(fitted.to_json())
    if size <= budget:
        return fitted
    if output.outcome is Outcome.ENRICHED:
        source = record.get("source")
        return dead_letter(
            value,
            OutputTooLarge(f"the enriched output is {size} bytes; its topic takes at most {budget}"),
            now=now,
            source=Source(**source) if source else None,
            attempts=1,
        )
    raw = record.get("raw")
    if not isinstance(raw, str) or value is None:
        raise CannotFit(f"{output.outcome.value} output of {size} bytes over a budget of {budget}")
    record.update(
        raw="", raw_truncated=True, raw_bytes=len(value), raw_sha256=hashlib.sha256(value).hexdigest()
    )
    room = budget - len(Output(output.outcome, record).to_json())
    if room < 0:
        raise CannotFit(f"{output.outcome.value} output without raw still over a budget of {budget}")
    record["raw"] = _prefix(raw, room, base64=record.get("raw_encoding") == "base64")
    return Output(output.outcome, record, output.reason)


def _prefix(raw: str, room: int, *, base64: bool) -> str:
    """The longest prefix of `raw` whose JSON string body is at most `room` bytes (roughly).

    base64 text needs no escaping: whole 4-character groups, so it decodes to a prefix of the
    original bytes. Other text: a prefix of characters (never half of a code point, so never a
    lone surrogate), shrunk in proportion to its escaped length until it fits — each try encodes
    at most `room` characters, whatever the size of `raw`.
    """
    if base64:
        return raw[: room // 4 * 4]
    length = min(len(raw), room)
    while length > 0:
        escaped = _escaped_length(raw[:length])
        if escaped <= room:
            return raw[:length]
        length = min(length - 1, length * room // escaped)
    return ""


def _escaped_length(text: str) -> int:
    """Bytes of `text` inside a JSON string as outputs are written (UTF-8, `records.dumps`)."""
    return len(dumps(text)) - 2
