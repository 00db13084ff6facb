"""Verification rules V4–V12 of DESIGN §3: one small pure function per step, in rule order.

Each step returns the next step's input or a `Rejected` verdict; the first failing rule
decides. No I/O and no clock: `now` and `received_at` are parameters. Signatures are
checked with PyJWT's algorithm object for the key's one algorithm (V7).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from worker.core.community import Community
from worker.core.contracts import (
    IDENTITY_FIELDS,
    MAX_EXTRA_KEY_CHARS,
    MAX_EXTRA_VALUES,
    MAX_IDENTITY_FIELD_CHARS,
    MAX_UUID_CHARS,
)
from worker.core.jsontext import InvalidText, JsonFloat, number_text
from worker.core.jsontext import integer_of as numeric_date
from worker.core.jws import COMPACT, check_header, decode_segment, header_object, segment_object
from worker.core.keys import JwtKey, is_valid_kid
from worker.core.reasons import Reason
from worker.core.times import END_UTC_SECOND, format_time
from worker.core.verdict import NO_TRACE, Rejected, Trace, seconds, short

#: exp beyond this cannot be shown as a date (year 9999); such a value is not a usable NumericDate.
MAX_NUMERIC_DATE: Final = END_UTC_SECOND - 1


@dataclass(slots=True)  # not frozen: one per token verified (frozen costs 0.2 µs more); read-only
class CompactToken:
    header: dict[Any, Any]  # as `jsontext.read_object` reads them (J1–J4)
    payload: dict[Any, Any]
    signing_input: bytes
    signature: bytes


@dataclass(slots=True)  # not frozen: one per token verified (frozen costs 0.4 µs more); read-only
class VerifiedToken:
    """What a good signature establishes; cacheable per community and token (C4).

    Time rules (V9, V10) are not part of it: they depend on the clock and run every time.
    """

    alg: str
    kid: str
    exp: int
    nbf: object
    iat: object
    identity: dict[str, Any] | Rejected  # the V11/V12 outcome, applied after V9/V10


# ---------------------------------------------------------------- V4 structure


def parse_compact(token: str, max_bytes: int) -> CompactToken | Rejected:
    """V4: a compact JWS of three canonical base64url segments; header and payload JSON
    objects read strictly (J1–J4). The segments are decoded by `jws`, the one place that does."""
    size = len(token.encode("utf-8", "surrogatepass")) if not token.isascii() else len(token)
    if size > max_bytes:
        return Rejected(Reason.MALFORMED_TOKEN, f"token is {size} bytes; at most {max_bytes} allowed")
    if not COMPACT.fullmatch(token):
        return Rejected(Reason.MALFORMED_TOKEN, "token is not three base64url segments joined by dots")
    head, body, sig = token.split(".")
    header = header_object(head)
    if header is None:
        return Rejected(
            Reason.MALFORMED_TOKEN, "token header is not a canonical base64url-encoded JSON object"
        )
    payload = segment_object(body)
    if payload is None:
        return Rejected(
            Reason.MALFORMED_TOKEN, "token payload is not a canonical base64url-encoded JSON object"
        )
    signature = decode_segment(sig)
    if signature is None:
        return Rejected(Reason.MALFORMED_TOKEN, "token signature is not canonical base64url")
    return CompactToken(header, payload, f"{head}.{body}".encode("ascii"), signature)


# ---------------------------------------------------------------- V6 key


def find_key(community: Community, kid: object, alg: str) -> JwtKey | Rejected:
    """V6: the key is looked up by kid in the event's community only."""
    # A community's kids are valid ones (checked when it is read): a kid found needs no check.
    key = community.keys.get(kid) if type(kid) is str else None
    if key is None and not is_valid_kid(kid):
        return Rejected(Reason.UNKNOWN_KID, f"kid {short(kid)} is not a valid key id")
    if key is None:
        assert isinstance(kid, str)
        gone = community.tombstones.get(kid)
        if gone is not None:  # L3: say what happened to it, not only that it is missing
            return Rejected(
                Reason.UNKNOWN_KID,
                f"key {kid!r} was removed on {format_time(gone.removed_at)} from community {community.id}",
            )
        return Rejected(Reason.UNKNOWN_KID, f"community {community.id} has no key {kid!r}")
    if key.alg != alg:
        return Rejected(
            Reason.ALGORITHM_KEY_MISMATCH, f"token alg is {alg} but key {kid!r} is an {key.alg} key"
        )
    return key


# ---------------------------------------------------------------- V7 signature


def check_signature(key: JwtKey, token: CompactToken) -> Rejected | None:
    if key.verifies(token.signing_input, token.signature):
        return None
    return Rejected(
        Reason.INVALID_SIGNATURE, f"signature does not verify with key {key.kid!r} ({key.alg})", key.kid
    )


# ---------------------------------------------------------------- V8 exp


