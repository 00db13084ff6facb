"""One strict reading of JWS and JSON text (DESIGN V4, J1–J4).

Each kind of strictness mistake once found has its example (the tests named `issue12_…`)
and variants tried beyond it. Every output is read back by a strict JSON reader
(`validate_output` → orjson), so no test here passes with a lone surrogate in a record.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.core import (
    HS_KID,
    NOW,
    RS_KID,
    SECRET,
    T0,
    b64json,
    b64url,
    base_communities,
    event,
    good_claims,
    make_token,
    sign_hs256,
    strict_json,
    validate_output,
)
from worker.core.jsontext import MAX_DEPTH, InvalidText, JsonFloat, LongInteger, integer_of, read_object
from worker.core.jws import decode_segment
from worker.core.pipeline import process_event
from worker.core.records import dead_letter

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _respell(segment: str) -> str | None:
    """The same bytes spelt with a set unused bit in the last character (None: no unused bits)."""
    if len(segment) % 4 in (0, 1):
        return None
    return segment[:-1] + ALPHABET[ALPHABET.index(segment[-1]) + 1]


def _lenient(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


# ---------------------------------------------------------------- kind 1: canonical base64url (V4)


def test_issue12_kind1_signature_ending_No_respelt_Np_is_malformed_token(verdict: Any) -> None:
    """A valid HS256 token whose signature's last character is re-spelt so
    that bits that must be zero are set (`…No` → `…Np`) decodes to the same signature; it was
    enriched. PyJWT's own jwt.decode refuses it ("Invalid crypto padding")."""
    token = make_token()
    head, body, sig = token.split(".")
    respelt = _respell(sig)
    assert respelt is not None and _lenient(respelt) == _lenient(sig)  # the same signature bytes
    assert verdict(token) == "accepted"
    assert verdict(f"{head}.{body}.{respelt}") == "malformed_token"


@pytest.mark.parametrize("alg,kid", [("HS256", HS_KID), ("RS256", RS_KID)])
@pytest.mark.parametrize("part", [0, 1, 2])
def test_v4_every_segment_of_every_algorithm_must_be_canonical(
    verdict: Any, alg: str, kid: str, part: int
) -> None:
    """Header, payload and signature alike, HS256 and RS256: each unused-bit re-spelling is refused."""
    tried = 0
    for n in range(6):  # vary the segment lengths until this segment has unused bits
        claims = good_claims(firstname="A" * n)
        token = make_token(claims, alg=alg, kid=kid, header={"x": "y" * n})
        segments = token.split(".")
        respelt = _respell(segments[part])
        if respelt is None:
            continue
        assert verdict(token) == "accepted"
        segments[part] = respelt
        assert verdict(".".join(segments)) == "malformed_token"
        tried += 1
    assert tried


@pytest.mark.parametrize(
    "spell",
    [
        lambda s: s + "=",  # padding
        lambda s: s + "==",
        lambda s: s.replace("-", "+").replace("_", "/") if ("-" in s or "_" in s) else s[:-1] + "+",
        lambda s: s + "A" * ((1 - len(s)) % 4),  # a length that is never base64 (4n + 1)
    ],
)
def test_v4_padding_standard_alphabet_and_bad_lengths_are_malformed_token(verdict: Any, spell: Any) -> None:
    head, body, sig = make_token(alg="RS256", kid=RS_KID).split(".")
    assert verdict(f"{head}.{body}.{spell(sig)}") == "malformed_token"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), st.integers(1, 15))
def test_v4_one_byte_string_has_exactly_one_segment_text(data: bytes, bits: int) -> None:
    canonical = b64url(data)
    assert decode_segment(canonical) == data
    rest = len(canonical) % 4
    if rest:
        unused = 4 if rest == 2 else 2
        index = ALPHABET.index(canonical[-1]) | (bits % (1 << unused))
        other = canonical[:-1] + ALPHABET[index]
        if other != canonical:
            assert _lenient(other) == data and decode_segment(other) is None


# ---------------------------------------------------------------- kind 2: unpaired surrogates (J2)


