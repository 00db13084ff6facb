"""Community configuration as an operator writes it (DESIGN §1, §5): the `*Spec` models.

They are what YAML files, admin commands, the admin API and database rows are read into; they
validate every format of §1 and report one clear line per problem, never echoing a secret.
`CommunitySpec`'s edits (`with_key`, `without_key`, …) return validated copies, so the store
writes only communities the YAML loader would accept. The YAML text itself is read and written
at the edge (`store/yaml_io.py`); the form the pipeline reads is `core/community.py`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from worker.core.contracts import (
    COMMUNITY_ID_PATTERN,
    GROUP_LIST_FIELDS,
    GROUP_SCALAR_FIELDS,
    MAX_EXTRA_KEY_CHARS,
)
from worker.core.keys import (
    KEY_KINDS,
    AlgName,
    JwtKey,
    KeyKind,
    check_hmac_secret,
    check_kid,
    listed,
    load_rsa_public_key,
)
from worker.core.patterns import compile_regex
from worker.core.problems import format_validation_error
from worker.core.reasons import Mode
from worker.core.storable import check_storable

FIELD_KEY_PATTERN = r"^[a-z0-9_]{1,64}$"
DEFAULT_MIN_VALIDITY_SECONDS = 3600
DEFAULT_LEEWAY_SECONDS = 10
MAX_MIN_VALIDITY_SECONDS = 366 * 86400
MAX_LEEWAY_SECONDS = 3600
#: V9 `expiry_too_far`: the longest cap a community may set (10 years); unset means no cap.
MAX_MAX_VALIDITY_SECONDS = 10 * 366 * 86400
#: L3: a key that verified a token this recently is not removed unless forced.
DEFAULT_RETIREMENT_WINDOW_SECONDS = 86400
MAX_RETIREMENT_WINDOW_SECONDS = 30 * 86400
MAX_LABEL_CHARS = 255
MAX_REGEX_CHARS = 1024

_FIELD_KEY = re.compile(FIELD_KEY_PATTERN)
SpecT = TypeVar("SpecT", bound=BaseModel)


class ConfigError(ValueError):
    """One or more configuration problems, each a line naming where and what."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def check_mapping_source(source: str) -> str:
    if source == "uuid":
        return source
    prefix, dot, key = source.partition(".")
    if prefix == "extra_values" and dot and 1 <= len(key) <= MAX_EXTRA_KEY_CHARS:
        return source
    raise ValueError("from must be 'uuid' or 'extra_values.<key>' (key 1-64 characters)")


def check_mapping_target(target: str) -> str:
    prefix, dot, name = target.partition(".")
    if prefix == "identity_group" and name in GROUP_SCALAR_FIELDS + GROUP_LIST_FIELDS:
        return target
    if prefix == "custom_fields" and dot and _FIELD_KEY.fullmatch(name):
        return target
    fields = ", ".join(GROUP_SCALAR_FIELDS + GROUP_LIST_FIELDS)
    raise ValueError(f"to must be 'identity_group.<{fields}>' or 'custom_fields.<key>'")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class JwtKeySpec(_Spec):
    kid: Annotated[str, Field(strict=True)]
    hmac_secret: SecretStr | None = None
    rsa_public_key: Annotated[str, Field(strict=True)] | None = None

    _check_kid = field_validator("kid")(check_kid)

    @field_validator("hmac_secret", mode="before")
    @classmethod
    def _secret_is_text(cls, value: object) -> object:
        if value is not None and not isinstance(value, str):
            raise ValueError("hmac_secret must be a quoted string of 24 characters 0-9a-f")
        return value

    @field_validator("hmac_secret")
    @classmethod
    def _check_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_hmac_secret(value.get_secret_value())
        return value

    @field_validator("rsa_public_key")
    @classmethod
    def _check_rsa(cls, value: str | None) -> str | None:
        if value is not None:
            load_rsa_public_key(value)
        return value

    @model_validator(mode="after")
    def _exactly_one_key(self) -> JwtKeySpec:
        if sum(self._text(kind) is not None for kind in KEY_KINDS) != 1:
            raise ValueError(f"give exactly one of {listed(tuple(kind.title for kind in KEY_KINDS))}")
        return self

    def _text(self, kind: KeyKind) -> str | None:
        value: SecretStr | str | None = getattr(self, kind.name)
        return value.get_secret_value() if isinstance(value, SecretStr) else value

    @property
    def kind(self) -> KeyKind:
        """The entry of `keys.KEY_KINDS` whose field this key fills."""
        return next(kind for kind in KEY_KINDS if self._text(kind) is not None)

    @property
    def alg(self) -> AlgName:
        return self.kind.alg

    def prepare(self) -> JwtKey:
        kind = self.kind
        text = self._text(kind)
        assert text is not None
        return kind.key(self.kid, text)