def read_exp(payload: dict[str, Any]) -> int | Rejected:
    raw = payload.get("exp")
    if raw is None:
        return Rejected(Reason.MISSING_EXP, "token has no exp claim")
    exp = numeric_date(raw)
    if exp is None:
        return Rejected(Reason.INVALID_EXP, f"exp must be an integer NumericDate, got {short(raw)}")
    if not 0 <= exp <= MAX_NUMERIC_DATE:  # an integer, but no date in seconds (milliseconds?, L4)
        return Rejected(
            Reason.INVALID_EXP,
            f"exp {short(raw)} is out of range: a NumericDate counts seconds since 1970, "
            f"from 0 to {MAX_NUMERIC_DATE} (year 9999)",
        )
    return exp


# ---------------------------------------------------------------- V9, V10 time


def check_times(
    exp: int, nbf: object, iat: object, *, received_at: float, now: float, community: Community
) -> Rejected | None:
    """V9 and V10, on every event even when the token was verified before (C4)."""
    leeway = community.leeway_seconds
    if exp + leeway <= now:
        return Rejected(Reason.TOKEN_EXPIRED, f"exp is {seconds(now - exp)} s before now (leeway {leeway} s)")
    required = community.min_validity_seconds
    if exp + leeway < received_at + required:
        return Rejected(
            Reason.EXPIRY_TOO_SOON,
            f"exp is {seconds(exp - received_at)} s after received_at; at least {required} s required "
            f"(leeway {leeway} s)",
        )
    cap = community.max_validity_seconds
    if cap is not None and exp - leeway > received_at + cap:
        return Rejected(
            Reason.EXPIRY_TOO_FAR,
            f"exp is {seconds(exp - received_at)} s after received_at; at most {cap} s allowed "
            f"(leeway {leeway} s)",
        )
    if nbf is not None:
        not_before = numeric_date(nbf)
        if not_before is None:
            return Rejected(
                Reason.TOKEN_NOT_YET_VALID, f"nbf must be an integer NumericDate, got {short(nbf)}"
            )
        if not_before > now + leeway:
            return Rejected(
                Reason.TOKEN_NOT_YET_VALID,
                f"nbf is {seconds(not_before - now)} s after now (leeway {leeway} s)",
            )
    if iat is not None:
        issued = numeric_date(iat)
        if issued is None:
            return Rejected(Reason.INVALID_CLAIMS, f"iat must be an integer NumericDate, got {short(iat)}")
        if issued > now + leeway:
            return Rejected(
                Reason.INVALID_CLAIMS, f"iat is {seconds(issued - now)} s after now (leeway {leeway} s)"
            )
    return None


# ---------------------------------------------------------------- V11, V12 claims


def _not_text(where: str, value: object) -> Rejected:
    if type(value) is InvalidText:
        return Rejected(Reason.INVALID_CLAIMS, f"{where}: not valid Unicode (an unpaired surrogate, J2)")
    return Rejected(Reason.INVALID_CLAIMS, f"{where}: must be a string")


def read_identity(claims: dict[Any, Any]) -> dict[str, Any] | Rejected:
    """V12: identity fields are strings ≤ 1024 chars; extra values string/number/boolean, ≤ 100.

    Strings come from `jsontext.read_object`: an unpaired surrogate is an `InvalidText`,
    refused here like any non-string (J2). A number is carried as its text and its text counts
    against the 1024 characters, however long it is (J4). The one reading of V12, unsigned or
    signed; a property test holds it to a model of DESIGN §2.1 (tests/core/test_properties.py).
    """
    identity: dict[str, Any] = {}
    for name in IDENTITY_FIELDS:
        value = claims.get(name)
        if value is None:
            continue  # null counts as absent
        if type(value) is not str:
            return _not_text(name, value)
        if len(value) > MAX_IDENTITY_FIELD_CHARS:
            return Rejected(
                Reason.INVALID_CLAIMS, f"{name}: longer than {MAX_IDENTITY_FIELD_CHARS} characters"
            )
        identity[name] = value
    raw_extra = claims.get("extra_values")
    extra: dict[str, str] = {}
    if raw_extra is not None:
        if type(raw_extra) is not dict:
            return Rejected(Reason.INVALID_CLAIMS, "extra_values: must be an object")
        if len(raw_extra) > MAX_EXTRA_VALUES:
            return Rejected(Reason.INVALID_CLAIMS, f"extra_values: more than {MAX_EXTRA_VALUES} entries")
        for key, value in raw_extra.items():
            if type(key) is not str:
                return _not_text("extra_values key", key)
            if not 1 <= len(key) <= MAX_EXTRA_KEY_CHARS:
                return Rejected(
                    Reason.INVALID_CLAIMS, f"extra_values: keys must be 1-{MAX_EXTRA_KEY_CHARS} characters"
                )
            if value is None:
                continue  # null counts as absent
            text: str | None = value if type(value) is str else number_text(value)
            if text is None:
                if type(value) is InvalidText:
                    return _not_text(f"extra_values.{short(key)}", value)
                return Rejected(
                    Reason.INVALID_CLAIMS,
                    f"extra_values.{short(key)}: must be a string, a finite number or a boolean",
                )
            if len(text) > MAX_IDENTITY_FIELD_CHARS or (
                type(value) is JsonFloat and len(value.text) > MAX_IDENTITY_FIELD_CHARS
            ):
                return Rejected(
                    Reason.INVALID_CLAIMS,
                    f"extra_values.{short(key)}: longer than {MAX_IDENTITY_FIELD_CHARS} characters",
                )
            extra[key] = text
    identity["extra_values"] = extra
    return identity