def test_issue12_kind2_signed_firstname_Ann_ud800_is_invalid_claims(run: Any) -> None:
    """A signed payload with `"firstname":"Ann\\ud800"` (the escape, as JSON
    text) was enriched and the record carried the lone surrogate (jq, serde_json refuse it)."""
    payload = json.dumps(good_claims(firstname="Ann\ud800"))
    assert '"firstname": "Ann\\ud800"' in payload
    record = run(event(make_token(payload_text=payload)))
    assert (record["reason"], record["action"]) == ("invalid_claims", "block")
    assert record["event_id"] == "e-1" and "firstname" in record["detail"]


def test_issue12_kind2_unsigned_lastname_with_lone_surrogate_in_reject_community(run: Any) -> None:
    """An unsigned identity with such a `lastname` in a `reject` community."""
    record = run(event(identity={"uuid": "u", "lastname": "Lovelace\udc00"}, community_id="anon"))
    assert (record["reason"], record["action"]) == ("invalid_claims", "anonymous")
    assert (record["event_id"], record["community_id"]) == ("e-1", "anon")


@pytest.mark.parametrize(
    "extra",
    [{"k": "x\ud800"}, {"k\udfff": "x"}, {"k": "\ude00\ud83d"}],  # value, key, reversed pair
)
def test_j2_extra_values_with_lone_surrogates_are_invalid_claims(run: Any, extra: dict[str, str]) -> None:
    assert run(event(make_token(good_claims(extra_values=extra))))["reason"] == "invalid_claims"
    assert run(event(identity={"extra_values": extra}, community_id="anon"))["reason"] == "invalid_claims"


def test_j2_a_surrogate_pair_is_one_character_and_accepted(run: Any) -> None:
    record = run(event(make_token(good_claims(firstname="Ada \ud83d\ude00"))))
    assert record["identity"]["firstname"] == "Ada \U0001f600"


@pytest.mark.parametrize(
    "field,value",
    [
        ("event_id", "e-\ud800"),
        ("received_at", "2026-11-24T10:00:00Z\udc00"),
        ("community_id", "acme\ud800"),
        ("signed_identity", "x\udbff"),
        ("gateway", {"name": "gw\ud800"}),
        ("gateway", {"n\ud800": "gw"}),
    ],
)
def test_j2_envelope_fields_with_lone_surrogates_are_malformed_event(
    run: Any, field: str, value: Any
) -> None:
    record = run(event(make_token(), **{field: value}))
    assert record["reason"] == "malformed_event"
    assert field in record["detail"] and "surrogate" in record["detail"]
    if field != "event_id":
        assert record["event_id"] == "e-1"  # what can be read is still read
    else:
        assert record["event_id"] is None


def test_j2_unknown_fields_with_lone_surrogates_are_ignored(run: Any) -> None:
    """Unknown top-level fields and identity members other than §2.1's are not read."""
    value = event(make_token(good_claims(**{"other\ud800": "x", "note": "y\ud800"})), **{"z\udc00": 1})
    assert run(value)["outcome"] == "enriched"
    record = run(event(identity={"uuid": "u", "x\ud800": "\ud800"}, community_id="anon"))
    assert record["outcome"] == "enriched"


@pytest.mark.parametrize(
    "header,reason",
    [
        ({"typ": "JWT\ud800"}, "invalid_header"),
        ({"typ\ud800": "JWT"}, "invalid_header"),  # no typ
        ({"alg": "HS256\udc00"}, "unsupported_algorithm"),
        ({"kid": "acme_2026\ud800"}, "unknown_kid"),
        ({"x": "\ud800"}, "accepted"),  # a header member V5 does not read
    ],
)
def test_j2_token_header_with_lone_surrogates_gets_v5_v6_reasons(
    verdict: Any, header: dict[str, str], reason: str
) -> None:
    head: dict[str, Any] = {"typ": "JWT", "alg": "HS256", "kid": HS_KID}
    head.update(header)
    if "typ\ud800" in header:
        del head["typ"]
    assert verdict(make_token(header_text=json.dumps(head))) == reason


# ---------------------------------------------------------------- kind 3: numbers (J4)


def unsigned(identity: str) -> bytes:
    """An unsigned event for the `reject` community `anon` whose identity is this JSON text."""
    return event(identity={}, community_id="anon").replace(
        b'"identity": {}', f'"identity": {identity}'.encode()
    )


