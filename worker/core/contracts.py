"""The records of DESIGN §2 as pydantic models, written once, and the closed sets: reasons with
their rule and action per mode (§2.3, §3), modes, the limits of an identity (V12), RFC 3339 times.

The models are the contract: the source of the JSON Schemas in `schemas/`. The hot path builds
the output records as plain dicts for speed (`worker.core.records`); tests hold every output to
its model, field for field and in the model's order (tests/support/core.py `validate_output`).
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from worker.core.keys import AlgName


class Action(StrEnum):
    """What the chat does with a rejected identity (DESIGN §2.3)."""

    BLOCK = "block"
    ANONYMOUS = "anonymous"


class Mode(StrEnum):
    """A community's `signed_identities` setting (V3)."""

    REQUIRE = "require"
    REJECT = "reject"


#: V3: "in require mode every later rejection is block; in reject mode anonymous" (require, reject).
FOLLOWS_MODE: Final = (Action.BLOCK, Action.ANONYMOUS)
ALWAYS_BLOCK: Final = (Action.BLOCK, Action.BLOCK)  # V1, V2: before the mode is known


class Reason(StrEnum):
    """Every rejection reason of DESIGN §2.3, one member each; the rule that yields it."""

    rules: tuple[str, ...]  # the DESIGN §3 rules that yield it
    #: Its rejection's `action` (§2.3) as the record writes it, by the community's mode (None:
    #: V1, V2, before a community is read, as in `require` mode).
    actions: dict[Mode | None, str]

    def __new__(cls, value: str, rules: str, in_require: Action, in_reject: Action) -> Reason:
        member = str.__new__(cls, value)
        member._value_ = value
        member.rules = tuple(rules.split(", "))
        member.actions = {
            None: in_require.value,
            Mode.REQUIRE: in_require.value,
            Mode.REJECT: in_reject.value,
        }
        return member

    def action(self, mode: Mode | None) -> Action:
        """DESIGN §2.3 `action`: by the community's mode (None: V1, V2, no community read)."""
        return Action(self.actions[mode])

    # The table: value, rule(s), action in require and in reject mode.
    MALFORMED_EVENT = "malformed_event", "V1", *ALWAYS_BLOCK
    UNKNOWN_COMMUNITY = "unknown_community", "V2", *ALWAYS_BLOCK
    SIGNATURE_REQUIRED = "signature_required", "V3", *ALWAYS_BLOCK  # require mode only
    SIGNED_IDENTITY_REJECTED = (
        "signed_identity_rejected",
        "V3",
        Action.ANONYMOUS,
        Action.ANONYMOUS,
    )  # reject only
    MALFORMED_TOKEN = "malformed_token", "V4", *FOLLOWS_MODE
    INVALID_HEADER = "invalid_header", "V5", *FOLLOWS_MODE
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm", "V5", *FOLLOWS_MODE
    MISSING_KID = "missing_kid", "V5", *FOLLOWS_MODE
    UNKNOWN_KID = "unknown_kid", "V6", *FOLLOWS_MODE
    ALGORITHM_KEY_MISMATCH = "algorithm_key_mismatch", "V6", *FOLLOWS_MODE
    INVALID_SIGNATURE = "invalid_signature", "V7", *FOLLOWS_MODE
    MISSING_EXP = "missing_exp", "V8", *FOLLOWS_MODE
    INVALID_EXP = "invalid_exp", "V8", *FOLLOWS_MODE
    TOKEN_EXPIRED = "token_expired", "V9", *FOLLOWS_MODE
    EXPIRY_TOO_SOON = "expiry_too_soon", "V9", *FOLLOWS_MODE
    EXPIRY_TOO_FAR = "expiry_too_far", "V9", *FOLLOWS_MODE  # max_validity_seconds
    TOKEN_NOT_YET_VALID = "token_not_yet_valid", "V10", *FOLLOWS_MODE
    MISSING_UUID = "missing_uuid", "V11", *FOLLOWS_MODE
    INVALID_CLAIMS = "invalid_claims", "V10, V12", *FOLLOWS_MODE  # V10: iat


