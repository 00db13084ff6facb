"""Verification rules V1–V12 (DESIGN §3) through the pure pipeline, boundaries included.

Every test here fails if the rule it names were removed or moved by one second.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.support.core import (
    ANON_SECRET,
    HS_KID,
    NOW,
    OTHER_SECRET,
    RECEIVED_AT,
    RS_KID,
    SECRET,
    T0,
    acme_config,
    acme_lookup,
    event,
    good_claims,
    make_token,
    other_community_token,
    rsa_private,
)
from worker.core.pipeline import Limits

# ---------------------------------------------------------------- the happy path


def test_valid_hs256_token_is_enriched_with_its_verification(run: Any) -> None:
    record = run(event(make_token()))
    assert record["outcome"] == "enriched"
    assert record["signed"] is True
    assert record["verification"] == {"alg": "HS256", "kid": HS_KID, "expires_at": "2026-11-24T12:00:00Z"}
    assert record["event_id"] == "e-1" and record["community_id"] == "acme"
    assert record["received_at"] == RECEIVED_AT and record["processed_at"] == RECEIVED_AT
    assert record["source"] is None
    assert record["identity"]["uuid"] == "v-42"
    assert record["identity"]["extra_values"] == {"customer_id": "C123456", "phone": "+33600000000"}


def test_valid_rs256_token_is_enriched(run: Any) -> None:
    record = run(event(make_token(alg="RS256", kid=RS_KID)))
    assert record["outcome"] == "enriched"
    assert record["verification"]["alg"] == "RS256" and record["verification"]["kid"] == RS_KID


# ---------------------------------------------------------------- V1 the event


def _malformed(record: dict[str, Any]) -> None:
    assert record["outcome"] == "rejected"
    assert record["reason"] == "malformed_event"
    assert record["action"] == "block"


def test_v1_not_json_is_malformed_with_nulls_and_raw_text(run: Any) -> None:
    record = run(b"not json {")
    _malformed(record)
    assert record["event_id"] is None and record["community_id"] is None and record["received_at"] is None
    assert record["raw"] == "not json {" and record["raw_encoding"] == "utf-8"


def test_v1_not_utf8_is_malformed_and_raw_is_base64(run: Any) -> None:
    value = b'{"event_id": "e-\xff", "community_id": "acme"}'
    record = run(value)
    _malformed(record)
    assert record["event_id"] is None and record["community_id"] is None and record["received_at"] is None
    assert record["raw_encoding"] == "base64"
    assert base64.b64decode(record["raw"]) == value


def test_v1_no_value_is_malformed(run: Any) -> None:
    record = run(None)
    _malformed(record)
    assert record["raw"] is None and record["raw_encoding"] is None


@pytest.mark.parametrize("value", [b"[]", b'["e-1"]', b'"text"', b"42", b"null", b"", b"   "])
def test_v1_json_that_is_not_an_object_is_malformed(run: Any, value: bytes) -> None:
    _malformed(run(value))


def test_v1_nan_is_not_json(run: Any) -> None:
    """RFC 8259 has no NaN/Infinity: an envelope carrying one is not a JSON object (V1)."""
    value = event(make_token()).replace(b'"gateway"', b'"x": NaN, "gateway"')
    _malformed(run(value))


def test_v1_size_limit_boundary(run: Any) -> None:
    value = event(make_token())
    assert run(value, limits=Limits(max_event_bytes=len(value)))["outcome"] == "enriched"
    record = run(value, limits=Limits(max_event_bytes=len(value) - 1))
    _malformed(record)
    assert "bytes" in record["detail"]


def test_v1_default_size_limit_is_64_kib(run: Any) -> None:
    padding = "x" * (64 * 1024)
    _malformed(run(event(make_token(), padding=padding)))


@pytest.mark.parametrize("missing", ["event_id", "community_id", "received_at"])
def test_v1_missing_envelope_field_is_malformed_and_readable_fields_are_kept(run: Any, missing: str) -> None:
    value = json.loads(event(make_token()))
    del value[missing]
    record = run(json.dumps(value).encode())
    _malformed(record)
    expected = {"event_id": "e-1", "community_id": "acme", "received_at": RECEIVED_AT}
    expected[missing] = None  # type: ignore[assignment]
    assert {k: record[k] for k in expected} == expected


def test_v1_both_identity_and_signed_identity_is_malformed(run: Any) -> None:
    _malformed(run(event(make_token(), identity={"uuid": "v-1"})))


def test_v1_neither_identity_nor_signed_identity_is_malformed(run: Any) -> None:
    _malformed(run(event()))


def test_v1_null_identity_counts_as_absent(run: Any) -> None:
    value = json.loads(event(make_token()))
    value["identity"] = None
    assert run(json.dumps(value).encode())["outcome"] == "enriched"
    record = run(event(identity={"uuid": "u"}, community_id="anon", signed_identity=None))
    assert record["outcome"] == "enriched" and record["signed"] is False


@pytest.mark.parametrize(
    "received_at",
    ["2026-11-24T10:00:00", "2026-11-24", "2026-11-24 10:00:00Z", "1795000000", "yesterday", ""],
)
def test_v1_received_at_without_offset_or_not_rfc3339_is_malformed(run: Any, received_at: str) -> None:
    record = run(event(make_token(), received_at=received_at))
    _malformed(record)
    assert record["received_at"] is None
    assert record["event_id"] == "e-1" and record["community_id"] == "acme"


@pytest.mark.parametrize("received_at", ["2026-11-24T11:00:00+01:00", "2026-11-24t10:00:00.000000001z"])
def test_v1_received_at_with_offset_is_read_and_output_in_utc(run: Any, received_at: str) -> None:
    record = run(event(make_token(), received_at=received_at))
    assert record["outcome"] == "enriched"
    assert record["received_at"] == RECEIVED_AT


@pytest.mark.parametrize("received_at", ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59"])
def test_v1_received_at_outside_the_writable_years_in_utc_is_malformed(run: Any, received_at: str) -> None:
    """Valid-looking text whose offset moves it before year 1 or past 9999 in UTC: it could not be
    written back as RFC 3339, so it is one malformed_event, not an exception and a dead letter."""
    record = run(event(make_token(), received_at=received_at))
    _malformed(record)
    assert record["received_at"] is None and "0001-01-01T00:00:00Z" in record["detail"]


def test_v1_received_at_before_year_1000_is_written_with_four_digits(run: Any) -> None:
    record = run(event(identity={"uuid": "u"}, community_id="anon", signed_identity=None,
                       received_at="0999-01-01T00:00:00+01:00"))  # fmt: skip
    assert record["outcome"] == "enriched"
    assert record["received_at"] == "0998-12-31T23:00:00Z"


def test_v1_received_at_as_number_is_malformed(run: Any) -> None:
    record = run(event(make_token(), received_at=T0))  # type: ignore[arg-type]
    _malformed(record)


def test_v1_unknown_top_level_fields_are_ignored(run: Any) -> None:
    record = run(event(make_token(), schema_version=3, trace={"id": [1, 2]}))
    assert record["outcome"] == "enriched"


def test_v1_event_id_length_limits(run: Any) -> None:
    assert run(event(make_token(), event_id="e" * 128))["outcome"] == "enriched"
    record = run(event(make_token(), event_id="e" * 129))
    _malformed(record)
    assert record["event_id"] is None
    _malformed(run(event(make_token(), event_id="")))


@pytest.mark.parametrize("community_id", ["ac me", "acme/../x", "a" * 65, "", "acmé"])
def test_v1_ill_formed_community_id_is_malformed(run: Any, community_id: str) -> None:
    record = run(event(make_token(), community_id=community_id))
    _malformed(record)
    assert record["community_id"] is None


@pytest.mark.parametrize(
    "field,value",
    [
        ("event_id", 42),
        ("signed_identity", 42),
        ("signed_identity", ["a.b.c"]),
        ("identity", "v-1"),
        ("gateway", "gw-eu-1"),
    ],
)
def test_v1_wrong_types_are_malformed(run: Any, field: str, value: Any) -> None:
    base = json.loads(event(make_token()) if field != "identity" else event(identity={}, community_id="anon"))
    base[field] = value
    _malformed(run(json.dumps(base).encode()))


def test_v1_gateway_is_optional(run: Any) -> None:
    value = json.loads(event(make_token()))
    del value["gateway"]
    assert run(json.dumps(value).encode())["outcome"] == "enriched"


# ---------------------------------------------------------------- V2 community


def test_v2_unknown_community_blocks(run: Any) -> None:
    record = run(event(make_token(), community_id="nobody"))
    assert record["reason"] == "unknown_community" and record["action"] == "block"
    assert record["community_id"] == "nobody" and record["event_id"] == "e-1"
    assert record["received_at"] == RECEIVED_AT


# ---------------------------------------------------------------- V3 mode


def test_v3_require_mode_refuses_unsigned_and_blocks(run: Any) -> None:
    record = run(event(identity={"uuid": "v-1"}))
    assert record["reason"] == "signature_required" and record["action"] == "block"


def test_v3_reject_mode_refuses_signed_as_anonymous(run: Any) -> None:
    token = make_token(kid="anon_key", key=ANON_SECRET.encode())
    record = run(event(token, community_id="anon"))
    assert record["reason"] == "signed_identity_rejected" and record["action"] == "anonymous"


def test_v3_reject_mode_decides_before_the_token_is_read(run: Any) -> None:
    record = run(event("garbage", community_id="anon"))
    assert record["reason"] == "signed_identity_rejected" and record["action"] == "anonymous"


def test_v3_require_mode_decides_before_the_identity_is_read(run: Any) -> None:
    record = run(event(identity={"firstname": 42}))
    assert record["reason"] == "signature_required"


def test_v3_reject_mode_accepts_unsigned_without_verification(run: Any) -> None:
    record = run(event(identity={"uuid": "v-1", "firstname": "Ada"}, community_id="anon"))
    assert record["outcome"] == "enriched"
    assert record["signed"] is False and record["verification"] is None


def test_v3_later_rejection_in_reject_mode_is_anonymous(run: Any) -> None:
    record = run(event(identity={"firstname": 42}, community_id="anon"))
    assert record["reason"] == "invalid_claims" and record["action"] == "anonymous"


def test_v3_later_rejection_in_require_mode_blocks(run: Any) -> None:
    record = run(event(make_token(good_claims(exp=T0 - 3600))))
    assert record["reason"] == "token_expired" and record["action"] == "block"


# ---------------------------------------------------------------- V4 structure


def _segments(token: str) -> list[str]:
    return token.split(".")


def _b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: ".".join(_segments(t)[:2]),  # two segments
        lambda t: t + ".abc",  # four segments
        lambda t: "",  # empty
        lambda t: t.replace(".", "..", 1),  # empty header segment
        lambda t: "!" + t,  # not base64url
        lambda t: t.replace("-", "+").replace("_", "/") + "+/=",  # standard base64 alphabet/padding
        lambda t: _b64("not json") + "." + _segments(t)[1] + "." + _segments(t)[2],
        lambda t: _b64("[1,2]") + "." + _segments(t)[1] + "." + _segments(t)[2],
        lambda t: _segments(t)[0] + "." + _b64("[]") + "." + _segments(t)[2],
        lambda t: _segments(t)[0] + "." + _b64(b"\xff\xfe") + "." + _segments(t)[2],
        lambda t: _segments(t)[0] + "." + _segments(t)[1] + ".a",  # 1 char: impossible base64 length
        lambda t: " " + t,
    ],
)
def test_v4_not_a_compact_jws_is_malformed_token(verdict: Any, mangle: Any) -> None:
    assert verdict(mangle(make_token())) == "malformed_token"


def test_v4_token_size_limit_boundary(run: Any) -> None:
    token = make_token(good_claims(padding="p" * 500))
    ok = run(event(token), limits=Limits(max_token_bytes=len(token)))
    assert ok["outcome"] == "enriched"
    bad = run(event(token), limits=Limits(max_token_bytes=len(token) - 1))
    assert bad["reason"] == "malformed_token" and bad["action"] == "block"


def test_v4_default_token_limit_is_8_kib(verdict: Any) -> None:
    assert verdict(make_token(good_claims(padding="p" * 9000))) == "malformed_token"


def test_v4_precedes_v5(verdict: Any) -> None:
    token = _b64('{"alg":"none"}') + "." + _b64("[]") + "."
    assert verdict(token) == "malformed_token"


# ---------------------------------------------------------------- V5 header


def test_v5_typ_missing_is_invalid_header(verdict: Any) -> None:
    assert verdict(make_token(drop=("typ",))) == "invalid_header"


@pytest.mark.parametrize("typ", ["JWS", "at+jwt", "", 1, None, ["JWT"]])
def test_v5_typ_other_is_invalid_header(verdict: Any, typ: Any) -> None:
    assert verdict(make_token(header={"typ": typ})) == "invalid_header"


@pytest.mark.parametrize("typ", ["jwt", "Jwt", "JWT"])
def test_v5_typ_is_case_insensitive(verdict: Any, typ: str) -> None:
    assert verdict(make_token(header={"typ": typ})) == "accepted"


def test_v5_crit_is_invalid_header(verdict: Any) -> None:
    assert verdict(make_token(header={"crit": ["exp"]})) == "invalid_header"


def test_v5_b64_is_invalid_header(verdict: Any) -> None:
    assert verdict(make_token(header={"b64": False})) == "invalid_header"
    assert verdict(make_token(header={"b64": True})) == "invalid_header"


@pytest.mark.parametrize(
    "alg", ["none", "None", "NONE", "hs256", "HS512", "RS512", "ES256", "PS256", "", 256]
)
def test_v5_alg_other_than_hs256_rs256_is_unsupported(verdict: Any, alg: Any) -> None:
    assert verdict(make_token(alg=alg, sign_as="HS256")) == "unsupported_algorithm"


def test_v5_alg_missing_is_unsupported(verdict: Any) -> None:
    assert verdict(make_token(drop=("alg",), sign_as="HS256")) == "unsupported_algorithm"


def test_v5_kid_missing_is_missing_kid(verdict: Any) -> None:
    assert verdict(make_token(drop=("kid",))) == "missing_kid"


def test_v5_header_checks_come_in_order(verdict: Any) -> None:
    """typ before alg, alg before kid."""
    assert verdict(make_token(alg="none", drop=("typ", "kid"), sign_as="none")) == "invalid_header"
    assert verdict(make_token(alg="none", drop=("kid",), sign_as="none")) == "unsupported_algorithm"


# ---------------------------------------------------------------- V6 key


def test_v6_unknown_kid(verdict: Any) -> None:
    assert verdict(make_token(kid="acme_2025")) == "unknown_kid"


def test_v6_kid_of_another_community_is_unknown(verdict: Any) -> None:
    assert verdict(other_community_token()) == "unknown_kid"


@pytest.mark.parametrize("kid", [42, True, ["acme_2026"], {"k": 1}, ""])
def test_v6_kid_not_a_valid_key_id_is_unknown(verdict: Any, kid: Any) -> None:
    assert verdict(make_token(kid=kid)) == "unknown_kid"


def test_v6_rs256_token_naming_an_hmac_key_is_algorithm_key_mismatch(verdict: Any) -> None:
    assert verdict(make_token(alg="RS256", kid=HS_KID)) == "algorithm_key_mismatch"


def test_v6_hs256_token_naming_an_rsa_key_is_algorithm_key_mismatch(verdict: Any) -> None:
    assert verdict(make_token(alg="HS256", kid=RS_KID)) == "algorithm_key_mismatch"


def test_v6_every_active_key_is_usable(verdict: Any) -> None:
    """Rotation: two HMAC keys active at once, each verifies its own tokens."""
    from worker.core.pipeline import process_event

    lookup = acme_lookup(
        jwt_keys=[*acme_config()["jwt_keys"], {"kid": "acme_2027", "hmac_secret": OTHER_SECRET}]
    )
    for token in (make_token(), make_token(kid="acme_2027", key=OTHER_SECRET.encode())):
        assert process_event(event(token), lookup=lookup, now=NOW).outcome.value == "enriched"
    crossed = make_token(kid="acme_2027", key=SECRET.encode())
    assert process_event(event(crossed), lookup=lookup, now=NOW).reason == "invalid_signature"


# ---------------------------------------------------------------- V7 signature


def test_v7_wrong_hmac_secret_is_invalid_signature(verdict: Any) -> None:
    assert verdict(make_token(key=OTHER_SECRET.encode())) == "invalid_signature"


def test_v7_other_rsa_key_is_invalid_signature(verdict: Any) -> None:
    token = make_token(alg="RS256", kid=RS_KID, key=rsa_private(2048, 1))
    assert verdict(token) == "invalid_signature"


def test_v7_precedes_v8(verdict: Any) -> None:
    assert verdict(make_token(good_claims(exp=...), key=OTHER_SECRET.encode())) == "invalid_signature"


# ---------------------------------------------------------------- V8 exp


def test_v8_exp_missing(verdict: Any) -> None:
    assert verdict(make_token(good_claims(exp=...))) == "missing_exp"


@pytest.mark.parametrize(
    "exp", [True, False, str(T0 + 7200), T0 + 7200.5, [T0 + 7200], {"t": T0 + 7200}, "soon"]
)
def test_v8_exp_not_an_integer_numeric_date_is_invalid_exp(verdict: Any, exp: Any) -> None:
    assert verdict(make_token(good_claims(exp=exp))) == "invalid_exp"


def test_v8_exp_integral_float_is_accepted(verdict: Any) -> None:
    assert verdict(make_token(good_claims(exp=float(T0 + 7200)))) == "accepted"


def test_v8_precedes_v9(verdict: Any) -> None:
    assert verdict(make_token(good_claims(exp=True, nbf=T0 + 99999))) == "invalid_exp"


# ---------------------------------------------------------------- V9 expiry (leeway 10, min validity 3600)


def test_v9_expiry_exactly_min_validity_is_accepted(verdict: Any) -> None:
    """exp + leeway == received_at + min_validity_seconds."""
    assert verdict(make_token(good_claims(exp=T0 + 3600 - 10))) == "accepted"


def test_v9_expiry_one_second_short_of_min_validity_is_too_soon(run: Any) -> None:
    record = run(event(make_token(good_claims(exp=T0 + 3600 - 11))))
    assert record["reason"] == "expiry_too_soon" and record["action"] == "block"


def test_v9_min_validity_counts_from_received_at_not_now(verdict: Any) -> None:
    received = "2026-11-24T09:43:20Z"  # T0 - 1000
    assert verdict(make_token(good_claims(exp=T0 + 2590)), received_at=received) == "accepted"
    assert verdict(make_token(good_claims(exp=T0 + 2589)), received_at=received) == "expiry_too_soon"


def test_v9_expired_when_exp_plus_leeway_equals_now(verdict: Any) -> None:
    assert verdict(make_token(good_claims(exp=T0 - 10))) == "token_expired"


def test_v9_expired_takes_precedence_over_too_soon(verdict: Any) -> None:
    assert verdict(make_token(good_claims(exp=T0 - 3600))) == "token_expired"


def _lenient(**overrides: Any) -> Any:
    return acme_lookup(min_validity_seconds=0, **overrides)


def test_v9_one_second_inside_leeway_is_not_expired(run: Any) -> None:
    lookup = _lenient()
    assert run(event(make_token(good_claims(exp=T0 - 9))), lookup=lookup)["outcome"] == "enriched"
    assert run(event(make_token(good_claims(exp=T0 - 10))), lookup=lookup)["reason"] == "token_expired"


def test_v9_uses_the_configured_leeway_and_min_validity(run: Any) -> None:
    lookup = acme_lookup(min_validity_seconds=60, leeway_seconds=0)
    assert run(event(make_token(good_claims(exp=T0 + 60))), lookup=lookup)["outcome"] == "enriched"
    assert run(event(make_token(good_claims(exp=T0 + 59))), lookup=lookup)["reason"] == "expiry_too_soon"
    assert run(event(make_token(good_claims(exp=T0))), lookup=lookup)["reason"] == "token_expired"


def test_v9_now_is_the_processing_clock(verdict: Any) -> None:
    token = make_token(good_claims(exp=T0 + 7200))
    assert verdict(token, now=NOW + 7190 - 1) == "accepted"
    assert verdict(token, now=NOW + 7210) == "token_expired"


# ---------------------------------------------------------------- V10 nbf, iat


def test_v10_nbf_at_now_plus_leeway_is_accepted(verdict: Any) -> None:
    assert verdict(make_token(good_claims(nbf=T0 + 10))) == "accepted"


def test_v10_nbf_one_second_past_leeway_is_not_yet_valid(verdict: Any) -> None:
    assert verdict(make_token(good_claims(nbf=T0 + 11))) == "token_not_yet_valid"


@pytest.mark.parametrize("nbf", [str(T0), True, T0 + 0.5, [T0]])
def test_v10_nbf_not_an_integer_is_not_yet_valid(verdict: Any, nbf: Any) -> None:
    assert verdict(make_token(good_claims(nbf=nbf))) == "token_not_yet_valid"


def test_v10_iat_at_now_plus_leeway_is_accepted(verdict: Any) -> None:
    assert verdict(make_token(good_claims(iat=T0 + 10))) == "accepted"


def test_v10_iat_one_second_past_leeway_is_invalid_claims(verdict: Any) -> None:
    assert verdict(make_token(good_claims(iat=T0 + 11))) == "invalid_claims"


@pytest.mark.parametrize("iat", [str(T0), False, T0 + 0.25, {"t": T0}])
def test_v10_iat_not_an_integer_is_invalid_claims(verdict: Any, iat: Any) -> None:
    assert verdict(make_token(good_claims(iat=iat))) == "invalid_claims"


def test_v10_nbf_and_iat_are_optional(verdict: Any) -> None:
    assert verdict(make_token(good_claims(iat=...))) == "accepted"


def test_v10_comes_after_v9(verdict: Any) -> None:
    assert verdict(make_token(good_claims(exp=T0 + 60, nbf=T0 + 99999))) == "expiry_too_soon"


# ---------------------------------------------------------------- V11 uuid


@pytest.mark.parametrize("uuid", [..., None, "", 42, ["v"], "u" * 256])
def test_v11_uuid_missing_empty_non_string_or_too_long(verdict: Any, uuid: Any) -> None:
    assert verdict(make_token(good_claims(uuid=uuid) if uuid is not None else good_claims(uuid=None))) == (
        "missing_uuid"
    )


def test_v11_uuid_of_255_chars_is_accepted(verdict: Any) -> None:
    assert verdict(make_token(good_claims(uuid="u" * 255))) == "accepted"


def test_v11_comes_after_v10(verdict: Any) -> None:
    assert verdict(make_token(good_claims(uuid=..., nbf=T0 + 999))) == "token_not_yet_valid"


def test_v11_does_not_apply_to_unsigned_identities(run: Any) -> None:
    record = run(event(identity={"firstname": "Ada"}, community_id="anon"))
    assert record["outcome"] == "enriched" and "uuid" not in record["identity"]


def test_v11_precedes_v12(verdict: Any) -> None:
    assert verdict(make_token(good_claims(uuid=..., firstname=42))) == "missing_uuid"


# ---------------------------------------------------------------- V12 identity types and sizes


def _signed_claims(run: Any, **claims: Any) -> dict[str, Any]:
    return run(event(make_token(good_claims(**claims))))


def _unsigned(run: Any, identity: dict[str, Any]) -> dict[str, Any]:
    return run(event(identity=identity, community_id="anon"))


@pytest.mark.parametrize(
    "name", ["uuid", "screenname", "firstname", "lastname", "company", "email", "avatar_url"]
)
def test_v12_identity_field_1024_chars_ok_1025_refused(run: Any, name: str) -> None:
    ok = _unsigned(run, {name: "x" * 1024})
    assert ok["outcome"] == "enriched" and ok["identity"][name] == "x" * 1024
    bad = _unsigned(run, {name: "x" * 1025})
    assert bad["reason"] == "invalid_claims" and bad["action"] == "anonymous"
    if name != "uuid":  # a signed uuid is bounded at 255 by V11
        assert _signed_claims(run, **{name: "x" * 1024})["outcome"] == "enriched"
        assert _signed_claims(run, **{name: "x" * 1025})["reason"] == "invalid_claims"


@pytest.mark.parametrize("value", [42, 1.5, True, ["Ada"], {"first": "Ada"}])
def test_v12_identity_field_not_a_string_is_invalid_claims(run: Any, value: Any) -> None:
    assert _signed_claims(run, firstname=value)["reason"] == "invalid_claims"
    assert _unsigned(run, {"firstname": value})["reason"] == "invalid_claims"


def test_v12_null_identity_field_counts_as_absent(run: Any) -> None:
    record = _signed_claims(run, firstname=None, email=None)
    assert record["outcome"] == "enriched"
    assert "firstname" not in record["identity"] and record["identity_group"]["firstname"] is None
    assert record["identity_group"]["emails"] == []


def test_v12_extra_values_limit_100_entries(run: Any) -> None:
    hundred = {f"k{i}": "v" for i in range(100)}
    assert _signed_claims(run, extra_values=hundred)["outcome"] == "enriched"
    assert _signed_claims(run, extra_values={**hundred, "k100": "v"})["reason"] == "invalid_claims"
    assert _unsigned(run, {"extra_values": {**hundred, "k100": "v"}})["reason"] == "invalid_claims"


def test_v12_extra_value_key_length_1_to_64(run: Any) -> None:
    assert _signed_claims(run, extra_values={"k": "v", "k" * 64: "v"})["outcome"] == "enriched"
    assert _signed_claims(run, extra_values={"k" * 65: "v"})["reason"] == "invalid_claims"
    assert _signed_claims(run, extra_values={"": "v"})["reason"] == "invalid_claims"


def test_v12_extra_value_string_1024_chars(run: Any) -> None:
    assert _signed_claims(run, extra_values={"k": "v" * 1024})["outcome"] == "enriched"
    assert _signed_claims(run, extra_values={"k": "v" * 1025})["reason"] == "invalid_claims"


@pytest.mark.parametrize("value", [{"nested": "object"}, ["list"], []])
def test_v12_extra_value_object_or_list_is_invalid_claims(run: Any, value: Any) -> None:
    assert _signed_claims(run, extra_values={"k": value})["reason"] == "invalid_claims"
    assert _unsigned(run, {"extra_values": {"k": value}})["reason"] == "invalid_claims"


@pytest.mark.parametrize("extra", ["C123456", ["C123456"], 42, True])
def test_v12_extra_values_not_an_object_is_invalid_claims(run: Any, extra: Any) -> None:
    assert _signed_claims(run, extra_values=extra)["reason"] == "invalid_claims"


def test_v12_numbers_and_booleans_are_carried_as_json_text(run: Any) -> None:
    extra = {"n": 42, "neg": -7, "f": 1.5, "t": True, "false": False, "s": "42", "gone": None}
    for record in (_signed_claims(run, extra_values=extra), _unsigned(run, {"extra_values": extra})):
        assert record["outcome"] == "enriched"
        assert record["identity"]["extra_values"] == {
            "n": "42",
            "neg": "-7",
            "f": "1.5",
            "t": "true",
            "false": "false",
            "s": "42",
        }


def test_v12_other_claims_are_ignored(run: Any) -> None:
    record = _signed_claims(run, role={"admin": [1, 2]}, aud=["x"], iss=5, gender="f")
    assert record["outcome"] == "enriched"
    kept = "uuid screenname firstname lastname company email avatar_url extra_values"  # V12
    assert set(record["identity"]) <= set(kept.split())
    assert record["identity_group"]["gender"] is None


def test_v12_extra_values_null_counts_as_absent(run: Any) -> None:
    record = _signed_claims(run, extra_values=None)
    assert record["outcome"] == "enriched" and record["identity"]["extra_values"] == {}


def test_v12_unsigned_identity_with_no_fields_is_accepted(run: Any) -> None:
    record = _unsigned(run, {})
    assert record["outcome"] == "enriched" and record["identity"] == {"extra_values": {}}
