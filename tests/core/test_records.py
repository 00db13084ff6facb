"""The output records (DESIGN §2.2–§2.4) written once: `worker.core.records`
builds every record from one `Envelope`, and each record — the hand-assembled enriched JSON of
the hot path included — is its contract model's, field for field and in the model's order.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.support.core import NOW, RECEIVED_AT, in_contract, make_token, validate_output
from tests.support.core import event as raw_event
from worker.core.community import Community
from worker.core.contracts import DeadLetter, RawEvent, Rejection, Source
from worker.core.pipeline import process_event
from worker.core.reasons import Mode, Reason
from worker.core.records import Envelope, dead_letter, rejection, unreadable_event
from worker.core.times import rfc3339_seconds
from worker.core.tokencache import TokenCache
from worker.core.verdict import Rejected

WHERE = Source("identity.raw", 3, 42)


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode()


@pytest.mark.parametrize("source", [None, WHERE])
def test_every_outcome_of_the_pipeline_is_in_its_contract(
    communities: dict[str, Community], source: Source | None
) -> None:
    """Signed (fresh and cached), unsigned, and a rejection from each stage, with and without a
    source: the JSON (hand-assembled for enriched records) has the model's fields in order."""
    cache = TokenCache()
    token = make_token()
    values = [
        raw_event(token),
        raw_event(token),  # the second sighting: admitted to the cache (C4)
        raw_event(token),  # the cache hit: assembled from the memoized fragment (C4)
        raw_event(identity={"uuid": "v-1", "extra_values": {"plan": "gold", "n": 7}}, community_id="anon"),
        b"\xff not UTF-8",  # V1, raw in base64
        None,  # V1, no value
        raw_event(token, community_id="nobody"),  # V2
        raw_event(token, community_id="anon"),  # V3, anonymous
        raw_event("a.b"),  # V4
        raw_event(make_token(header={"typ": "JWT", "alg": "none", "kid": "acme_2026"})),  # V5
        raw_event(identity={"uuid": 7}, community_id="anon"),  # V12
    ]
    outcomes = []
    for value in values:
        output = process_event(value, lookup=communities, now=NOW, source=source, token_cache=cache)
        record = validate_output(output)
        assert record["source"] == (
            None if source is None else {"topic": "identity.raw", "partition": 3, "offset": 42}
        )
        outcomes.append(record.get("reason", record["outcome"]))
    assert cache.hits == 1
    assert outcomes == [
        "enriched",
        "enriched",
        "enriched",
        "enriched",
        "malformed_event",
        "malformed_event",
        "unknown_community",
        "signed_identity_rejected",
        "malformed_token",
        "unsupported_algorithm",
        "invalid_claims",
    ]


def test_a_dead_letter_is_in_its_contract() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        output = dead_letter(raw_event(make_token()), exc, now=NOW, source=WHERE, attempts=3)
    record = json.loads(output.to_json())
    in_contract(record, DeadLetter)
    assert (record["event_id"], record["community_id"], record["attempts"]) == ("e-1", "acme", 3)
    assert record["error_type"] == "RuntimeError" and record["error_message"] == "boom"


def test_an_undecodable_record_is_a_malformed_event_in_its_contract() -> None:
    output = unreadable_event(b'{"event_id": "e-9"', "bad CRC", now=NOW, source=WHERE)
    record = json.loads(output.to_json())
    in_contract(record, Rejection)
    assert record["reason"] == "malformed_event" and record["action"] == "block"
    assert record["detail"] == "the record cannot be decoded: bad CRC"
    assert record["event_id"] is None and record["raw"] == '{"event_id": "e-9"'


# ---------------------------------------------------------------- the one envelope


def test_the_envelope_of_a_read_event_is_its_fields() -> None:
    value = raw_event(identity={"uuid": "v"})
    event = RawEvent.model_validate(json.loads(value))
    envelope = Envelope.of(value, event, rfc3339_seconds(RECEIVED_AT), WHERE)
    assert envelope == Envelope(value, WHERE, "e-1", "acme", rfc3339_seconds(RECEIVED_AT))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, (None, None, None)),
        (b"\xff", (None, None, None)),
        (b"[1]", (None, None, None)),
        (
            _json({"event_id": "e-2", "community_id": "acme", "received_at": RECEIVED_AT}),
            ("e-2", "acme", RECEIVED_AT),
        ),
        (_json({"event_id": "", "community_id": "bad id!", "received_at": "yesterday"}), (None, None, None)),
        (_json({"event_id": "x" * 129, "community_id": 5, "received_at": 5}), (None, None, None)),
        (_json({"event_id": "e-3", "received_at": "0001-01-01T00:00:00+01:00"}), ("e-3", None, None)),
    ],
)
def test_the_envelope_of_an_unreadable_value_is_what_can_still_be_read(
    value: bytes | None, expected: tuple[str | None, str | None, str | None]
) -> None:
    envelope = Envelope.unreadable(value, None)
    received = rfc3339_seconds(expected[2]) if expected[2] is not None else None
    assert (envelope.event_id, envelope.community_id, envelope.received_at) == (*expected[:2], received)
    assert envelope.value == value


def test_a_rejection_takes_its_action_from_the_reason_table_and_its_kid_from_the_verdict() -> None:
    envelope = Envelope.unreadable(raw_event("t"), WHERE)
    verdict = Rejected(Reason.INVALID_SIGNATURE, "does not verify", "acme_2026")
    for mode, action in ((Mode.REQUIRE, "block"), (Mode.REJECT, "anonymous"), (None, "block")):
        output = rejection(envelope, verdict, mode, NOW)
        assert output.record["action"] == action and output.kid == "acme_2026"
        in_contract(json.loads(output.to_json()), Rejection)
    assert rejection(envelope, verdict, Mode.REQUIRE, NOW, "other").kid == "other"
    raw = rejection(Envelope.unreadable(b"\x00\xff", None), verdict, None, NOW).record
    assert (raw["raw"], raw["raw_encoding"]) == (base64.b64encode(b"\x00\xff").decode(), "base64")