class Outcome(StrEnum):
    ENRICHED = "enriched"
    REJECTED = "rejected"
    DEAD_LETTER = "dead_letter"


class SkipReason(StrEnum):
    SOURCE_MISSING = "source_missing"  # M3
    REGEX_MISMATCH = "regex_mismatch"  # M4


MAX_IDENTITY_FIELD_CHARS = 1024
MAX_EXTRA_VALUES = 100
MAX_EXTRA_KEY_CHARS = 64
MAX_UUID_CHARS = 255
MAX_EVENT_ID_CHARS = 128
COMMUNITY_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
RFC3339_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
_RFC3339 = re.compile(RFC3339_PATTERN)


def parse_rfc3339(text: str) -> datetime:
    """RFC 3339 with an offset, nothing looser (no bare dates, no naive times, no numbers)."""
    if not _RFC3339.fullmatch(text):
        raise ValueError("must be an RFC 3339 time with an offset, e.g. 2026-11-24T10:00:00Z")
    head, _, rest = text.partition(".")
    if rest:  # Python keeps microseconds only; drop finer digits rather than fail.
        digits = re.match(r"[0-9]+", rest)
        assert digits is not None
        frac = digits.group(0)
        text = f"{head}.{frac[:6].ljust(6, '0')}{rest[len(frac) :]}"
    return datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))


# The instants every output can write back as RFC 3339 UTC: 0001-01-01T00:00:00Z up to, not
# including, 10000-01-01T00:00:00Z. An offset can push a valid-looking text outside them.
FIRST_UTC_SECOND: Final = -62135596800
END_UTC_SECOND: Final = 253402300800


@functools.lru_cache(maxsize=256)
def rfc3339_seconds(text: str) -> float:
    """`parse_rfc3339` as epoch seconds, memoized: V1 validates `received_at` and the pipeline
    then needs its value, so each event's second call is a lookup (an invalid text raises and
    is not kept). Instants `format_time` cannot write are refused here, as malformed input."""
    seconds = parse_rfc3339(text).timestamp()
    if not FIRST_UTC_SECOND <= seconds < END_UTC_SECOND:
        raise ValueError("must be a time from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z in UTC")
    return seconds


@functools.lru_cache(maxsize=4096)
def _utc_second(second: int) -> str:
    t = datetime.fromtimestamp(second, UTC)  # strftime's %Y drops the zeros of years before 1000
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"


def format_time(ts: float) -> str:
    """Output times are RFC 3339 UTC strings (DESIGN §2); whole seconds repeat, so they are memoized."""
    second = math.floor(ts)
    micros = round((ts - second) * 1_000_000)
    if micros >= 1_000_000:
        second, micros = second + 1, 0
    if micros:
        return f"{_utc_second(second)}.{micros:06d}Z"
    return f"{_utc_second(second)}Z"


def _rfc3339(text: str) -> str:
    rfc3339_seconds(text)
    return text


# ---------------------------------------------------------------- 2.1 raw identity event


