"""The output records of DESIGN §2.2–§2.4: the one place that builds them (K1: exactly one per
event). Pure.

Each record is a plain dict in the field order of its contract model (`contracts.EnrichedIdentity`,
`Rejection`, `DeadLetter`, the one definition); the enriched record's JSON is assembled with it,
by hand, on the per-event hot path. Tests hold every output to its model, field for field and
in order, and its JSON to the dict byte for byte (tests/support/core.py `validate_output`).

What a record says of its input comes from one `Envelope`: made from the `RawEvent` V1 read, or
from a value V1 refused or a bug stopped (whatever of it can still be read).
"""

from __future__ import annotations

import base64
import functools
import json
import re
import traceback
from dataclasses import dataclass
from typing import Any

import orjson

from worker.core.community import Community
from worker.core.contracts import COMMUNITY_ID_PATTERN, MAX_EVENT_ID_CHARS, RawEvent, Source
from worker.core.jsontext import read_object
from worker.core.mapping import Mapped
from worker.core.reasons import Mode, Outcome, Reason
from worker.core.redaction import redact
from worker.core.times import format_time, format_time_ascii, rfc3339_seconds
from worker.core.verdict import Rejected
from worker.core.verify import VerifiedToken


@dataclass(slots=True)  # not frozen: one per event (a frozen __init__ costs 0.4 µs more); read-only
class Output:
    """One output record: where it goes (by outcome), its JSON and, for metrics, its reason.

    A record is held as a dict (`fields`) or only as its JSON (`rendered`, fields None): an
    enriched record is assembled as bytes and never needs its dict on the way to Kafka, so it
    is made (decoded from the JSON) only when something asks for `record`."""

    outcome: Outcome
    fields: dict[str, Any] | None
    reason: Reason | None = None
    rendered: bytes | None = None  # the record's JSON when it was assembled as JSON
    #: The key whose signature check ran (V7): set on every signed-token verdict from V7 on,
    #: cache hits included, so workers count key usage (L1) without reading the record.
    kid: str | None = None
    #: The event's community_id when the record is held as JSON only (read without decoding it).
    community: str | None = None

    @property
    def record(self) -> dict[str, Any]:
        """The record as a dict, in its contract's field order (a new dict when held as JSON)."""
        if self.fields is not None:
            return self.fields
        assert self.rendered is not None
        record: dict[str, Any] = orjson.loads(self.rendered)
        return record

    @property
    def community_id(self) -> str | None:
        """The record's `community_id` (None when the event could not be read, §2.3)."""
        if self.fields is not None:
            community_id = self.fields.get("community_id")
            return community_id if isinstance(community_id, str) else None
        return self.community

    def to_json(self) -> bytes:
        if self.rendered is not None:
            return self.rendered
        return dumps(self.record)


def dumps(value: Any) -> bytes:
    """`value` as compact RFC 8259 JSON in UTF-8, non-ASCII characters as themselves (not
    `\\u`-escaped): the one encoder of every output (`Output.to_json`, K9's measure in `fitting`).

    orjson: 0.7 µs for an enriched record's fragment where `json` took 5.6. It refuses
    a string holding an unpaired surrogate; none can reach an output (J2: such a string is read
    as an `InvalidText` and refused), but should one ever, it becomes U+FFFD rather than an
    escaped surrogate a strict reader refuses, and no exception escapes the encoding."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return _LONE_SURROGATE.sub("\ufffd", text).encode("utf-8")


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_COMMUNITY_ID = re.compile(COMMUNITY_ID_PATTERN)


def raw_text(value: bytes | None) -> tuple[str | None, str | None]:
    """The original value, replayable: text when it is UTF-8, else base64 (DESIGN §2.3)."""
    if value is None:
        return None, None
    try:
        return value.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(value).decode("ascii"), "base64"


@dataclass(slots=True)  # not frozen: one per event, and a frozen __init__ costs 1 µs more
class Envelope:
    """What every output says of its input: the value as received, its ids and receipt time
    (epoch seconds; None when they cannot be read, §2.3) and where it was read (None offline).
    Read-only by convention."""

    value: bytes | None
    source: Source | None
    event_id: str | None = None
    community_id: str | None = None
    received_at: float | None = None

    @classmethod
    def of(cls, value: bytes, event: RawEvent, received_at: float, source: Source | None) -> Envelope:
        """A value V1 read as `event` (`received_at`: its `received_at` in epoch seconds)."""
        return cls(value, source, event.event_id, event.community_id, received_at)

    @classmethod
    def unreadable(cls, value: bytes | None, source: Source | None) -> Envelope:
        """A value V1 refused, or one a bug stopped: whatever of event_id, community_id and
        received_at can still be read from it."""
        try:
            obj = read_object(value.decode("utf-8")) if value is not None else None
        except UnicodeDecodeError:
            obj = None
        if type(obj) is not dict:
            return cls(value, source)
        event_id = obj.get("event_id")
        if not (isinstance(event_id, str) and 1 <= len(event_id) <= MAX_EVENT_ID_CHARS):
            event_id = None
        community_id = obj.get("community_id")
        if not (isinstance(community_id, str) and _COMMUNITY_ID.fullmatch(community_id)):
            community_id = None
        received = obj.get("received_at")
        try:
            received_at = rfc3339_seconds(received) if isinstance(received, str) else None
        except ValueError:
            received_at = None
        return cls(value, source, event_id, community_id, received_at)


@dataclass(slots=True)  # not frozen: one per token verified (a frozen __init__ costs more); read-only
class Derived:
    """What an enriched output holds besides the envelope, fixed per token and configuration,
    as JSON bytes: `fragment` (`"signed"` … `"mapping_skipped"`), kept by the token cache (C4)
    so a cached token's output is assembled without encoding it again."""

    community: Community  # the configuration it was derived with: a reload makes a new one
    fragment: bytes
    kid: str | None  # the verifying key (Output.kid)


