"""The token debugger (DESIGN §7, L4): the whole answer of `token verify` and of the admin API's
token check, written once for both. Pure: the clock is passed in.

`debug_token` decides the text with `explain_token` — the very verdict and code path of
`process` and `run`, nothing trimmed — and adds what an integrator needs beside it:
- the header and payload as decoded (leniently, so a token the verdict refuses still shows),
  with its dates in UTC and relative to the clock ("expired 32 min ago");
- the notes: `diagnose`'s findings (L4), and, when whitespace or a `Bearer ` prefix surrounds
  the token, the verdict the token alone would get;
- a preview of what agents would see: the enriched record's mapped part when the token is
  accepted (`published`), else what the community's mappings would make of the payload's
  identity if it were (M1–M6, the same `apply_mappings`).
Nothing here holds a secret; the token itself is not part of the result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from worker.core.community import Community
from worker.core.diagnostics import diagnose, lenient_b64
from worker.core.explain import Explanation, explain_token
from worker.core.jsontext import read_object
from worker.core.mapping import apply_mappings
from worker.core.pipeline import DEFAULT_LIMITS, Limits
from worker.core.times import format_time
from worker.core.verify import MAX_NUMERIC_DATE, read_signed_identity

#: The NumericDate claims shown as dates, in the order a token's life runs.
TIME_CLAIMS: Final = ("iat", "nbf", "exp")
_BEARER: Final = "bearer "


@dataclass(frozen=True, slots=True)
class TokenTime:
    """A NumericDate claim: its `value` (epoch seconds), `utc` (RFC 3339) and `relative` to the
    clock, e.g. "expired 32 min ago", "expires in 1 h 58 min", "issued 2 min ago"."""

    claim: str
    value: int
    utc: str
    relative: str


@dataclass(frozen=True, slots=True)
class Preview:
    """The mapped part of the enriched record (DESIGN §2.2). `published`: true when it is the
    record the worker publishes for this token; false when the token is rejected and this is
    what the mappings would give its identity once the token is fixed."""

    published: bool
    identity_group: dict[str, Any]
    custom_fields: dict[str, str]
    mapping_skipped: list[dict[str, str]]


@dataclass(slots=True)
class TokenDebug:
    """The verdict (`explanation`), the decoded `header` and `payload` (None: unreadable), the
    `times` of the payload, the `preview` (None: no readable identity) and the `notes`."""

    explanation: Explanation
    header: dict[str, Any] | None
    payload: dict[str, Any] | None
    times: list[TokenTime]
    preview: Preview | None
    notes: list[str]


def debug_token(
    token: str, community: Community, *, received_at: float, now: float, limits: Limits = DEFAULT_LIMITS
) -> TokenDebug:
    """Decide `token` for `community` as `process` does and explain it (times: epoch seconds)."""
    lookup = {community.id: community}
    explanation = explain_token(token, community.id, lookup, received_at=received_at, now=now, limits=limits)
    found = diagnose(
        token,
        community,
        explanation.output.reason,
        received_at=received_at,
        now=now,
        max_token_bytes=limits.max_token_bytes,
    )
    notes = explanation.notes + [hint.message for hint in found]
    alone = jwt_alone(token)
    if alone != token:
        again = explain_token(alone, community.id, lookup, received_at=received_at, now=now, limits=limits)
        notes.append(f"the token alone, without what surrounds it, would be: {again.verdict}")
    segments = alone.split(".") if len(alone) <= limits.max_token_bytes else []
    header = _shown_json(segments[0]) if len(segments) == 3 else None
    payload = _shown_json(segments[1]) if len(segments) == 3 else None
    times = [] if payload is None else token_times(payload, now)
    preview = _preview(explanation, community, segments[1] if len(segments) == 3 else None)
    return TokenDebug(explanation, header, payload, times, preview, notes)


def jwt_alone(token: str) -> str:
    """The token without surrounding whitespace and an HTTP `Bearer ` scheme (for the notes and
    the decoded view only: the verdict is always on the exact text, DESIGN §7)."""
    alone = token.strip()
    if alone[: len(_BEARER)].lower() == _BEARER:
        alone = alone[len(_BEARER) :].strip()
    return alone


def token_times(payload: dict[str, Any], now: float) -> list[TokenTime]:
    """`iat`, `nbf`, `exp` when each is an integer date in seconds (else the verdict and the
    notes say what is wrong with it)."""
    times = []
    for claim in TIME_CLAIMS:
        value = payload.get(claim)
        if type(value) is int and 0 <= value <= MAX_NUMERIC_DATE:
            times.append(TokenTime(claim, value, format_time(value), relative_time(claim, value - now)))
    return times


def relative_time(claim: str, delta: float) -> str:
    """How `claim`'s date stands `delta` seconds from now (negative: in the past)."""
    span = duration(abs(delta))
    past = delta <= 0
    if claim == "exp":
        return f"expired {span} ago" if past else f"expires in {span}"
    if claim == "nbf":
        return f"valid since {span} ago" if past else f"not valid for another {span}"
    return f"issued {span} ago" if past else f"issued {span} in the future"


def duration(seconds: float) -> str:
    """A readable duration: `12 s`, `32 min`, `1 h 58 min`, `3 d 4 h` (rounded down)."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"


def _shown_json(segment: str) -> dict[str, Any] | None:
    """A segment as a JSON object for display: any base64 flavour, plain JSON values that
    encode back to UTF-8 (a lone surrogate, NaN: not shown; the verdict names them)."""
    raw = lenient_b64(segment)
    if raw is None:
        return None
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def _preview(explanation: Explanation, community: Community, segment: str | None) -> Preview | None:
    record = explanation.output.record
    if explanation.accepted:
        return Preview(True, record["identity_group"], record["custom_fields"], record["mapping_skipped"])
    if segment is None:
        return None
    raw = lenient_b64(segment)
    try:
        payload = read_object(raw.decode("utf-8")) if raw is not None else None  # the worker's reader
    except UnicodeDecodeError:
        return None
    if type(payload) is not dict:
        return None
    identity = read_signed_identity(payload)
    if not isinstance(identity, dict):
        return None
    mapped = apply_mappings(identity, community)
    return Preview(False, mapped.identity_group, mapped.custom_fields, mapped.skipped)
