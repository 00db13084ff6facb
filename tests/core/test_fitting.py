"""K9: an output that cannot be written as it is gets shortened or keyed, and says so (fitting)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.core import NOW, base_communities, event, strict_json
from worker.core.contracts import DeadLetter, EnrichedIdentity, Rejection, Source
from worker.core.fitting import MIN_OUTPUT_BYTES, CannotFit, derived_key, fit
from worker.core.pipeline import process_event
from worker.core.reasons import Outcome
from worker.core.records import Output, dead_letter

SOURCE = Source("identity.raw", 3, 42)
MODELS = {"enriched": EnrichedIdentity, "rejected": Rejection, "dead_letter": DeadLetter}


def decide(value: bytes | None) -> Output:
    return process_event(value, lookup=base_communities(), now=NOW, source=SOURCE)


def checked(output: Output, budget: int) -> dict[str, Any]:
    """The record is within budget, valid JSON of its contract, and never a lone surrogate."""
    data = output.to_json()
    assert len(data) <= budget
    record: dict[str, Any] = strict_json(data)  # UTF-8, no unpaired surrogate (J2)
    MODELS[record["outcome"]].model_validate(record)
    return record


def test_an_output_that_fits_is_unchanged() -> None:
    output = decide(b"not json")
    assert fit(output, b"not json", 10_000, now=NOW).to_json() == output.to_json()


def test_200_kb_of_nul_bytes_is_echoed_as_a_prefix_with_its_length_and_digest() -> None:
    """The first example K9 met: valid UTF-8 whose echo is 1.2 MB once JSON-escaped."""
    value = b"\x00" * 200_000
    output = decide(value)
    assert len(output.to_json()) > 1_000_000
    record = checked(fit(output, value, 100_000, now=NOW), 100_000)
    assert record["reason"] == "malformed_event" and record["raw_encoding"] == "utf-8"
    assert record["raw_truncated"] is True and record["raw_bytes"] == 200_000
    assert record["raw_sha256"] == hashlib.sha256(value).hexdigest()
    assert value.startswith(record["raw"].encode()) and len(record["raw"]) > 16_000 - 2_000 // 6


def test_a_binary_value_keeps_a_base64_prefix_of_its_bytes() -> None:
    value = bytes(range(256)) * 2_000
    record = checked(fit(decide(value), value, 50_000, now=NOW), 50_000)
    assert record["raw_encoding"] == "base64" and record["raw_truncated"] is True
    prefix = base64.b64decode(record["raw"], validate=True)
    assert value.startswith(prefix) and len(prefix) > 30_000


def test_a_dead_letter_is_shortened_the_same_way() -> None:
    value = "é€😀".encode() * 50_000
    output = dead_letter(value, RuntimeError("bug"), now=NOW, source=SOURCE, attempts=3)
    fitted = fit(output, value, 40_000, now=NOW)
    record = checked(fitted, 40_000)
    assert record["outcome"] == "dead_letter" and record["raw_truncated"] is True
    assert value.startswith(record["raw"].encode()) and record["error_type"] == "RuntimeError"
    # Outputs are UTF-8, not \u-escaped: the echo is measured in the bytes written, so it fills
    # the budget to within one character (at most 4 bytes).
    assert len(fitted.to_json()) > 40_000 - 4, len(fitted.to_json())


def test_an_enriched_output_too_large_becomes_a_dead_letter_never_half_an_identity() -> None:
    value = event(identity={"uuid": "v-1", "firstname": "\x01" * 1000}, community_id="anon")
    output = decide(value)
    assert output.outcome is Outcome.ENRICHED, output.record
    fitted = fit(output, value, 2_000, now=NOW)
    record = checked(fitted, 10**6)
    assert fitted.outcome is Outcome.DEAD_LETTER and record["error_type"] == "OutputTooLarge"
    assert record["raw"] == value.decode() and record["event_id"] == "e-1"
    assert record["source"] == {"topic": "identity.raw", "partition": 3, "offset": 42}


def test_derived_keys_and_dropped_headers_are_said_in_the_record() -> None:
    output = decide(b"not json")
    record = checked(fit(output, b"not json", 10_000, now=NOW, key_derived=True, headers_dropped=2), 10_000)
    assert record["key_derived"] is True and record["headers_dropped"] == 2
    assert "raw_truncated" not in record
    assert derived_key(SOURCE) == b"identity.raw:3:42"


def test_a_budget_below_the_record_without_raw_cannot_fit() -> None:
    value = b"x" * 10_000
    with pytest.raises(CannotFit):
        fit(decide(value), value, 200, now=NOW)
    with pytest.raises(CannotFit):
        fit(decide(None), None, 100, now=NOW)


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(st.characters(codec="utf-8"), min_size=1, max_size=3000),
    budget=st.integers(min_value=MIN_OUTPUT_BYTES // 16, max_value=MIN_OUTPUT_BYTES),
)
def test_any_text_is_cut_to_a_prefix_within_the_budget(text: str, budget: int) -> None:
    value = text.encode() * 4
    output = decide(value)
    fitted = fit(output, value, budget, now=NOW)
    record = checked(fitted, budget)
    if len(output.to_json()) <= budget:
        assert fitted.to_json() == output.to_json()
    else:
        assert record["raw_truncated"] is True and value.startswith(record["raw"].encode())