def derive(
    verified: VerifiedToken | None, identity: dict[str, Any], mapped: Mapped, community: Community
) -> Derived:
    """§2.2's `signed` … `mapping_skipped` for an identity (V12's) and its mapping (M1–M6)."""
    verification = (
        {"alg": verified.alg, "kid": verified.kid, "expires_at": format_time(verified.exp)}
        if verified is not None
        else None
    )
    fragment = dumps(
        {
            "signed": verified is not None,
            "verification": verification,
            "identity": identity,
            "identity_group": mapped.identity_group,
            "custom_fields": mapped.custom_fields,
            "mapping_skipped": mapped.skipped,
        }
    )[1:-1]
    kid = verified.kid if verified is not None else None
    return Derived(community, fragment, kid)


# Per-event parts that repeat from event to event whatever the community (a receipt second, an
# input partition), memoized as the bytes an enriched record holds. Nothing keyed by community:
# with events spread over 100 000 communities such a memo misses every time (T6).
_time_text = functools.lru_cache(maxsize=1024)(format_time_ascii)


_NO_SOURCE = (b"null", b"")


@functools.lru_cache(maxsize=1024)
def _source_head(topic: str, partition: int) -> bytes:
    """`source` up to its offset: `{"topic":…,"partition":…,"offset":`."""
    return b'{"topic":%b,"partition":%d,"offset":' % (dumps(topic), partition)


def enriched(envelope: Envelope, derived: Derived, now: float) -> Output:
    """DESIGN §2.2 as its JSON, in the model's field order (`EnrichedIdentity`): the bytes the
    producer is given, without a dict of the record (`Output.record` makes one on demand)."""
    event_id, community_id, source = envelope.event_id, envelope.community_id, envelope.source
    assert event_id is not None and community_id is not None and envelope.received_at is not None
    head, offset = (
        (_source_head(source.topic, source.partition), b"%d}" % source.offset) if source else _NO_SOURCE
    )
    text = (  # format_time's text is plain ASCII with nothing to escape
        b'{"outcome":"enriched","event_id":%b,"community_id":%b,"received_at":"%b",'
        b'"processed_at":"%b",%b,"source":%b%b}'
        % (
            dumps(event_id),
            dumps(community_id),
            _time_text(envelope.received_at),
            format_time_ascii(now),
            derived.fragment,
            head,
            offset,
        )
    )
    # Positional: keywords cost 0.13 µs more per event (Output's fields in order).
    return Output(Outcome.ENRICHED, None, None, text, derived.kid, community_id)


def _echoing(outcome: str, envelope: Envelope, fields: dict[str, Any], now: float) -> dict[str, Any]:
    """A record that echoes its input (§2.3, §2.4): ids first, `fields`, then time, raw and source."""
    raw, encoding = raw_text(envelope.value)
    source = envelope.source
    return {
        "outcome": outcome,
        "event_id": envelope.event_id,
        "community_id": envelope.community_id,
        **fields,
        "processed_at": format_time(now),
        "raw": raw,
        "raw_encoding": encoding,
        "source": source.as_dict() if source else None,
    }


def rejection(
    envelope: Envelope, verdict: Rejected, mode: Mode | None, now: float, kid: str | None = None
) -> Output:
    """DESIGN §2.3: `verdict` on the input `envelope` describes, its action by the community's
    `mode` (`Reason.actions`; None before V3). `kid`: the key used (L1), if not the verdict's."""
    reason, received_at = verdict.reason, envelope.received_at
    fields = {
        "reason": reason.value,
        "detail": verdict.detail,
        "action": reason.actions[mode],
        "received_at": format_time(received_at) if received_at is not None else None,
    }
    record = _echoing("rejected", envelope, fields, now)
    return Output(Outcome.REJECTED, record, reason, kid=kid if kid is not None else verdict.kid)


def unreadable_event(value: bytes | None, problem: str, *, now: float, source: Source | None) -> Output:
    """K9: one `malformed_event` for a record the Kafka client could not decode (`problem`: why,
    one line), echoing whatever of its value could be read."""
    detail = f"the record cannot be decoded: {problem}"
    return rejection(Envelope.unreadable(value, source), Rejected(Reason.MALFORMED_EVENT, detail), None, now)


def dead_letter(
    value: bytes | None, error: BaseException, *, now: float, source: Source | None, attempts: int
) -> Output:
    """DESIGN §2.4: the raw record plus what went wrong, for an unexpected exception (a bug)."""
    frames = traceback.extract_tb(error.__traceback__)[-8:]
    fields = {
        "error_type": type(error).__name__,
        # Exception text may quote data: never a lone surrogate in a record (J2).
        "error_message": redact(str(error))[:1000].encode("utf-8", "backslashreplace").decode("utf-8"),
        "traceback": [f"{frame.filename}:{frame.lineno} in {frame.name}" for frame in frames],
        "attempts": attempts,
    }
    return Output(
        Outcome.DEAD_LETTER, _echoing("dead_letter", Envelope.unreadable(value, source), fields, now)
    )