class RawEvent(BaseModel):
    """Envelope of topic `identity.raw` (V1). Unknown top-level fields are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: Annotated[str, Field(min_length=1, max_length=MAX_EVENT_ID_CHARS, strict=True)]
    community_id: Annotated[str, Field(pattern=COMMUNITY_ID_PATTERN, strict=True)]
    received_at: Annotated[str, Field(strict=True), AfterValidator(_rfc3339)] = Field(
        json_schema_extra={"pattern": RFC3339_PATTERN}
    )
    identity: dict[Any, Any] | None = None  # names are V12's to read: one not valid Unicode is ignored (J2)
    signed_identity: Annotated[str, Field(strict=True)] | None = None
    gateway: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _exactly_one_identity(self) -> RawEvent:
        if (self.identity is None) == (self.signed_identity is None):
            raise ValueError("exactly one of identity or signed_identity is required")
        return self


# ---------------------------------------------------------------- outputs (§2.2–§2.4)


class _Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Where the input was read (K1): the runtime makes one per record, so a slots dataclass, not a
# model; pydantic reads it as the models' `source` all the same (no docstring: the schema has none).
@dataclass(frozen=True, slots=True)
class Source:
    topic: str
    partition: int
    offset: int

    __pydantic_config__ = ConfigDict(extra="forbid")

    def as_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset}


class Verification(_Contract):
    alg: AlgName  # keys.KEY_KINDS
    kid: str
    expires_at: str


class EnrichedIdentityView(_Contract):
    """The identity as published: strings only; extra values carried as text."""

    uuid: str | None = None
    screenname: str | None = None
    firstname: str | None = None
    lastname: str | None = None
    company: str | None = None
    email: str | None = None
    avatar_url: str | None = None
    extra_values: dict[str, str] = Field(default_factory=dict)


class IdentityGroup(_Contract):
    firstname: str | None = None
    lastname: str | None = None
    gender: str | None = None
    company: str | None = None
    notes: str | None = None
    emails: list[str]
    home_phones: list[str]
    mobile_phones: list[str]


#: The identity's text fields (§2.1, V12) and the group's (M1–M6), as the models name them.
IDENTITY_FIELDS: Final = tuple(name for name in EnrichedIdentityView.model_fields if name != "extra_values")
_GROUP: Final = IdentityGroup.model_fields
GROUP_SCALAR_FIELDS: Final = tuple(name for name, field in _GROUP.items() if field.annotation != list[str])
GROUP_LIST_FIELDS: Final = tuple(name for name, field in _GROUP.items() if field.annotation == list[str])


class SkippedMapping(_Contract):
    from_: str = Field(alias="from")
    to: str
    reason: SkipReason


class _Reshaped(_Contract):
    """K9 (worker.core.fitting): fields present only on an output that could not be written as
    it is, saying what was changed."""

    key_derived: bool = Field(
        False, description="the key is topic:partition:offset of the input, not the input's key"
    )
    headers_dropped: int = Field(0, ge=0, description="input headers not carried over (no room)")


class _ReshapedEcho(_Reshaped):
    """…and, on records that echo the raw value, that the echo is only a prefix of it."""

    raw_truncated: bool = Field(False, description="raw holds only a prefix of the original value")
    raw_bytes: int | None = Field(None, ge=0, description="length of the original value when truncated")
    raw_sha256: str | None = Field(
        None, pattern="^[0-9a-f]{64}$", description="SHA-256 (hex) of the original value when truncated"
    )


class EnrichedIdentity(_Reshaped):
    """Topic `identity.enriched` (DESIGN §2.2)."""

    outcome: Literal["enriched"]
    event_id: str
    community_id: str
    received_at: str
    processed_at: str
    signed: bool
    verification: Verification | None
    identity: EnrichedIdentityView
    identity_group: IdentityGroup
    custom_fields: dict[str, str]
    mapping_skipped: list[SkippedMapping]
    source: Source | None


class Rejection(_ReshapedEcho):
    """Topic `identity.rejected` (DESIGN §2.3)."""

    outcome: Literal["rejected"]
    event_id: str | None
    community_id: str | None
    reason: Reason
    detail: str
    action: Action
    received_at: str | None
    processed_at: str
    raw: str | None
    raw_encoding: Literal["utf-8", "base64"] | None
    source: Source | None


class DeadLetter(_ReshapedEcho):
    """Topic `identity.dlq` (DESIGN §2.4): a processing bug, after bounded attempts."""

    outcome: Literal["dead_letter"]
    event_id: str | None
    community_id: str | None
    error_type: str
    error_message: str
    traceback: list[str]
    attempts: int
    processed_at: str
    raw: str | None
    raw_encoding: Literal["utf-8", "base64"] | None
    source: Source | None


CONTRACT_MODELS: dict[str, type[BaseModel]] = {
    "raw_event": RawEvent,
    "enriched_identity": EnrichedIdentity,
    "rejection": Rejection,
    "dead_letter": DeadLetter,
}
