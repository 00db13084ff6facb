"""A community as the pure pipeline reads it (DESIGN §1, §5): prepared once per load, not per event.

`Community.from_spec` turns a validated `CommunitySpec` (`core/config.py`: what an operator
writes) into the immutable form the pipeline reads: keys parsed, regexes compiled with RE2,
mappings split. `CommunityLookup` is where the pipeline finds one; `ConfigUnavailable` says
that cannot be known right now (C3).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, Protocol

from worker.core.config import CommunitySpec, ConfigSpec
from worker.core.keys import JwtKey
from worker.core.patterns import WholeMatch, compile_regex
from worker.core.reasons import Mode


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
        fields = _shared_fields(tuple((f.key, f.label, f.regex) for f in spec.custom_fields))
        mappings = _shared_mappings(tuple((m.from_, m.to) for m in spec.mappings))
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
            tombstones or _NO_TOMBSTONES,
        )


# T3: what many communities declare alike (the same fields, the same mappings) is prepared once
# and shared: the prepared forms are immutable, and these tables are bounded (a shape asked
# after falling out is prepared again; the communities holding the old one keep it).
_SHARED_SHAPES = 16_384
_NO_TOMBSTONES: Mapping[str, Tombstone] = MappingProxyType({})


@functools.lru_cache(maxsize=_SHARED_SHAPES)
def _shared_fields(fields: tuple[tuple[str, str, str | None], ...]) -> Mapping[str, CustomField]:
    prepared = {
        key: CustomField(key, label, regex, compile_regex(regex) if regex else None)
        for key, label, regex in fields
    }
    return MappingProxyType(prepared)


@functools.lru_cache(maxsize=_SHARED_SHAPES)
def _shared_mappings(mappings: tuple[tuple[str, str], ...]) -> tuple[FieldMapping, ...]:
    return tuple(_prepare_mapping(source, target) for source, target in mappings)


def _prepare_mapping(source: str, target: str) -> FieldMapping:
    extra_key = None if source == "uuid" else source.partition(".")[2]
    kind, _, name = target.partition(".")
    assert kind in ("identity_group", "custom_fields")
    return FieldMapping(source, target, extra_key, kind, name)  # type: ignore[arg-type]


def prepare(spec: ConfigSpec) -> dict[str, Community]:
    """Every community of a validated configuration, prepared, by id."""
    return {c.id: Community.from_spec(c) for c in spec.communities}


# ---------------------------------------------------------------- what the pipeline reads


class ConfigUnavailable(Exception):
    """The community is not cached and the store cannot be reached: not a verdict (V2, K8, C3)."""


class CommunityLookup(Protocol):
    """Where the pipeline finds a community: a dict for offline use, the store cache in `run`.

    Returns None only when the community certainly does not exist; raises ConfigUnavailable
    when that cannot be known now.
    """

    def get(self, community_id: str, /) -> Community | None: ...
