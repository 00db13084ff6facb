"""Community configuration (DESIGN §1, §5): the validated YAML form and its prepared form.

`*Spec` models are what an operator writes (YAML, admin commands, database rows); they
validate every format of §1 and report one clear line per problem, never echoing a
secret. `Community` is the prepared, immutable form the pure pipeline reads: keys parsed,
regexes compiled with RE2, mappings split — once per load, not per event.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Protocol, TypeVar

import re2
import yaml
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
from re2 import _re2

from worker.core.contracts import (
    COMMUNITY_ID_PATTERN,
    GROUP_LIST_FIELDS,
    GROUP_SCALAR_FIELDS,
    MAX_EXTRA_KEY_CHARS,
    Mode,
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
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # our one-line error replaces RE2's own stderr noise


class ConfigError(ValueError):
    """One or more configuration problems, each a line naming where and what."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class WholeMatch:
    """A compiled RE2 pattern that answers one question: does it match the whole value (M4)?

    google-re2's Python `fullmatch` builds a match object and maps byte offsets back to
    characters in Python — about 3.8 µs a call, ~15 % of a worker's time per event. Asking the
    compiled program directly, anchored at both ends over the UTF-8 bytes, is the same match
    (RE2 works on UTF-8) at about 0.7 µs; tests hold it equal to `re2.fullmatch`. A value
    holding a lone surrogate (JSON allows `\\udc80`) has no UTF-8 form: it matches nothing,
    where `re2.fullmatch` raised (a dead letter instead of M4's `regex_mismatch`).
    """

    __slots__ = ("_program", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._program = re2.compile(pattern, _RE2_OPTIONS)._regexp

    def __call__(self, value: str) -> bool:
        try:
            data = value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate is no text a pattern can describe
            return False
        return bool(self._program.Match(_ANCHOR_BOTH, data, 0, len(data))[0][0] >= 0)


_ANCHOR_BOTH = _re2.RE2.Anchor.ANCHOR_BOTH


def compile_regex(pattern: str) -> WholeMatch:
    """RE2 only: linear-time matching whatever the pattern (M4)."""
    if len(pattern) > MAX_REGEX_CHARS:
        raise ValueError(f"regex is longer than {MAX_REGEX_CHARS} characters")
    try:
        return WholeMatch(pattern)
    except re2.error as exc:
        why = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(f"regex is not valid RE2 syntax: {why}") from None


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


class CustomFieldSpec(_Spec):
    key: Annotated[str, Field(strict=True, pattern=FIELD_KEY_PATTERN)]
    label: Annotated[str, Field(strict=True, min_length=1, max_length=MAX_LABEL_CHARS)]
    regex: Annotated[str, Field(strict=True)] | None = None

    @field_validator("regex")
    @classmethod
    def _check_regex(cls, value: str | None) -> str | None:
        if value is not None:
            compile_regex(value)
        return value


class MappingSpec(_Spec):
    model_config = ConfigDict(populate_by_name=True)

    from_: Annotated[str, Field(strict=True, alias="from")]
    to: Annotated[str, Field(strict=True)]

    _check_from = field_validator("from_")(check_mapping_source)
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


# ---------------------------------------------------------------- the prepared form


@dataclass(frozen=True, slots=True)
class CustomField:
    key: str
    label: str
    regex: str | None
    pattern: WholeMatch | None = field(repr=False, compare=False)

    def accepts(self, value: str) -> bool:
        return self.pattern is None or self.pattern(value)


@dataclass(frozen=True, slots=True)
class FieldMapping:
    source: str  # "uuid" or "extra_values.<key>"
    target: str  # "identity_group.<field>" or "custom_fields.<key>"
    extra_key: str | None  # the extra value read, None for uuid
    target_kind: Literal["identity_group", "custom_fields"]
    target_name: str


@dataclass(frozen=True, slots=True)
class Tombstone:
    """What a removed key leaves (L3): never its secret."""

    kid: str
    alg: str
    fingerprint: str
    removed_at: float  # epoch seconds


@dataclass(frozen=True, slots=True)
class Community:
    id: str
    mode: Mode
    min_validity_seconds: int
    leeway_seconds: int
    max_validity_seconds: int | None  # V9 expiry_too_far; None: no cap
    keys: Mapping[str, JwtKey]
    custom_fields: Mapping[str, CustomField]
    mappings: tuple[FieldMapping, ...]
    #: Changes whenever the set of keys changes; verified-token cache entries carry it (C4).
    keys_version: str
    #: L3: keys removed from the community, by kid (for `unknown_kid` details); the store adds them.
    tombstones: Mapping[str, Tombstone] = field(default_factory=dict)

    @classmethod
    def from_spec(cls, spec: CommunitySpec, tombstones: Mapping[str, Tombstone] | None = None) -> Community:
        keys = {k.kid: k.prepare() for k in spec.jwt_keys}
        fields = {
            f.key: CustomField(f.key, f.label, f.regex, compile_regex(f.regex) if f.regex else None)
            for f in spec.custom_fields
        }
        mappings = tuple(_prepare_mapping(m) for m in spec.mappings)
        version = hashlib.sha256(
            "\n".join(
                f"{k.kid}:{k.alg}:{k.digest}" for k in sorted(keys.values(), key=lambda k: k.kid)
            ).encode()
        ).hexdigest()
        return cls(
            spec.id,
            spec.signed_identities,
            spec.min_validity_seconds,
            spec.leeway_seconds,
            spec.max_validity_seconds,
            keys,
            fields,
            mappings,
            version,
            tombstones or {},
        )


def _prepare_mapping(spec: MappingSpec) -> FieldMapping:
    extra_key = None if spec.from_ == "uuid" else spec.from_.partition(".")[2]
    kind, _, name = spec.to.partition(".")
    assert kind in ("identity_group", "custom_fields")
    return FieldMapping(spec.from_, spec.to, extra_key, kind, name)  # type: ignore[arg-type]


# ---------------------------------------------------------------- loading


def format_validation_error(error: ValidationError) -> list[str]:
    """One line per problem: where, then what. Never the offending value (it may be a secret)."""
    return format_error_items(error.errors(include_input=False, include_url=False))


def format_error_items(items: Iterable[Mapping[str, Any]]) -> list[str]:
    """`format_validation_error` for pydantic's error dicts (e.g. a web framework's); reads
    only `loc` and `msg`, never `input`."""
    lines = []
    for item in items:
        # A location names the input's own keys too (an unknown one is an error): a secret
        # pasted as a key must not be echoed either.
        parts = [_SECRET_SHAPED_KEY if _SECRET_SHAPED.search(str(p)) else p for p in item["loc"]]
        where = "".join(
            f"[{part}]" if isinstance(part, int) else (f".{part}" if i else str(part))
            for i, part in enumerate(parts)
        )
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {message}" if where else message)
    return lines


#: Validation context that leaves S1 to the caller: rows read back from the store (rows written
#: before migration 0002 may break it; a worker loads them rather than stopping), and writers
#: that refuse with a line of their own (`lacks_required_key`, then their own message).
WITHOUT_S1 = "without_s1"


def validate_spec(model: type[SpecT], data: Any, *, s1: bool = True) -> SpecT:
    """Validate `data` as `model`; ConfigError with one line per problem. `s1=False`: see WITHOUT_S1."""
    try:
        return model.model_validate(data, context=None if s1 else {WITHOUT_S1: True})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key repeated in one mapping is an error (DESIGN §5).

    PyYAML keeps the last silently: a `signed_identities: reject` pasted under a `require` line
    would switch signatures off without a word. Merge keys (`<<`) keep YAML's meaning: a key
    written in the mapping overrides a merged one. A key that two merged mappings both give is
    refused (which one wins differs between YAML readers; PyYAML 6.0.4 even decides by string
    identity), and so is a key repeated in a mapping written inline after `<<` (never
    constructed on its own, it reaches the result only through flattening)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._checked: set[int] = set()  # mapping nodes already checked (flattening mutates them)

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        # Every mapping comes here first, before flattening splices merged pairs into it: the ones
        # constructed (SafeConstructor.construct_mapping) and the ones a `<<` names (recursion).
        if id(node) not in self._checked:
            self._checked.add(id(node))
            self._refuse_repeats(node.value)
            self._refuse_merge_overlaps(node.value)
        super().flatten_mapping(node)

    def _refuse_repeats(self, pairs: list[tuple[yaml.Node, yaml.Node]]) -> None:
        first_line: dict[Any, int] = {}
        for key_node, _ in pairs:
            # A merge key (`<<`) is not constructed; it may appear once like any other key.
            merge = key_node.tag == _MERGE_TAG
            key = "<<" if merge else self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                earlier = first_line.get(key)
            except TypeError:  # an unhashable key: SafeLoader refuses it with its own message
                return
            if earlier is not None:
                where = f"line {line}: key {_key_name(key)}"
                raise ConfigError([f"{where} repeated in one mapping (first at line {earlier}); keep one"])
            first_line[key] = line

    def _refuse_merge_overlaps(self, pairs: list[tuple[yaml.Node, yaml.Node]]) -> None:
        for key_node, value_node in pairs:
            if key_node.tag != _MERGE_TAG:
                continue
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            given: set[Any] = set()
            for source in sources:
                if not isinstance(source, yaml.MappingNode):
                    return  # SafeLoader refuses it with its own message
                self.flatten_mapping(source)
                keys = [self.construct_object(k, deep=True) for k, _ in source.value]
                try:
                    repeated = [key for key in keys if key in given]
                    given.update(keys)
                except TypeError:  # an unhashable key: SafeLoader refuses it with its own message
                    return
                if repeated:
                    line = key_node.start_mark.line + 1
                    where = f"line {line}: key {_key_name(repeated[0])}"
                    raise ConfigError([f"{where} comes from more than one merged mapping; keep one"])


_MERGE_TAG = "tag:yaml.org,2002:merge"


_SECRET_SHAPED = re.compile(r"[0-9a-f]{24}")
_SECRET_SHAPED_KEY = "(a key shaped like a secret)"


def _key_name(key: object) -> str:
    text = repr(key)
    if _SECRET_SHAPED.search(str(key)):  # an all-digit secret written unquoted is a YAML int
        return _SECRET_SHAPED_KEY  # never echo what may be a secret
    return text if len(text) <= 66 else text[:63] + "..."


def parse_yaml(text: str) -> ConfigSpec:
    """The one reader of configuration YAML (`--config` files and `config apply`): safe tags
    only, no repeated key in any mapping, then the models' validation."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: safe tags only
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "not valid YAML"
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError([f"{where}{problem}"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(["the file must hold a mapping with a 'communities' list"])
    return validate_spec(ConfigSpec, data)


def prepare(spec: ConfigSpec) -> dict[str, Community]:
    return {c.id: Community.from_spec(c) for c in spec.communities}


def load_config_file(path: str) -> dict[str, Community]:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigError([f"cannot read {path}: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path} is not UTF-8 text"]) from None
    return prepare(parse_yaml(text))


# ---------------------------------------------------------------- what the pipeline reads


class ConfigUnavailable(Exception):
    """The community is not cached and the store cannot be reached: not a verdict (V2, K8, C3)."""


class CommunityLookup(Protocol):
    """Where the pipeline finds a community: a dict for offline use, the store cache in `run`.

    Returns None only when the community certainly does not exist; raises ConfigUnavailable
    when that cannot be known now.
    """

    def get(self, community_id: str, /) -> Community | None: ...
