"""The API's bodies (DESIGN §10, A1, A3): the core's spec models, and what derives from them.

Requests are the very models the YAML loader and the admin commands validate with
(`CommunitySpec`, `JwtKeySpec`, `CustomFieldSpec`, `MappingSpec`), so a rule is checked by
the same code whichever way configuration is written. Responses are the store's rows
(`KeyRow`, `FieldRow`, …), which hold no secret by construction; a column the store adds
(key usage, say) reaches the API without a change here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Final, Optional, get_args

from pydantic import BaseModel, ConfigDict, Field, create_model

from worker.core.config import CommunitySpec
from worker.core.times import RFC3339_PATTERN
from worker.store.listings import KeyRow

#: The spec's list sections; every other field but `id` is a setting that PATCH may change.
_SECTIONS: Final = ("id", "jwt_keys", "custom_fields", "mappings")


def _settings_model() -> type[BaseModel]:
    """`CommunitySpec`'s settings, each optional: the same types and bounds, not a copy."""
    fields: dict[str, Any] = {}
    for name, info in CommunitySpec.model_fields.items():
        if name in _SECTIONS:
            continue
        annotation = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        fields[name] = (Optional[annotation], Field(default=None, description=info.description))  # noqa: UP045
    return create_model(
        "CommunitySettings",
        __config__=ConfigDict(extra="forbid", hide_input_in_errors=True),
        __doc__="The settings to change; the ones not given keep their value.",
        **fields,
    )


if TYPE_CHECKING:  # what type checkers see; at run time the model is derived, not copied

    class CommunitySettings(BaseModel):
        signed_identities: str | None
        min_validity_seconds: int | None
        leeway_seconds: int | None
        max_validity_seconds: int | None
        retirement_window_seconds: int | None

else:
    CommunitySettings = _settings_model()


@dataclass(frozen=True, slots=True)
class KeyListed(KeyRow):
    """A key as the keys list shows it (L2, like `keys list`): the store's row and its usage.

    `last_used_at`: when it last verified a token (null: never, as far as the workers have
    counted); `uses_24h`: tokens it verified in the hour buckets overlapping the last 24 h.
    """

    last_used_at: datetime | None
    uses_24h: int


class TokenCheck(BaseModel):
    """A token to explain, as the worker would judge it for this community (A5)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    token: Annotated[str, Field(strict=True, description="The compact JWT; never stored or logged.")]
    received_at: Annotated[
        str | None,
        Field(
            strict=True,
            pattern=RFC3339_PATTERN,
            description="When the gateway received it (RFC 3339); default: now.",
        ),
    ] = None


class CheckStep(BaseModel):
    """One rule as `token verify` shows it."""

    rule: str = Field(description="The rule's code, defined in docs/rules.md (DESIGN §3), e.g. V7.")
    title: str = Field(description="What the rule checks, e.g. 'signature'.")
    passed: bool = Field(description="false: the rule that decided the rejection (the last step).")
    detail: str = Field(description="What the rule found; never a secret or the token.")


class TokenTimeShown(BaseModel):
    """A NumericDate claim of the payload (iat, nbf, exp) as a date."""

    claim: str = Field(description="iat, nbf or exp.")
    value: int = Field(description="The claim as sent: seconds since 1970.")
    utc: str = Field(description="The same instant, RFC 3339 UTC.")
    relative: str = Field(description="Relative to the check's clock, e.g. 'expired 32 min ago'.")


class PreviewShown(BaseModel):
    """What agents would see: the mapped part of the enriched record (DESIGN §2.2, M1–M6)."""

    published: bool = Field(
        description="true: the record the worker publishes for this token; false: the token is "
        "rejected and this is what the mappings would give its identity once it is fixed."
    )
    identity_group: dict[str, Any] = Field(description="As in identity.enriched.")
    custom_fields: dict[str, str] = Field(description="As in identity.enriched.")
    mapping_skipped: list[dict[str, str]] = Field(description="As in identity.enriched (M6).")


class TokenCheckResult(BaseModel):
    """The token debugger (`token verify`'s answer): the token decoded, each rule in order, the
    verdict, the notes and a preview of the published record. The token itself is not echoed."""

    accepted: bool
    reason: str | None = Field(description="The rejection reason (DESIGN §2.3), null when accepted.")
    detail: str | None = Field(
        description="The rejection's detail exactly as the worker stores it (Health, report), "
        "its notes included; null when accepted."
    )
    steps: list[CheckStep]
    notes: list[str] = Field(
        default_factory=list, description="Further diagnostics (L4); never change the verdict."
    )
    header: dict[str, Any] | None = Field(
        default=None, description="The JOSE header decoded (leniently); null when unreadable."
    )
    payload: dict[str, Any] | None = Field(
        default=None, description="The claims decoded (leniently); null when unreadable."
    )
    times: list[TokenTimeShown] = Field(default_factory=list, description="iat, nbf, exp as dates.")
    preview: PreviewShown | None = Field(
        default=None, description="What agents would see; null when the payload holds no readable identity."
    )


def _names(model: type[BaseModel]) -> set[str]:
    """A request model's member names (aliases as sent), its nested models' included."""
    names: set[str] = set()
    for name, info in model.model_fields.items():
        names.add(info.alias or name)
        for inner in (info.annotation, *get_args(info.annotation)):
            for kind in (inner, *get_args(inner)):
                if isinstance(kind, type) and issubclass(kind, BaseModel):
                    names |= _names(kind)
    return names


#: Every member name a request body may hold: the only ones a refusal may echo (A12).
KNOWN_FIELD_NAMES: Final = frozenset(
    set().union(*(_names(m) for m in (CommunitySpec, CommunitySettings, TokenCheck)))
)
