"""Bytes of one raw event + configuration + clock → exactly one output record (K1). Pure.

V1–V3 live here (they need the envelope and the community); V4–V12 in `verify`,
M1–M6 in `mapping`. The only exception that escapes is `ConfigUnavailable` — an outage is
not a verdict (V2, C3, K8); callers retry it. Anything else escaping is a bug, which the
caller turns into a dead letter with `dead_letter`.
"""

from __future__ import annotations

import base64
import json
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import Any, Final

from pydantic import ValidationError

from worker.core.config import Community, CommunityLookup, format_validation_error
from worker.core.contracts import (
    COMMUNITY_ID_PATTERN,
    Action,
    Mode,
    Outcome,
    RawEvent,
    Reason,
    format_time,
    rfc3339_seconds,
)
from worker.core.jsontext import has_surrogate_escape, holds_invalid_text, read_object
from worker.core.mapping import Mapped, apply_mappings
from worker.core.redaction import redact as redact  # runtime/decide.py imports it from here
from worker.core.tokencache import Entry, TokenCache
from worker.core.verdict import Rejected, Step, Trace, failed
from worker.core.verify import (
    VerifiedToken,
    finish_verification,
    read_identity,
    verify_token_signature,
)

DEFAULT_MAX_EVENT_BYTES: Final = 64 * 1024
DEFAULT_MAX_TOKEN_BYTES: Final = 8 * 1024
_COMMUNITY_ID = re.compile(COMMUNITY_ID_PATTERN)
#: The envelope's own fields (DESIGN §2.1): invalid text in them is a malformed_event (J2).
#: `identity` is not one of them: its fields are V12's (invalid_claims); unknown fields are ignored.
ENVELOPE_FIELDS: Final = ("event_id", "community_id", "received_at", "signed_identity", "gateway")


@dataclass(frozen=True, slots=True)
class Limits:
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES


@dataclass(frozen=True, slots=True)
class Source:
    topic: str
    partition: int
    offset: int

    def as_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset}


@dataclass(frozen=True, slots=True)
class Output:
    """One output record: where it goes (by outcome), its JSON and, for metrics, its reason."""

    outcome: Outcome
    record: dict[str, Any]
    reason: Reason | None = None
    rendered: bytes | None = None  # the record's JSON when it was assembled with the record
    #: The key whose signature check ran (V7): set on every signed-token verdict from V7 on,
    #: cache hits included, so workers count key usage (L1) without reading the record.
    kid: str | None = None

    def to_json(self) -> bytes:
        if self.rendered is not None:
            return self.rendered
        return _encode(self.record).encode("ascii")


# ensure_ascii (the default) keeps the bytes valid UTF-8 even for lone surrogates a payload may carry.
_encode = json.JSONEncoder(separators=(",", ":")).encode
# What `_encode` does to a str, without its Python-level dispatch (per-event strings).
_encode_str: Callable[[str], str] = encode_basestring_ascii


DEFAULT_LIMITS: Final = Limits()


def read_event(value: bytes | None, limits: Limits = DEFAULT_LIMITS) -> RawEvent | str:
    """V1: a UTF-8 JSON object (J1–J4) within the size limit that matches DESIGN §2.1; else
    why not (the malformed_event's detail)."""
    if value is None:
        return "the record has no value"
    if len(value) > limits.max_event_bytes:
        return f"value is {len(value)} bytes; at most {limits.max_event_bytes} allowed"
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"value is not UTF-8 (byte {exc.start})"
    obj = read_object(text)  # J1–J4; pydantic's parser would let NaN and Infinity through
    if type(obj) is not dict:
        return f"value is {obj}"
    if has_surrogate_escape(text):  # J2: the envelope's own fields hold text, or nothing
        for name in ENVELOPE_FIELDS:
            if holds_invalid_text(obj.get(name)):
                return f"{name}: not valid Unicode (unpaired surrogate, J2)"
    try:
        return RawEvent.model_validate(obj)
    except ValidationError as exc:
        return "; ".join(format_validation_error(exc)[:3])


