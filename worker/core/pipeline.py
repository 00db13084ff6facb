"""Bytes of one raw event + configuration + clock → exactly one output record (K1). Pure.

V1–V3 live here (they need the envelope and the community) and the composition of the rest:
V4–V12 in `verify`, the token cache in `tokencache` (C4), M1–M6 in `mapping`, the records
themselves in `records`. The only exception that escapes is `ConfigUnavailable` — an outage is
not a verdict (V2, C3, K8); callers retry it. Anything else escaping is a bug, which the
caller turns into a dead letter with `records.dead_letter`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from pydantic import ValidationError

from worker.core.community import Community, CommunityLookup
from worker.core.contracts import COMMUNITY_ID_PATTERN, MAX_EVENT_ID_CHARS, RawEvent, Source
from worker.core.diagnostics import noted
from worker.core.jsontext import has_surrogate_escape, holds_invalid_text, read_object
from worker.core.mapping import apply_mappings
from worker.core.problems import format_validation_error
from worker.core.reasons import Mode, Reason
from worker.core.records import Derived, Envelope, Output, derive, enriched, rejection
from worker.core.times import rfc3339_seconds
from worker.core.tokencache import TokenCache
from worker.core.verdict import NO_TRACE, Rejected, Trace
from worker.core.verify import VerifiedToken, finish_verification, read_identity, verify_token_signature

DEFAULT_MAX_EVENT_BYTES: Final = 64 * 1024
DEFAULT_MAX_TOKEN_BYTES: Final = 8 * 1024
#: The envelope's own fields (DESIGN §2.1): invalid text in them is a malformed_event (J2).
#: `identity` is not one of them: its fields are V12's (invalid_claims); unknown fields are ignored.
ENVELOPE_FIELDS: Final = ("event_id", "community_id", "received_at", "signed_identity", "gateway")


@dataclass(frozen=True, slots=True)
class Limits:
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES


DEFAULT_LIMITS: Final = Limits()


@dataclass(slots=True)  # one per event: not frozen (a frozen __init__ costs more); read-only
class Event:
    """A raw event V1 accepted (DESIGN §2.1, the `RawEvent` model): the fields the pipeline reads."""

    event_id: str
    community_id: str
    received_at: str
    identity: dict[Any, Any] | None
    signed_identity: str | None


_COMMUNITY_ID = re.compile(COMMUNITY_ID_PATTERN)


def plain_event(obj: dict[Any, Any], text_names: bool = False) -> Event | None:
    """The event `RawEvent.model_validate(obj)` accepts, read without pydantic (3 µs of it) when
    every field is plainly valid; None when any needs the model's judgement (or its message).
    `text_names`: the reader vouches that every member name is a `str` (the text held no
    escaped surrogate, so no name is an `InvalidText`, J2): the gateway's names are not looked at.

    Accepts a subset of what the model accepts, with the same values: the property test holds
    the two to each other (tests/core/test_properties.py)."""
    event_id = obj.get("event_id")
    community_id = obj.get("community_id")
    received_at = obj.get("received_at")
    signed = obj.get("signed_identity")
    identity = obj.get("identity")
    gateway = obj.get("gateway")
    if not (
        type(event_id) is str
        and 0 < len(event_id) <= MAX_EVENT_ID_CHARS
        and type(community_id) is str
        and _COMMUNITY_ID.fullmatch(community_id)
        and type(received_at) is str
        and ((type(signed) is str and identity is None) or (signed is None and type(identity) is dict))
        and (
            gateway is None
            or (type(gateway) is dict and (text_names or all(type(name) is str for name in gateway)))
        )
    ):
        return None
    try:
        rfc3339_seconds(received_at)  # memoized: the pipeline's own call is then a lookup
    except ValueError:
        return None
    return Event(event_id, community_id, received_at, identity, signed)


def read_event(value: bytes | None, limits: Limits = DEFAULT_LIMITS) -> Event | str:
    """V1: a UTF-8 JSON object (J1–J4) within the size limit that matches DESIGN §2.1 (the
    `RawEvent` model); else why not (the malformed_event's detail)."""
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
    escaped = has_surrogate_escape(text)
    if escaped:  # J2: the envelope's own fields hold text, or nothing
        for name in ENVELOPE_FIELDS:
            if holds_invalid_text(obj.get(name)):
                return f"{name}: not valid Unicode (unpaired surrogate, J2)"
    plain = plain_event(obj, text_names=not escaped)
    if plain is not None:
        return plain
    try:
        event = RawEvent.model_validate(obj)
    except ValidationError as exc:
        return "; ".join(format_validation_error(exc)[:3])
    return Event(event.event_id, event.community_id, event.received_at, event.identity, event.signed_identity)


def process_event(
    value: bytes | None,
    *,
    lookup: CommunityLookup,
    now: float,
    source: Source | None = None,
    limits: Limits = DEFAULT_LIMITS,
    token_cache: TokenCache | None = None,
    trace: Trace = NO_TRACE,
) -> Output:
    """Decide one raw event. `now` is the processing clock in epoch seconds.

    Each rule run is written to `trace` as it runs (`token verify`; `NO_TRACE` records nothing)."""
    event = read_event(value, limits)
    if type(event) is str:
        malformed = Rejected(Reason.MALFORMED_EVENT, event)
        return rejection(Envelope.unreadable(value, source), trace.failed("V1", malformed), None, now)
    assert type(event) is Event and value is not None
    received_at = rfc3339_seconds(event.received_at)  # parsed once, by V1's validation
    envelope = Envelope(value, source, event.event_id, event.community_id, received_at)
    trace.passed("V1", "event {!r}, received_at {}", event.event_id, event.received_at)

    # V2: the community exists (an unreachable store raises ConfigUnavailable: no verdict).
    community = lookup.get(event.community_id)
    if community is None:
        unknown = Rejected(Reason.UNKNOWN_COMMUNITY, f"community {event.community_id} is not configured")
        return rejection(envelope, trace.failed("V2", unknown), None, now)
    trace.passed("V2", "community {}", community.id)

    # V3: the community's mode; from here on the action follows it (`Reason.actions`).
    mode = community.mode
    signed = event.signed_identity is not None
    if mode is Mode.REQUIRE and not signed:
        unsigned = Rejected(Reason.SIGNATURE_REQUIRED, f"community {community.id} requires a signed identity")
        return rejection(envelope, trace.failed("V3", unsigned), mode, now)
    if mode is Mode.REJECT and signed:
        refused = Rejected(
            Reason.SIGNED_IDENTITY_REJECTED, f"community {community.id} does not accept signed identities"
        )
        return rejection(envelope, trace.failed("V3", refused), mode, now)
    trace.passed("V3", "community {} is in {} mode", community.id, mode)

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
                # L4: the integrator's likely mistake goes into the stored detail (Health, report).
                why = noted(
                    checked,
                    event.signed_identity,
                    community,
                    received_at=received_at,
                    now=now,
                    max_token_bytes=limits.max_token_bytes,
                )
                return rejection(envelope, why, mode, now)
            verified = checked
            if token_cache is not None and key is not None:
                entry = token_cache.put(key, community.keys_version, verified)  # None: only noted
        identity = finish_verification(
            verified, received_at=received_at, now=now, community=community, trace=trace
        )
        if isinstance(identity, Rejected):  # V9/V10 (and V11/V12) run on every event, cached or not
            why = noted(
                identity,
                event.signed_identity,
                community,
                received_at=received_at,
                now=now,
                max_token_bytes=limits.max_token_bytes,
            )
            return rejection(envelope, why, mode, now, verified.kid)
        derived = entry.derived_for(community) if entry is not None else None  # C4's memo
        if derived is None:
            derived = _derive(verified, identity, community)
            if entry is not None:  # made with the entry: its first hit does not derive it again
                entry.keep(derived)
        return enriched(envelope, derived, now)
    assert event.identity is not None  # V1 (the model's check) guarantees exactly one of the two
    plain = read_identity(event.identity)
    if isinstance(plain, Rejected):
        return rejection(envelope, trace.failed("V12", plain), mode, now)
    return enriched(envelope, _derive(None, plain, community), now)


def _derive(verified: VerifiedToken | None, identity: dict[str, Any], community: Community) -> Derived:
    return derive(verified, identity, apply_mappings(identity, community), community)
