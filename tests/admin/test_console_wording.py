"""The console's plain words (worker/admin/console/wording.py): durations both ways, and every
refusal the console can meet said without regex notation, the right field named, no secret."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from worker.admin.console.durations import parse_duration, show_duration
from worker.admin.console.wording import explain
from worker.admin.errors import ApiError
from worker.core import config as spec
from worker.core.config import ConfigError


@given(st.integers(min_value=0, max_value=10 * 366 * 86400))
def test_a_shown_duration_reads_back_as_the_same_seconds(seconds: int) -> None:
    assert parse_duration(show_duration(seconds)) == seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("3600", 3600), ("1 h", 3600), ("1h30min", 5400), ("2 days", 172800), ("90 S", 90), ("1 h, 5 s", 3605)],
)
def test_durations_are_read_as_people_write_them(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "1 fortnight", "-5", "1.5 h", "h"])
def test_what_is_not_a_duration_is_none(text: str) -> None:
    assert parse_duration(text) is None


def _refusal(model: type[spec.SpecT], data: dict[str, object], **form: str) -> dict[str, str]:
    """`data` refused by `model`, as the console's form with fields `data` (or `form`) says it."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    values = form or {k: str(v) for k, v in data.items()}
    refusal = explain(caught.value, values)
    return refusal.fields | {"": " ".join(refusal.general)}


def test_a_bad_kid_and_a_bad_secret_each_under_their_own_field() -> None:
    said = _refusal(spec.JwtKeySpec, {"kid": "My Key", "hmac_secret": "ABCDEF0123456789ABCDEF01"})
    assert said["kid"] == (
        "Use only lower-case letters, digits and underscores "
        "(this one has upper-case letters and spaces or line breaks)."
    )
    assert said["hmac_secret"].startswith("Use lower-case a-f")
    for text in said.values():
        assert "ABCDEF" not in text and "^[" not in text and "got " not in text


def test_nested_locations_name_the_form_field_and_model_checks_none() -> None:
    said = _refusal(spec.CommunitySpec, {"id": "x", "jwt_keys": [{"kid": "k!"}]}, id="x", kid="k!")
    assert said["kid"].startswith("Use only lower-case letters")
    said = _refusal(spec.CommunitySpec, {"id": "x", "jwt_keys": [{"kid": "k"}]}, id="x", kid="k")
    assert said[""] == "Give one key: generate an HMAC secret, paste one, or paste an RSA public key."


@pytest.mark.parametrize(
    ("line", "field", "sentence"),
    [
        (
            "mappings[3].to names custom field 'plan', which is not declared",
            "to",
            "There is no custom field plan (mapping 4): declare it under Custom fields first.",
        ),
        (
            "max_validity_seconds (60) must be at least min_validity_seconds (3600)",
            "max_validity_seconds",
            "Must be at least the minimum validity (1 h), or every token would be refused.",
        ),
    ],
)
def test_the_spec_s_lines_become_sentences_beside_their_field(line: str, field: str, sentence: str) -> None:
    assert explain(ConfigError([line]), {}).fields == {field: sentence}


def test_a_store_line_names_the_mapping_by_the_row_the_table_shows() -> None:
    refused = ApiError(
        409, "custom field 'plan' is the target of mapping extra_values.p -> custom_fields.plan; remove"
    )
    rows = [("uuid", "identity_group.id"), ("extra_values.p", "custom_fields.plan")]
    assert explain(refused, {}, rows).general == [
        "Mapping 2 (extra_values.p → custom_fields.plan) writes this field: remove that mapping first."
    ]