def _with(base: str, member: str, text: str) -> str:
    """JSON text of `base` (an object's text) with one more member whose value is raw `text`."""
    return f'{base[:-1]}, "{member}": {text}}}'


def test_issue12_kind3_unsigned_extra_value_of_20000_digits_is_invalid_claims_with_its_ids(run: Any) -> None:
    """An unsigned identity (a `reject` community) whose extra value is a
    20 000-digit number got malformed_event/block with null ids and "value is not a JSON
    object" (Python's 4300-digit limit). It is a readable event whose identity is invalid."""
    identity = _with('{"uuid": "u"}', "extra_values", '{"n": ' + "7" * 20_000 + "}")
    value = unsigned(identity)
    record = run(value)
    assert (record["reason"], record["action"]) == ("invalid_claims", "anonymous")
    assert (record["event_id"], record["community_id"], record["received_at"]) == (
        "e-1",
        "anon",
        "2026-11-24T10:00:00Z",
    )
    assert "extra_values" in record["detail"] and len(record["detail"]) < 200


def test_issue12_kind3_exp_with_a_fraction_lost_in_a_double_is_invalid_exp(verdict: Any) -> None:
    """`"exp": <valid>.00000001` was enriched: the fraction disappears in a
    double. V8: a fraction is invalid."""
    exp = T0 + 7200
    assert float(f"{exp}.00000001") == float(exp)
    base = json.dumps(good_claims(exp=...))
    assert verdict(make_token(payload_text=_with(base, "exp", f"{exp}.00000001"))) == "invalid_exp"
    for exact in (f"{exp}.0", f"{exp}.000", f"{exp}e0", f"{exp}0e-1", f"{exp * 100}E-2"):
        assert verdict(make_token(payload_text=_with(base, "exp", exact))) == "accepted", exact


def test_j4_nbf_and_iat_are_judged_from_their_text(verdict: Any) -> None:
    base = json.dumps(good_claims(iat=...))
    almost = f"{T0 - 5}.000000001"
    assert verdict(make_token(payload_text=_with(base, "nbf", almost))) == "token_not_yet_valid"
    assert verdict(make_token(payload_text=_with(base, "iat", almost))) == "invalid_claims"
    assert verdict(make_token(payload_text=_with(base, "iat", f"{T0 - 5}.0"))) == "accepted"


@pytest.mark.parametrize("digits", [4301, 5500])  # within the 8 KiB token limit
def test_j4_huge_integers_never_make_a_token_unreadable(verdict: Any, digits: int) -> None:
    base = json.dumps(good_claims(exp=...))
    assert verdict(make_token(payload_text=_with(base, "exp", "9" * digits))) == "invalid_exp"
    signed = _with(json.dumps(good_claims(extra_values=...)), "extra_values", '{"n": ' + "1" * digits + "}")
    assert verdict(make_token(payload_text=signed)) == "invalid_claims"
    header = _with(json.dumps({"alg": "HS256", "kid": HS_KID}), "typ", "-" + "1" * digits)
    assert verdict(make_token(header_text=header)) == "invalid_header"
    ignored = _with(json.dumps(good_claims()), "other", "1" * digits)
    assert verdict(make_token(payload_text=ignored)) == "accepted"


def test_j4_huge_integer_in_an_envelope_field_keeps_the_readable_ids(run: Any) -> None:
    value = event(make_token(), event_id="PLACEHOLDER").replace(b'"PLACEHOLDER"', b"1" * 20_000)
    record = run(value)
    assert record["reason"] == "malformed_event"
    assert (record["event_id"], record["community_id"]) == (None, "acme")
    gateway = event(make_token()).replace(b'"gw-eu-1"', b"1" * 20_000)
    assert run(gateway)["outcome"] == "enriched"