def process_event(
    value: bytes | None,
    *,
    lookup: CommunityLookup,
    now: float,
    source: Source | None = None,
    limits: Limits = DEFAULT_LIMITS,
    token_cache: TokenCache | None = None,
    trace: Trace = None,
) -> Output:
    """Decide one raw event. `now` is the processing clock in epoch seconds.

    With a `trace` (`token verify`), each rule run is written to it as it runs."""
    event = read_event(value, limits)
    if type(event) is str:
        if trace is not None:
            trace.append(Step("V1", False, f"{Reason.MALFORMED_EVENT}: {event}"))
        return _malformed(value, event, source, now)
    assert isinstance(event, RawEvent) and value is not None
    received_at = rfc3339_seconds(event.received_at)  # parsed once, by V1's validation
    if trace is not None:
        trace.append(Step("V1", True, f"event {event.event_id!r}, received_at {event.received_at}"))

    # V2: the community exists (an unreachable store raises ConfigUnavailable: no verdict).
    community = lookup.get(event.community_id)
    if community is None:
        unknown = Rejected(Reason.UNKNOWN_COMMUNITY, f"community {event.community_id} is not configured")
        return _refused(value, event, received_at, failed(trace, "V2", unknown), None, source, now)
    if trace is not None:
        trace.append(Step("V2", True, f"community {community.id}"))

    # V3: the community's mode; from here on the action follows it (`Reason.action`).
    mode = community.mode
    signed = event.signed_identity is not None
    if community.mode is Mode.REQUIRE and not signed:
        unsigned = Rejected(Reason.SIGNATURE_REQUIRED, f"community {community.id} requires a signed identity")
        return _refused(value, event, received_at, failed(trace, "V3", unsigned), mode, source, now)
    if community.mode is Mode.REJECT and signed:
        refused = Rejected(
            Reason.SIGNED_IDENTITY_REJECTED, f"community {community.id} does not accept signed identities"
        )
        return _refused(value, event, received_at, failed(trace, "V3", refused), mode, source, now)
    if trace is not None:
        trace.append(Step("V3", True, f"community {community.id} is in {community.mode} mode"))

    if event.signed_identity is not None:
        entry = key = None
        if token_cache is not None:
            key = TokenCache.key(community.id, event.signed_identity)
            entry = token_cache.entry(key, community.keys_version, now)
        if entry is not None:  # C4: seen before, signature and claims already established
            verified = entry.verified
        else:
            checked = verify_token_signature(event.signed_identity, community, limits.max_token_bytes, trace)
            if isinstance(checked, Rejected):  # failures are never cached: they go the whole way
                return _refused(value, event, received_at, checked, mode, source, now)
            verified = checked
            if token_cache is not None and key is not None:
                token_cache.put(key, community.keys_version, verified)
        identity = finish_verification(
            verified, received_at=received_at, now=now, community=community, trace=trace
        )
        if isinstance(identity, Rejected):  # V9/V10 (and V11/V12) run on every event, cached or not
            return _refused(value, event, received_at, identity, mode, source, now, verified.kid)
        if entry is not None:  # memoized from the second sighting on: a one-off token keeps no more
            return _enriched_from_cache(entry, identity, community, event, received_at, now, source)
        return _enriched(event, received_at, now, source, _derive(verified, identity, community))
    assert event.identity is not None  # RawEvent guarantees exactly one of the two
    plain = read_identity(event.identity)
    if isinstance(plain, Rejected):
        return _refused(value, event, received_at, failed(trace, "V12", plain), mode, source, now)
    return _enriched(event, received_at, now, source, _derive(None, plain, community))


@dataclass(frozen=True, slots=True)
class Derived:
    """What an enriched output holds besides the event's own fields: fixed per token and config.

    `fragment` is that part as output JSON (from `"signed"` to `"mapping_skipped"`), so a cached
    token's output is assembled without encoding its identity again. Its dicts may be shared by
    several outputs of one cached token: output records are read-only.
    """

    community: Community
    signed: bool
    verification: dict[str, Any] | None
    identity: dict[str, Any]
    mapped: Mapped
    fragment: str
    kid: str | None  # the verifying key (Output.kid)