def _from_store(info: ValidationInfo) -> bool:
    return bool((info.context or {}).get(FROM_STORE))


class CustomFieldSpec(_Spec):
    key: Annotated[str, Field(strict=True, pattern=FIELD_KEY_PATTERN)]
    label: Annotated[str, Field(strict=True, min_length=1, max_length=MAX_LABEL_CHARS)]
    regex: Annotated[str, Field(strict=True)] | None = None

    # A3, A7: the one text rule, for the CLI and YAML as for the admin API.
    @field_validator("label")
    @classmethod
    def _storable_label(cls, value: str, info: ValidationInfo) -> str:
        return value if _from_store(info) else check_storable(value)

    @field_validator("regex")
    @classmethod
    def _check_regex(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            if not _from_store(info):
                check_storable(value, multi_line=True)  # a literal tab or newline is RE2 text
            if len(value) > MAX_REGEX_CHARS:
                raise ValueError(f"regex is longer than {MAX_REGEX_CHARS} characters")
            compile_regex(value)
        return value


class MappingSpec(_Spec):
    model_config = ConfigDict(populate_by_name=True)

    from_: Annotated[str, Field(strict=True, alias="from")]
    to: Annotated[str, Field(strict=True)]

    _check_from = field_validator("from_")(check_mapping_source)

    @field_validator("from_")
    @classmethod
    def _storable_from(cls, value: str, info: ValidationInfo) -> str:
        # A7: a line break here would forge a line of an audit listing (A11)
        return value if _from_store(info) else check_storable(value)

    _check_to = field_validator("to")(check_mapping_target)


class CommunitySpec(_Spec):
    id: Annotated[str, Field(strict=True, pattern=COMMUNITY_ID_PATTERN)]
    signed_identities: Mode = Mode.REQUIRE
    min_validity_seconds: Annotated[int, Field(strict=True, ge=0, le=MAX_MIN_VALIDITY_SECONDS)] = (
        DEFAULT_MIN_VALIDITY_SECONDS
    )
    leeway_seconds: Annotated[int, Field(strict=True, ge=0, le=MAX_LEEWAY_SECONDS)] = DEFAULT_LEEWAY_SECONDS
    max_validity_seconds: Annotated[int, Field(strict=True, ge=1, le=MAX_MAX_VALIDITY_SECONDS)] | None = None
    retirement_window_seconds: Annotated[int, Field(strict=True, ge=0, le=MAX_RETIREMENT_WINDOW_SECONDS)] = (
        DEFAULT_RETIREMENT_WINDOW_SECONDS
    )
    jwt_keys: list[JwtKeySpec] = Field(default_factory=list)
    custom_fields: list[CustomFieldSpec] = Field(default_factory=list)
    mappings: list[MappingSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> CommunitySpec:
        problems = []
        if lacks_required_key(self) and not (info.context or {}).get(WITHOUT_S1):
            problems.append(
                f"community {self.id} requires signed identities but has no JWT key (S1): "
                "give it a key (jwt_keys), or set signed_identities to reject"
            )
        problems += _duplicates("jwt_keys kid", (k.kid for k in self.jwt_keys))
        problems += _duplicates("custom_fields key", (f.key for f in self.custom_fields))
        cap = self.max_validity_seconds
        if cap is not None and cap < self.min_validity_seconds:
            # Every token would then be too soon or too far (V9): a setting that refuses everything.
            problems.append(
                f"max_validity_seconds ({cap}) must be at least min_validity_seconds "
                f"({self.min_validity_seconds})"
            )
        declared = {f.key for f in self.custom_fields}
        for index, mapping in enumerate(self.mappings):
            prefix, _, name = mapping.to.partition(".")
            if prefix == "custom_fields" and name not in declared:
                problems.append(f"mappings[{index}].to names custom field {name!r}, which is not declared")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # Edits (admin commands, the admin API): each returns a validated copy, or raises ConfigError
    # with the lines the YAML loader would give for the result. S1 is left to the caller
    # (`lacks_required_key`, see WITHOUT_S1), which refuses with a line of its own; so are
    # "already there" and "no such entry" (`has_key`, `has_field`, `has_mapping`).

    def with_settings(self, settings: Mapping[str, object]) -> CommunitySpec:
        """Settings replaced (`signed_identities`, `min_validity_seconds`, …); others refused."""
        return self._edited(**settings)

    def with_key(self, key: JwtKeySpec) -> CommunitySpec:
        return self._edited(jwt_keys=[*self.jwt_keys, key])

    def without_key(self, kid: str) -> CommunitySpec:
        return self._edited(jwt_keys=[k for k in self.jwt_keys if k.kid != kid])

    def with_field(self, custom_field: CustomFieldSpec) -> CommunitySpec:
        return self._edited(custom_fields=[*self.custom_fields, custom_field])

    def without_field(self, key: str) -> CommunitySpec:
        return self._edited(custom_fields=[f for f in self.custom_fields if f.key != key])

    def with_mapping(self, mapping: MappingSpec) -> CommunitySpec:
        """`mapping` applied after the others (M2: order of application)."""
        return self._edited(mappings=[*self.mappings, mapping])

    def without_mapping(self, mapping: MappingSpec) -> CommunitySpec:
        """Every copy of `mapping` removed; the others keep their order (M2)."""
        return self._edited(mappings=[m for m in self.mappings if m != mapping])

    def has_key(self, kid: str) -> bool:
        return any(k.kid == kid for k in self.jwt_keys)

    def has_field(self, key: str) -> bool:
        return any(f.key == key for f in self.custom_fields)

    def has_mapping(self, mapping: MappingSpec) -> bool:
        return mapping in self.mappings

    def mappings_to_field(self, key: str) -> list[MappingSpec]:
        """The mappings that write custom field `key` (DESIGN §1: a target must be declared)."""
        return [m for m in self.mappings if m.to == f"custom_fields.{key}"]

    def _edited(self, **changes: object) -> CommunitySpec:
        data = {name: getattr(self, name) for name in type(self).model_fields}
        return validate_spec(CommunitySpec, data | changes, s1=False)


def lacks_required_key(spec: CommunitySpec) -> bool:
    """S1 broken: the community requires signed identities and has no key to verify them
    (every signed event would be unknown_kid, every unsigned one signature_required)."""
    return spec.signed_identities is Mode.REQUIRE and not spec.jwt_keys


class ConfigSpec(_Spec):
    communities: list[CommunitySpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self) -> ConfigSpec:
        problems = _duplicates("community id", (c.id for c in self.communities))
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _duplicates(what: str, values: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    problems = []
    for value in values:
        if value in seen:
            problems.append(f"duplicate {what} {value!r}")
        seen.add(value)
    return problems


# ---------------------------------------------------------------- validating


#: Validation context that leaves S1 to the caller: rows read back from the store (rows written
#: before migration 0002 may break it; a worker loads them rather than stopping), and writers
#: that refuse with a line of their own (`lacks_required_key`, then their own message).
WITHOUT_S1 = "without_s1"
#: Validation context of rows read back from the store: text written before the one text rule
#: (`core/storable.py`, A7) is read as it is, so a worker still loads such a community; every
#: write (CLI, YAML, API, and an edit of a stored spec) is held to the rule.
FROM_STORE = "from_store"


def validate_spec(model: type[SpecT], data: Any, *, s1: bool = True, stored: bool = False) -> SpecT:
    """Validate `data` as `model`; ConfigError with one line per problem. `s1=False`: see
    WITHOUT_S1; `stored=True` (implies no S1): see FROM_STORE."""
    context = {WITHOUT_S1: True, FROM_STORE: True} if stored else None if s1 else {WITHOUT_S1: True}
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None