@pytest.mark.parametrize(
    "text,accepted",
    [
        ("1" * 1024, True),
        ("1" * 1025, False),
        ("-" + "1" * 1023, True),
        ("-" + "1" * 1024, False),
        ("1." + "0" * 1022, True),  # 1024 characters of text, carried as 1.0
        ("1." + "0" * 1023, False),  # 1025 characters: its text counts, not what a double keeps
        ("1e" + "0" * 1023, False),
    ],
)
def test_j4_an_extra_value_number_text_counts_against_1024_characters(
    run: Any, text: str, accepted: bool
) -> None:
    identity = '{"uuid": "u", "extra_values": {"n": ' + text + "}}"
    value = unsigned(identity)
    record = run(value)
    assert (record["outcome"] == "enriched") is accepted, record.get("detail")
    if accepted:
        assert record["identity"]["extra_values"]["n"] in (text, "1.0")


def test_j4_numbers_keep_their_json_text_as_extra_values(run: Any) -> None:
    identity = '{"extra_values": {"a": 42, "b": 1.5, "c": 1e2, "d": -0, "e": true}}'
    value = unsigned(identity)
    expected = {"a": "42", "b": "1.5", "c": "100.0", "d": "0", "e": "true"}
    assert run(value)["identity"]["extra_values"] == expected


def test_j4_integer_of_judges_the_text() -> None:
    def read(text: str) -> Any:
        obj = read_object('{"v": ' + text + "}")
        assert isinstance(obj, dict)
        return obj["v"]

    assert integer_of(read("17")) == 17
    assert integer_of(read("1.7e1")) == 17
    assert integer_of(read("1.75e1")) is None
    assert integer_of(read("1e400")) is None and integer_of(read("1e-400")) is None
    assert integer_of(read("1" * 5000)) is None and isinstance(read("1" * 5000), LongInteger)
    assert integer_of(True) is None and integer_of("17") is None
    assert isinstance(read("0.5"), JsonFloat)


@pytest.mark.parametrize("zero", ["0e21", "0E+400", "-0.0e999", "0.000e-5"])
def test_review_j4_zero_with_any_exponent_is_the_integer_0(verdict: Any, zero: str) -> None:
    """J4, judged from the text exactly: `0e21` denotes the
    integer 0, but its exponent alone made it "not an integer": `nbf`/`iat` of `0e400` (long
    past) refused a valid token, and `exp` of `0e21` was invalid_exp instead of token_expired."""
    assert integer_of(read_object('{"v": ' + zero + "}")["v"]) == 0  # type: ignore[index]
    base = json.dumps(good_claims(iat=...))
    assert verdict(make_token(payload_text=_with(base, "nbf", zero))) == "accepted"
    assert verdict(make_token(payload_text=_with(base, "iat", zero))) == "accepted"
    expired = _with(json.dumps(good_claims(exp=...)), "exp", zero)
    assert verdict(make_token(payload_text=expired)) == "token_expired"


# ---------------------------------------------------------------- kind 4: nesting (J3)


def _nested(arrays: int, leaf: str = '"JWT"') -> str:
    return "[" * arrays + leaf + "]" * arrays


def test_issue12_kind4_typ_nested_983_deep_is_malformed_token(verdict: Any) -> None:
    """A header whose `typ` is nested about 983 levels deep got invalid_header
    from `process` and malformed_token from `token verify` (Python's recursion limit decided).
    One explicit limit (32): malformed_token (the `token verify` side is in test_cli_offline)."""
    header = '{"alg": "HS256", "kid": "acme_2026", "typ": ' + _nested(983) + "}"
    assert verdict(make_token(header_text=header)) == "malformed_token"


@pytest.mark.parametrize("depth", [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 983, 2000])
def test_j3_one_explicit_nesting_limit_everywhere(verdict: Any, run: Any, depth: int) -> None:
    """The object itself is level 1: 32 levels are read, 33 are not, in header, payload and event."""
    ok = depth <= MAX_DEPTH
    header = '{"alg": "HS256", "kid": "acme_2026", "typ": "JWT", "x": ' + _nested(depth - 1, "1") + "}"
    assert verdict(make_token(header_text=header)) == ("accepted" if ok else "malformed_token")
    payload = _with(json.dumps(good_claims()), "x", _nested(depth - 1, "1"))
    assert verdict(make_token(payload_text=payload)) == ("accepted" if ok else "malformed_token")
    gateway = _nested(depth - 2, '{"name": "gw"}')  # the envelope, depth - 2 arrays, the object
    record = run(event(make_token()).replace(b'{"name": "gw-eu-1"}', gateway.encode()))
    assert record["reason"] == "malformed_event"
    assert ("gateway" in record["detail"]) if ok else ("nested deeper than 32" in record["detail"])
    identity = _with('{"uuid": "u"}', "other", _nested(depth - 2, "1"))  # ignored, unless too deep
    value = unsigned(identity)
    assert run(value)["outcome"] == ("enriched" if ok else "rejected")


