"""Property-based tests (hypothesis) of the pipeline's guarantees (K1, DESIGN §2, V12, J2).

Whatever the input — arbitrary bytes, arbitrary JSON, arbitrary envelopes carrying arbitrary
identities and tokens, strings with paired and unpaired surrogates — `process_event` returns
exactly one output, raises nothing, its JSON is read by a strict JSON reader (orjson: RFC 8259,
no lone surrogate), validates against the matching contract model and never contains a
configured secret.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ConfigDict, Field, StrictBool, StrictFloat, StrictInt, ValidationError, create_model

from tests.support.core import (
    HMAC_SECRETS,
    HS_KID,
    NOW,
    RECEIVED_AT,
    RS_KID,
    T0,
    b64json,
    base_communities,
    make_token,
    validate_output,
)
from worker.core.contracts import MAX_EXTRA_KEY_CHARS, MAX_EXTRA_VALUES, MAX_IDENTITY_FIELD_CHARS, RawEvent
from worker.core.jsontext import has_surrogate_escape, read_object
from worker.core.pipeline import Event, plain_event, process_event
from worker.core.records import Output
from worker.core.verify import Rejected, read_identity

COMMON = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text with surrogates, paired or not: json.dumps escapes them (`\\ud800`), as an attacker would (J2).
surrogate_text = st.text(st.sampled_from(["a", "\u00e9", "\ud800", "\udfff", "\ud83d", "\ude00"]), max_size=6)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    surrogate_text,
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5)
        # member names too may hold lone surrogates (J2): the trace of `token verify` once choked on one
        | st.dictionaries(st.text(max_size=10) | surrogate_text, children, max_size=5)
    ),
    max_leaves=25,
)


def check(value: bytes | None, *, now: float = NOW) -> dict[str, Any]:
    output = process_event(value, lookup=base_communities(), now=now)
    assert isinstance(output, Output)
    record = validate_output(output)
    text = output.to_json().decode("utf-8")
    for secret in HMAC_SECRETS:
        assert secret not in text
    return record


@COMMON
@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_one_valid_output(value: bytes) -> None:
    record = check(value)
    assert record["outcome"] == "rejected" and record["reason"] == "malformed_event"


@COMMON
@given(json_values)
def test_arbitrary_json_gives_one_valid_output(value: Any) -> None:
    check(json.dumps(value).encode())


# ---------------------------------------------------------------- envelopes


identity_text = st.one_of(
    st.text(max_size=30),
    surrogate_text,
    st.integers(min_value=1020, max_value=1030).map(lambda n: "x" * n),
)
extra_keys = st.one_of(
    st.text(min_size=0, max_size=5), surrogate_text, st.integers(62, 66).map(lambda n: "k" * n)
)
extra_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    identity_text,
)
extra_value_any = st.one_of(
    extra_scalar,
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@st.composite
def extra_values(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["small", "many", "other"]))
    if kind == "other":
        return draw(st.one_of(json_scalars, st.lists(st.integers(), max_size=2)))
    if kind == "many":
        n = draw(st.integers(98, 102))
        return {f"k{i}": draw(extra_scalar) for i in range(n)}
    return draw(st.dictionaries(extra_keys, st.one_of(extra_scalar, extra_value_any), max_size=6))


#: DESIGN §2.1's identity fields, as written there (the tests' own spelling, not the product's).
FIELDS = ("uuid", "screenname", "firstname", "lastname", "company", "email", "avatar_url")
field_names = st.sampled_from(FIELDS)


@st.composite
def identities(draw: st.DrawFn) -> dict[str, Any]:
    identity: dict[str, Any] = {}
    for name in draw(st.lists(field_names, max_size=7, unique=True)):
        identity[name] = draw(
            st.one_of(identity_text, identity_text, json_scalars, st.lists(st.text(), max_size=2))
        )
    if draw(st.booleans()):
        identity["extra_values"] = draw(extra_values())
    for name, value in draw(st.dictionaries(st.text(max_size=8), json_values, max_size=3)).items():
        identity.setdefault(name, value)
    return identity


numeric_dates = st.one_of(
    st.integers(min_value=T0 - 10_000, max_value=T0 + 20_000),
    st.sampled_from([T0 - 10, T0 - 9, T0 + 3589, T0 + 3590, T0 + 10, T0 + 11]),
    st.floats(min_value=T0 - 100, max_value=T0 + 10_000, allow_nan=False),
    st.sampled_from([True, "soon", None, -1, 10**30]),
)


@st.composite
def tokens(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["valid", "valid", "mangled", "text", "header"]))
    claims = draw(identities())
    for name in ("exp", "nbf", "iat"):
        if draw(st.booleans()):
            claims[name] = draw(numeric_dates)
    if kind == "text":
        return draw(st.text(max_size=80))
    alg, kid = draw(
        st.sampled_from([("HS256", HS_KID), ("RS256", RS_KID), ("HS256", RS_KID), ("none", HS_KID)])
    )
    if kind == "header":
        header = draw(
            st.dictionaries(
                st.sampled_from(["typ", "alg", "kid", "crit", "b64", "jwk", "x\ud800"]), json_values
            )
        )
        return make_token(claims, kid=kid, alg=alg, header=header, sign_as="HS256" if alg == "none" else alg)
    token = make_token(claims, kid=kid, alg=alg, sign_as="HS256" if alg == "none" else alg)
    if kind == "mangled":
        head, body, sig = token.split(".")
        part = draw(st.sampled_from(["head", "body", "sig", "dots"]))
        junk = draw(st.text(alphabet="ABCxyz09-_.=+/ ", max_size=6))
        if part == "head":
            head = b64json(draw(json_values))
        elif part == "body":
            body = body[: draw(st.integers(0, len(body)))] + junk
        elif part == "sig":
            sig = sig[: draw(st.integers(0, len(sig)))] + junk
        else:
            return token.replace(".", junk, draw(st.integers(1, 2)))
        token = f"{head}.{body}.{sig}"
    return token


@st.composite
def envelopes(draw: st.DrawFn) -> dict[str, Any]:
    value: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        value["event_id"] = draw(
            st.one_of(st.just("e-1"), st.text(max_size=4), surrogate_text, st.integers(0, 3))
        )
    if draw(st.integers(0, 9)):
        value["community_id"] = draw(st.sampled_from(["acme", "anon", "other", "nobody", "bad id", 7]))
    if draw(st.integers(0, 9)):
        value["received_at"] = draw(
            st.sampled_from([RECEIVED_AT, "2026-11-24T09:00:00+00:00", "2026-11-24T10:00:00", "x", T0])
        )
    which = draw(st.sampled_from(["signed", "unsigned", "both", "neither", "nulls"]))
    if which in ("signed", "both"):
        value["signed_identity"] = draw(tokens())
    if which in ("unsigned", "both"):
        value["identity"] = draw(st.one_of(identities(), identities(), json_values))
    if which == "nulls":
        value["identity"] = None
        value["signed_identity"] = draw(st.one_of(st.none(), tokens()))
    if draw(st.booleans()):
        value["gateway"] = draw(st.one_of(st.just({"name": "gw"}), json_values))
    value.update(draw(st.dictionaries(st.text(max_size=6), json_values, max_size=2)))
    return value


@COMMON
@given(envelopes())
def test_arbitrary_envelopes_give_one_valid_output(value: dict[str, Any]) -> None:
    check(json.dumps(value).encode())


@COMMON
@given(envelopes(), st.floats(min_value=NOW - 20_000, max_value=NOW + 20_000))
def test_arbitrary_envelopes_at_any_clock_give_one_valid_output(value: dict[str, Any], now: float) -> None:
    check(json.dumps(value).encode(), now=now)


# ---------------------------------------------------------------- V1: the plain reading == the model


def _fields(event: RawEvent | Event) -> tuple[Any, ...]:
    return (event.event_id, event.community_id, event.received_at, event.identity, event.signed_identity)


@COMMON
@given(envelopes())
def test_v1_the_plain_reading_accepts_only_what_the_raw_event_model_accepts(value: dict[str, Any]) -> None:
    """V1's fast path (`pipeline.plain_event`) against the `RawEvent` model, on what the strict
    reader (J1–J4) makes of arbitrary envelopes: whatever it accepts, the model accepts with
    the same fields; what it leaves, the model judges. Also as `read_event` calls it: vouching
    for the member names when the text holds no escaped surrogate."""
    text = json.dumps(value)
    obj = read_object(text)
    assert type(obj) is dict
    try:
        model: RawEvent | None = RawEvent.model_validate(obj)
    except ValidationError:
        model = None
    for plain in (plain_event(obj), plain_event(obj, text_names=not has_surrogate_escape(text))):
        if plain is not None:
            assert model is not None and _fields(plain) == _fields(model)


def test_v1_the_plain_reading_takes_the_usual_events_and_leaves_the_rest() -> None:
    usual = {"event_id": "e-1", "community_id": "acme", "received_at": RECEIVED_AT, "gateway": {"name": "gw"}}
    assert plain_event({**usual, "signed_identity": "a.b.c"}) is not None
    assert plain_event({**usual, "identity": {"uuid": "v"}}) is not None
    for broken in (
        {**usual, "signed_identity": "a.b.c", "identity": {"uuid": "v"}},  # both
        {**usual},  # neither
        {**usual, "signed_identity": "t", "received_at": "2026-11-24T10:00:00"},  # no offset
        {**usual, "signed_identity": "t", "community_id": "acme\n"},
        {**usual, "signed_identity": "t", "event_id": "e" * 129},
        {**usual, "signed_identity": "t", "gateway": ["gw"]},
    ):
        assert plain_event(broken) is None
        try:
            RawEvent.model_validate(broken)
        except ValidationError:
            continue
        raise AssertionError(f"the model accepts {broken}")


# ---------------------------------------------------------------- V12: hand-written check == the model

IdentityText = Annotated[str, Field(max_length=MAX_IDENTITY_FIELD_CHARS, strict=True)]


#: The oracle: DESIGN §2.1's identity object as a model, written from its words and independent
#: of `verify.read_identity`, the product's one reading of V12.
RawIdentity = create_model(
    "RawIdentity",
    __config__=ConfigDict(extra="ignore", frozen=True),
    **{name: (IdentityText | None, None) for name in FIELDS},
    extra_values=(
        Annotated[
            dict[
                Annotated[str, Field(min_length=1, max_length=MAX_EXTRA_KEY_CHARS)],
                StrictBool | StrictInt | StrictFloat | IdentityText | None,
            ],
            Field(max_length=MAX_EXTRA_VALUES),
        ]
        | None,
        None,
    ),
)


@COMMON
@given(identities())
def test_v12_read_identity_agrees_with_the_raw_identity_model(written: dict[str, Any]) -> None:
    """Both read the identity as the pipeline has it: JSON text read strictly (J1–J4)."""
    identity = read_object(json.dumps(written))
    assert isinstance(identity, dict)
    hand = read_identity(identity)
    try:
        model = RawIdentity.model_validate(identity)
    except ValidationError:
        model = None
    assert isinstance(hand, Rejected) == (model is None), (hand, identity)
    if model is not None:
        assert not isinstance(hand, Rejected)
        for name in FIELDS:
            assert hand.get(name) == getattr(model, name)
        expected = {k: v for k, v in (model.extra_values or {}).items() if v is not None}
        assert set(hand["extra_values"]) == set(expected)
        for key, text in hand["extra_values"].items():
            assert text == (expected[key] if isinstance(expected[key], str) else json.dumps(expected[key]))
