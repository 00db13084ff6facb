"""The records of DESIGN §2 as pydantic models, written once, and the limits of an identity (V12).
The closed sets the fields take (reasons, modes, outcomes) are in `worker.core.reasons`; the
RFC 3339 times in `worker.core.times`.

The models are the contract: the source of the JSON Schemas in `schemas/`. The hot path builds
the output records as plain dicts for speed (`worker.core.records`); tests hold every output to
its model, field for field and in the model's order (tests/support/core.py `validate_output`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from worker.core.keys import AlgName
from worker.core.reasons import Action, Reason, SkipReason
from worker.core.times import RFC3339_PATTERN, rfc3339_seconds

MAX_IDENTITY_FIELD_CHARS = 1024
MAX_EXTRA_VALUES = 100
MAX_EXTRA_KEY_CHARS = 64
MAX_UUID_CHARS = 255
MAX_EVENT_ID_CHARS = 128
COMMUNITY_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


def _rfc3339(text: str) -> str:
    rfc3339_seconds(text)
    return text


# ---------------------------------------------------------------- 2.1 raw identity event


class RawEvent(BaseModel):
    """Envelope of topic `identity.raw` (V1). Unknown top-level fields are ignored."""

    # Each field's docstring is its description in schemas/ (a downstream developer's reference).
    model_config = ConfigDict(extra="ignore", frozen=True, use_attribute_docstrings=True)

    event_id: Annotated[str, Field(min_length=1, max_length=MAX_EVENT_ID_CHARS, strict=True)]
    """The gateway's id of this event, 1-128 characters; echoed in the output for correlation."""
    community_id: Annotated[str, Field(pattern=COMMUNITY_ID_PATTERN, strict=True)]
    """The community (customer website) whose configuration judges the identity."""
    received_at: Annotated[str, Field(strict=True), AfterValidator(_rfc3339)] = Field(
        json_schema_extra={"pattern": RFC3339_PATTERN}
    )
    """When the gateway received the identity: RFC 3339 with an offset. The validity window (V9) counts
    from it."""
    identity: dict[Any, Any] | None = None  # names are V12's to read: one not valid Unicode is ignored (J2)
    """An unsigned identity: uuid, screenname, firstname, lastname, company, email, avatar_url (strings
    of at most 1024 characters) and extra_values (key -> string, number or boolean). Exactly one of
    identity and signed_identity."""
    signed_identity: Annotated[str, Field(strict=True)] | None = None
    """A signed identity: a compact JWT (HS256 or RS256, with kid and exp) whose claims are the
    identity's fields. Exactly one of identity and signed_identity."""
    gateway: dict[str, Any] | None = None
    """The gateway that received it, e.g. {"name": "gw-eu-1"}; not read by the worker."""

    @model_validator(mode="after")
    def _exactly_one_identity(self) -> RawEvent:
        if (self.identity is None) == (self.signed_identity is None):
            raise ValueError("exactly one of identity or signed_identity is required")
        return self


# ---------------------------------------------------------------- outputs (§2.2–§2.4)


class _Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


# Where the input was read (K1): the runtime makes one per record, so a slots dataclass, not a
# model; pydantic reads it as the models' `source` all the same (no class docstring: the schema
# has none; its fields' docstrings are their descriptions). Not frozen: a frozen __init__ costs
# 0.2 µs more per record; read-only by convention.
@dataclass(slots=True)
class Source:
    topic: str
    """The input topic."""
    partition: int
    """The input partition."""
    offset: int
    """The input record's offset."""

    __pydantic_config__ = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    def as_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset}


class Verification(_Contract):
    alg: AlgName  # keys.KEY_KINDS
    """The token's algorithm: HS256 or RS256."""
    kid: str
    """The key that verified the signature (its Key ID in the community)."""
    expires_at: str
    """The token's exp as RFC 3339 UTC: the identity is vouched for until then."""


class EnrichedIdentityView(_Contract):
    """The identity as published: strings only; extra values carried as text."""

    uuid: str | None = None
    """The visitor's id on the website (required in a signed identity, V11)."""
    screenname: str | None = None
    """The visitor's display name, as sent."""
    firstname: str | None = None
    """As sent."""
    lastname: str | None = None
    """As sent."""
    company: str | None = None
    """As sent."""
    email: str | None = None
    """As sent (not checked as an address)."""
    avatar_url: str | None = None
    """As sent (not fetched)."""
    extra_values: dict[str, str] = Field(default_factory=dict)
    """The website's extra values, each as text (numbers and booleans as their JSON text)."""