def _derive(verified: VerifiedToken | None, identity: dict[str, Any], community: Community) -> Derived:
    verification = (
        {"alg": verified.alg, "kid": verified.kid, "expires_at": format_time(verified.exp)}
        if verified is not None
        else None
    )
    mapped = apply_mappings(identity, community)
    fragment = _encode(
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
    return Derived(community, verified is not None, verification, identity, mapped, fragment, kid)


def _enriched_from_cache(
    entry: Entry,
    identity: dict[str, Any],
    community: Community,
    event: RawEvent,
    received_at: float,
    now: float,
    source: Source | None,
) -> Output:
    derived = entry.rendered
    if derived is None or derived.community is not community:  # first use, or the config was reloaded
        derived = entry.rendered = _derive(entry.verified, identity, community)
    return _enriched(event, received_at, now, source, derived)


def _enriched(
    event: RawEvent, received_at: float, now: float, source: Source | None, derived: Derived
) -> Output:
    """DESIGN §2.2, built as the record and as its JSON at once (same keys, same order)."""
    received, processed = format_time(received_at), format_time(now)
    mapped = derived.mapped
    record = {
        "outcome": "enriched",
        "event_id": event.event_id,
        "community_id": event.community_id,
        "received_at": received,
        "processed_at": processed,
        "signed": derived.signed,
        "verification": derived.verification,
        "identity": derived.identity,
        "identity_group": mapped.identity_group,
        "custom_fields": mapped.custom_fields,
        "mapping_skipped": mapped.skipped,
        "source": source.as_dict() if source else None,
    }
    where = (
        f'{{"topic":{_encode_str(source.topic)},"partition":{source.partition:d},"offset":{source.offset:d}}}'
        if source
        else "null"
    )
    text = (  # format_time's text is plain ASCII with nothing to escape
        f'{{"outcome":"enriched","event_id":{_encode_str(event.event_id)},'
        f'"community_id":{_encode_str(event.community_id)},"received_at":"{received}",'
        f'"processed_at":"{processed}",{derived.fragment},"source":{where}}}'
    )
    return Output(Outcome.ENRICHED, record, rendered=text.encode("ascii"), kid=derived.kid)


# ---------------------------------------------------------------- rejections and dead letters


def raw_text(value: bytes | None) -> tuple[str | None, str | None]:
    """The original value, replayable: text when it is UTF-8, else base64 (DESIGN §2.3)."""
    if value is None:
        return None, None
    try:
        return value.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(value).decode("ascii"), "base64"


def _readable_envelope(value: bytes | None) -> tuple[str | None, str | None, float | None]:
    """Whatever of event_id, community_id and received_at can still be read from a bad event."""
    if value is None:
        return None, None, None
    try:
        obj = read_object(value.decode("utf-8"))
    except UnicodeDecodeError:
        return None, None, None
    if type(obj) is not dict:
        return None, None, None
    event_id = obj.get("event_id")
    if not (isinstance(event_id, str) and 1 <= len(event_id) <= 128):
        event_id = None
    community_id = obj.get("community_id")
    if not (isinstance(community_id, str) and _COMMUNITY_ID.fullmatch(community_id)):
        community_id = None
    received = obj.get("received_at")
    try:
        received_at = rfc3339_seconds(received) if isinstance(received, str) else None
    except ValueError:
        received_at = None
    return event_id, community_id, received_at


def _malformed(value: bytes | None, detail: str, source: Source | None, now: float) -> Output:
    event_id, community_id, received_at = _readable_envelope(value)
    return _rejection(
        value, event_id, community_id, received_at, Reason.MALFORMED_EVENT, detail, Action.BLOCK, source, now
    )


def unreadable_event(value: bytes | None, problem: str, *, now: float, source: Source | None) -> Output:
    """K9: one `malformed_event` for a record the Kafka client could not decode (`problem`: why,
    one line), echoing whatever of its value could be read."""
    return _malformed(value, f"the record cannot be decoded: {problem}", source, now)


def _refused(
    value: bytes,
    event: RawEvent,
    received_at: float,
    verdict: Rejected,
    mode: Mode | None,
    source: Source | None,
    now: float,
    kid: str | None = None,
) -> Output:
    return _rejection(
        value,
        event.event_id,
        event.community_id,
        received_at,
        verdict.reason,
        verdict.detail,
        verdict.reason.action(mode),
        source,
        now,
        kid if kid is not None else verdict.kid,
    )


def _rejection(
    value: bytes | None,
    event_id: str | None,
    community_id: str | None,
    received_at: float | None,
    reason: Reason,
    detail: str,
    action: Action,
    source: Source | None,
    now: float,
    kid: str | None = None,
) -> Output:
    raw, encoding = raw_text(value)
    record = {
        "outcome": "rejected",
        "event_id": event_id,
        "community_id": community_id,
        "reason": reason.value,
        "detail": detail,
        "action": action.value,
        "received_at": format_time(received_at) if received_at is not None else None,
        "processed_at": format_time(now),
        "raw": raw,
        "raw_encoding": encoding,
        "source": source.as_dict() if source else None,
    }
    return Output(Outcome.REJECTED, record, reason, kid=kid)


def dead_letter(
    value: bytes | None, error: BaseException, *, now: float, source: Source | None, attempts: int
) -> Output:
    """DESIGN §2.4: the raw record plus what went wrong, for an unexpected exception (a bug)."""
    event_id, community_id, _ = _readable_envelope(value)
    raw, encoding = raw_text(value)
    frames = traceback.extract_tb(error.__traceback__)[-8:]
    record = {
        "outcome": "dead_letter",
        "event_id": event_id,
        "community_id": community_id,
        "error_type": type(error).__name__,
        # Exception text may quote data: never a lone surrogate in a record (J2).
        "error_message": redact(str(error))[:1000].encode("utf-8", "backslashreplace").decode("utf-8"),
        "traceback": [f"{frame.filename}:{frame.lineno} in {frame.name}" for frame in frames],
        "attempts": attempts,
        "processed_at": format_time(now),
        "raw": raw,
        "raw_encoding": encoding,
        "source": source.as_dict() if source else None,
    }
    return Output(Outcome.DEAD_LETTER, record)