def test_j3_far_deeper_than_the_stack_is_the_same_verdict() -> None:
    assert read_object('{"a": ' + _nested(200_000, "1") + "}") == "nested deeper than 32 levels"


def test_j3_brackets_inside_strings_do_not_count() -> None:
    assert isinstance(read_object('{"a": "' + "[" * 100 + '"}'), dict)


@pytest.mark.parametrize("depth", [MAX_DEPTH, 1010])  # 1010: past orjson's reach of `json`'s stack
@pytest.mark.parametrize("escape", ["", "\\ud800"])  # both reading paths
def test_j3_a_member_a_repeated_name_replaced_still_nested(depth: int, escape: str) -> None:
    # J1 keeps the last of a repeated name, but J3 judges the document: its first member nests
    # depth + 1 levels. Read as {"a": 1} before (at 1000-1023 levels: answered by the stack).
    text = '{"a": ' + _nested(depth, "1") + f', "b": "{escape}", "a": 1}}'
    assert read_object(text) == "nested deeper than 32 levels"
    shallow = '{"a": ' + _nested(MAX_DEPTH - 1, '"]]}}\\"[[{"') + ', "a": 1}'  # strings: no brackets
    assert read_object(shallow) == {"a": 1}
    assert isinstance(read_object('{"l": [' + ",".join(["{}"] * 100) + "]}"), dict)  # many, shallow


# ---------------------------------------------------------------- J1 and the reader itself


def test_j1_repeated_member_name_last_wins_on_both_reading_paths() -> None:
    assert read_object('{"a": 1, "a": 2}') == {"a": 2}
    assert read_object('{"a": 1, "b": "\\ud800", "a": 2}') == {"a": 2, "b": InvalidText("\ud800")}
    assert read_object('{"a": 1, "a": ' + "1" * 5000 + "}") == {"a": LongInteger("1" * 5000)}


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "\ufeff{}", "{'a': 1}", '{"a": 1,}'])
def test_j1_not_rfc_8259(text: str) -> None:
    document = text if text.startswith(("{", "\ufeff")) else '{"a": ' + text + "}"
    assert read_object(document) == "not RFC 8259 JSON"


def test_hmac_signature_of_a_hand_written_payload_is_checked(verdict: Any) -> None:
    """The helper signs the text it is given: a changed byte is invalid_signature (sanity)."""
    token = make_token(payload_text=json.dumps(good_claims()))
    head, body, sig = token.split(".")
    assert verdict(token) == "accepted"
    other = b64json(good_claims(uuid="w"))
    assert verdict(f"{head}.{other}.{sig}") == "invalid_signature"
    assert sign_hs256(f"{head}.{body}".encode(), SECRET.encode()) == _lenient(sig)


def test_outputs_never_carry_a_lone_surrogate() -> None:
    """Every reading of a value with lone surrogates, wherever they sit, gives one record that a
    strict reader accepts (validate_output parses with orjson)."""
    for value in (
        event(make_token(good_claims(firstname="\ud800"))),
        event(identity={"lastname": "\udfff", "extra_values": {"\ud800": "\udc00"}}, community_id="anon"),
        event(make_token(), event_id="\ud800", gateway={"\udc00": "\ud800"}),
        event(make_token(header={"typ": "\ud800", "kid": "\ud800"})),
        event(make_token(header={"kid": "\ud800"})),
        event(make_token(header={"alg": "\ud800"})),
    ):
        validate_output(process_event(value, lookup=base_communities(), now=NOW))


def test_a_dead_letter_never_carries_a_lone_surrogate() -> None:
    """Exception text may quote data; the dead letter's error_message is escaped (J2)."""
    letter = dead_letter(
        event(make_token()), ValueError("bad \ud800 value"), now=NOW, source=None, attempts=1
    )
    record = strict_json(letter.to_json())
    assert record["error_message"] == "bad \\ud800 value"