class IdentityGroup(_Contract):
    firstname: str | None = None
    """From the identity, or a mapping to identity_group.firstname (M1, M5)."""
    lastname: str | None = None
    """From the identity, or a mapping (M1, M5)."""
    gender: str | None = None
    """Only from a mapping (M5)."""
    company: str | None = None
    """From the identity, or a mapping (M1, M5)."""
    notes: str | None = None
    """Only from a mapping, e.g. from uuid (M5)."""
    emails: list[str]
    """The identity's email, then mapped values not already present (M1, M5)."""
    home_phones: list[str]
    """Mapped values, in mapping order (M5)."""
    mobile_phones: list[str]
    """Mapped values, in mapping order (M5)."""


#: The identity's text fields (§2.1, V12) and the group's (M1–M6), as the models name them.
IDENTITY_FIELDS: Final = tuple(name for name in EnrichedIdentityView.model_fields if name != "extra_values")
_GROUP: Final = IdentityGroup.model_fields
GROUP_SCALAR_FIELDS: Final = tuple(name for name, field in _GROUP.items() if field.annotation != list[str])
GROUP_LIST_FIELDS: Final = tuple(name for name, field in _GROUP.items() if field.annotation == list[str])


class SkippedMapping(_Contract):
    from_: str = Field(alias="from")
    """The mapping's source: uuid or extra_values.<key>."""
    to: str
    """The mapping's target: identity_group.<field> or custom_fields.<key>."""
    reason: SkipReason
    """source_missing (M3) or regex_mismatch (M4)."""


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
    """Always enriched on this topic."""
    event_id: str
    """The raw event's event_id."""
    community_id: str
    """The raw event's community_id."""
    received_at: str
    """The raw event's received_at, as it was sent."""
    processed_at: str
    """When the worker decided, RFC 3339 UTC."""
    signed: bool
    """true: the identity came in a verified token; false: unsigned, in a community that accepts only
    unsigned identities (signed_identities: reject)."""
    verification: Verification | None
    """How the token was verified; null for an unsigned identity."""
    identity: EnrichedIdentityView
    """The identity as read (V12): the token's claims or the unsigned object, strings only."""
    identity_group: IdentityGroup
    """What agents see as the visitor (M1-M6): use it, not identity, to display the visitor."""
    custom_fields: dict[str, str]
    """The community's declared custom fields that mappings filled (key -> value), each matching its
    regex (M4)."""
    mapping_skipped: list[SkippedMapping]
    """Mappings that did not apply and why (M6); never a rejection."""
    source: Source | None
    """Where the input was read; null in offline mode (process)."""


class Rejection(_ReshapedEcho):
    """Topic `identity.rejected` (DESIGN §2.3)."""

    outcome: Literal["rejected"]
    """Always rejected on this topic."""
    event_id: str | None
    """The raw event's event_id; null when the event could not be read (malformed_event)."""
    community_id: str | None
    """The raw event's community_id; null when it could not be read."""
    reason: Reason
    """The first rule that failed (DESIGN §3; docs/rules.md): a closed set, one code per cause."""
    detail: str
    """For humans: what the rule found and, for the usual integration mistakes, a note on the fix (L4).
    Never a secret or a whole token; not for parsing."""
    action: Action
    """What the chat does: block (do not open it) or anonymous (drop the identity, continue anonymously)."""
    received_at: str | None
    """The raw event's received_at; null when it could not be read."""
    processed_at: str
    """When the worker decided, RFC 3339 UTC."""
    raw: str | None
    """The original value as text (or base64, see raw_encoding), so the event can be replayed after a
    configuration fix."""
    raw_encoding: Literal["utf-8", "base64"] | None
    """utf-8, or base64 when the value is not valid UTF-8; null when the record had no value."""
    source: Source | None
    """Where the input was read; null in offline mode (process)."""


class DeadLetter(_ReshapedEcho):
    """Topic `identity.dlq` (DESIGN §2.4): a processing bug, after bounded attempts."""

    outcome: Literal["dead_letter"]
    """Always dead_letter on this topic."""
    event_id: str | None
    """The raw event's event_id, when it could be read."""
    community_id: str | None
    """The raw event's community_id, when it could be read."""
    error_type: str
    """The exception's type: a bug of the worker, to report."""
    error_message: str
    """The exception's message (secrets and tokens redacted)."""
    traceback: list[str]
    """A summary of the traceback, innermost frame last."""
    attempts: int
    """How many times the event was tried before giving up."""
    processed_at: str
    """When the worker gave up, RFC 3339 UTC."""
    raw: str | None
    """The original value as text (or base64, see raw_encoding), to replay once the bug is fixed."""
    raw_encoding: Literal["utf-8", "base64"] | None
    """utf-8, or base64 when the value is not valid UTF-8; null when the record had no value."""
    source: Source | None
    """Where the input was read; null in offline mode (process)."""


CONTRACT_MODELS: dict[str, type[BaseModel]] = {
    "raw_event": RawEvent,
    "enriched_identity": EnrichedIdentity,
    "rejection": Rejection,
    "dead_letter": DeadLetter,
}