def read_signed_identity(payload: dict[str, Any]) -> dict[str, Any] | Rejected:
    """V11 then V12 for a signed payload. Claims other than the identity's are ignored."""
    uuid = payload.get("uuid")
    if not isinstance(uuid, str) or not uuid or len(uuid) > MAX_UUID_CHARS:
        return Rejected(
            Reason.MISSING_UUID, f"uuid must be a non-empty string of at most {MAX_UUID_CHARS} characters"
        )
    return read_identity(payload)


def _shown(header: dict[Any, Any]) -> str:
    # `repr` for what is not JSON text (InvalidText, LongInteger): ASCII, never a lone surrogate.
    return short(json.dumps(_named(header), default=repr), 200)


def _named(value: object) -> object:
    """`value` with member names that are not text (J2: `InvalidText`) as their repr: json.dumps
    applies `default` to values only, and raised on such a name (`token verify` then gave a
    dead letter where `process` gives the verdict). Headers nest at most 32 levels (J3)."""
    if type(value) is dict:
        return {(name if type(name) is str else repr(name)): _named(item) for name, item in value.items()}
    if type(value) is list:
        return [_named(item) for item in value]
    return value


# ---------------------------------------------------------------- composition


def verify_token_signature(
    token: str, community: Community, max_token_bytes: int, trace: Trace = NO_TRACE
) -> VerifiedToken | Rejected:
    """V4–V8 (and the deferred V11/V12 result): everything that a cache hit may skip (C4).

    Each rule run is written to `trace` as it runs (`token verify`); the verdict is the same
    either way."""
    compact = parse_compact(token, max_token_bytes)
    if isinstance(compact, Rejected):
        return trace.failed("V4", compact)
    trace.passed("V4", _header_detail, compact.header)
    header = check_header(compact.header)
    if isinstance(header, Rejected):
        return trace.failed("V5", header)
    alg, kid = header
    trace.passed("V5", _alg_detail, alg, kid)
    key = find_key(community, kid, alg)
    if isinstance(key, Rejected):
        return trace.failed("V6", key)
    trace.passed("V6", _key_detail, key)  # the fingerprint is made only when traced
    bad_signature = check_signature(key, compact)
    if bad_signature is not None:
        return trace.failed("V7", bad_signature)
    trace.passed("V7", "verifies")
    exp = read_exp(compact.payload)
    if isinstance(exp, Rejected):  # after a good signature: the key was used (L1)
        return trace.failed("V8", Rejected(exp.reason, exp.detail, key.kid))
    trace.passed("V8", "exp {}", exp)
    payload = compact.payload
    return VerifiedToken(
        alg, key.kid, exp, payload.get("nbf"), payload.get("iat"), read_signed_identity(payload)
    )


def finish_verification(
    verified: VerifiedToken,
    *,
    received_at: float,
    now: float,
    community: Community,
    trace: Trace = NO_TRACE,
) -> dict[str, Any] | Rejected:
    """V9, V10, then the V11/V12 outcome: the part that runs on every event."""
    late = check_times(
        verified.exp, verified.nbf, verified.iat, received_at=received_at, now=now, community=community
    )
    if late is not None:
        return trace.failed("V9-V10", late)
    trace.passed("V9-V10", _time_detail, verified.exp - now, community.leeway_seconds)
    identity = verified.identity
    if isinstance(identity, Rejected):
        return trace.failed("V11-V12", identity)
    trace.passed("V11-V12", _uuid_detail, identity)
    return identity


def _header_detail(header: dict[Any, Any]) -> str:
    return f"header {_shown(header)}"


def _key_detail(key: JwtKey) -> str:
    return f"key {key.kid!r} ({key.alg}, {key.fingerprint})"


def _alg_detail(alg: str, kid: object) -> str:
    return f"alg {alg}, kid {short(kid)}"


def _time_detail(left: float, leeway: int) -> str:
    return f"valid for {seconds(left)} more s (leeway {leeway} s)"


def _uuid_detail(identity: dict[str, Any]) -> str:
    return f"uuid {short(identity['uuid'])}"
