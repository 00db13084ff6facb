"""Mapping rules M1–M6 (DESIGN §4) through the pipeline: identity → identity group, custom fields."""

from __future__ import annotations

from typing import Any

import pytest
import re2
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.core import build, event
from worker.core.config import ConfigError, compile_regex, parse_yaml


def _community(mappings: list[dict[str, str]], fields: list[dict[str, str]] | None = None) -> Any:
    return build(
        {
            "communities": [
                {
                    "id": "shop",
                    "signed_identities": "reject",
                    "custom_fields": fields
                    if fields is not None
                    else [
                        {"key": "customer_id", "label": "Customer ID", "regex": "C[0-9]{6}"},
                        {"key": "plan", "label": "Plan"},
                        {"key": "tier", "label": "Tier", "regex": "gold|silver"},
                    ],
                    "mappings": mappings,
                }
            ]
        }
    )


def _map(run: Any, identity: dict[str, Any], mappings: list[dict[str, str]], **kw: Any) -> dict[str, Any]:
    record = run(event(identity=identity, community_id="shop"), lookup=_community(mappings, **kw))
    assert record["outcome"] == "enriched"
    return record


IDENTITY = {
    "uuid": "v-42",
    "screenname": "ada",
    "firstname": "Ada",
    "lastname": "Lovelace",
    "company": "Engines",
    "email": "ada@example.org",
    "avatar_url": "https://example.org/a.png",
    "extra_values": {"customer_id": "C123456", "phone": "+336", "plan": "pro", "alt_email": "a@b.c"},
}


def test_m1_group_starts_from_the_identity(run: Any) -> None:
    record = _map(run, IDENTITY, [])
    assert record["identity_group"] == {
        "firstname": "Ada",
        "lastname": "Lovelace",
        "gender": None,
        "company": "Engines",
        "notes": None,
        "emails": ["ada@example.org"],
        "home_phones": [],
        "mobile_phones": [],
    }
    assert record["custom_fields"] == {} and record["mapping_skipped"] == []


def test_m1_no_email_means_empty_emails(run: Any) -> None:
    record = _map(run, {"uuid": "v"}, [])
    assert record["identity_group"]["emails"] == []
    assert record["identity_group"]["firstname"] is None


def test_m2_uuid_and_extra_values_sources(run: Any) -> None:
    record = _map(
        run,
        IDENTITY,
        [
            {"from": "uuid", "to": "identity_group.notes"},
            {"from": "extra_values.plan", "to": "custom_fields.plan"},
        ],
    )
    assert record["identity_group"]["notes"] == "v-42"
    assert record["custom_fields"] == {"plan": "pro"}


def test_m2_mappings_apply_in_configured_order(run: Any) -> None:
    first = [
        {"from": "uuid", "to": "identity_group.notes"},
        {"from": "extra_values.plan", "to": "identity_group.notes"},
    ]
    assert _map(run, IDENTITY, first)["identity_group"]["notes"] == "pro"
    assert _map(run, IDENTITY, first[::-1])["identity_group"]["notes"] == "v-42"
    lists = [
        {"from": "extra_values.phone", "to": "identity_group.mobile_phones"},
        {"from": "uuid", "to": "identity_group.mobile_phones"},
    ]
    assert _map(run, IDENTITY, lists)["identity_group"]["mobile_phones"] == ["+336", "v-42"]
    assert _map(run, IDENTITY, lists[::-1])["identity_group"]["mobile_phones"] == ["v-42", "+336"]


def test_m2_numbers_map_as_their_json_text(run: Any) -> None:
    identity = {"extra_values": {"n": 42, "b": True}}
    record = _map(
        run,
        identity,
        [
            {"from": "extra_values.n", "to": "custom_fields.plan"},
            {"from": "extra_values.b", "to": "identity_group.notes"},
        ],
    )
    assert record["custom_fields"] == {"plan": "42"} and record["identity_group"]["notes"] == "true"


def test_m3_missing_source_is_skipped_not_an_error(run: Any) -> None:
    mappings = [
        {"from": "extra_values.absent", "to": "custom_fields.plan"},
        {"from": "uuid", "to": "identity_group.notes"},
    ]
    record = _map(run, {"firstname": "Ada", "extra_values": {"absent": None}}, mappings)
    assert record["mapping_skipped"] == [
        {"from": "extra_values.absent", "to": "custom_fields.plan", "reason": "source_missing"},
        {"from": "uuid", "to": "identity_group.notes", "reason": "source_missing"},
    ]
    assert record["custom_fields"] == {} and record["identity_group"]["notes"] is None


@pytest.mark.parametrize(
    "value,accepted",
    [
        ("C123456", True),
        ("C1234567", False),  # a prefix match is not a full match
        ("xC123456", False),
        ("C12345", False),
        ("c123456", False),
        ("C123456\n", False),
        ("", False),
    ],
)
def test_m4_custom_field_regex_must_match_the_whole_value(run: Any, value: str, accepted: bool) -> None:
    mapping = [{"from": "extra_values.customer_id", "to": "custom_fields.customer_id"}]
    record = _map(run, {"extra_values": {"customer_id": value}}, mapping)
    if accepted:
        assert record["custom_fields"] == {"customer_id": value} and record["mapping_skipped"] == []
    else:
        assert record["custom_fields"] == {}
        assert record["mapping_skipped"] == [
            {
                "from": "extra_values.customer_id",
                "to": "custom_fields.customer_id",
                "reason": "regex_mismatch",
            }
        ]


def test_m4_alternation_is_anchored_as_a_whole(run: Any) -> None:
    """`gold|silver` fully matches `gold` or `silver`, never `goldsilver` or `gold!`."""
    mapping = [{"from": "extra_values.t", "to": "custom_fields.tier"}]
    for value, ok in [
        ("gold", True),
        ("silver", True),
        ("goldsilver", False),
        ("gold!", False),
        ("xsilver", False),
    ]:
        record = _map(run, {"extra_values": {"t": value}}, mapping)
        assert (record["custom_fields"] == {"tier": value}) is ok, value


def test_m4_field_without_regex_takes_any_value(run: Any) -> None:
    mapping = [{"from": "extra_values.p", "to": "custom_fields.plan"}]
    assert _map(run, {"extra_values": {"p": "any thing ✓"}}, mapping)["custom_fields"] == {
        "plan": "any thing ✓"
    }


def test_m4_regex_runs_in_linear_time(run: Any) -> None:
    """A catastrophic-backtracking pattern for a backtracking engine is instant with RE2."""
    import time

    fields = [{"key": "evil", "label": "Evil", "regex": "(a+)+$"}]
    mapping = [{"from": "extra_values.e", "to": "custom_fields.evil"}]
    started = time.perf_counter()
    record = _map(run, {"extra_values": {"e": "a" * 1000 + "!"}}, mapping, fields=fields)
    assert time.perf_counter() - started < 1.0
    assert record["mapping_skipped"][0]["reason"] == "regex_mismatch"


def test_m4_a_lone_surrogate_never_reaches_a_regex(run: Any) -> None:
    """JSON may carry `\\udc80`: J2 refuses it at V12 (invalid_claims) before any mapping runs,
    and the matcher itself still answers False for text with no UTF-8 form (re2 raised)."""
    fields = [{"key": "any", "label": "Any", "regex": ".*"}]
    mapping = [{"from": "extra_values.v", "to": "custom_fields.any"}]
    value = event(identity={"extra_values": {"v": "a\udc80b"}}, community_id="shop")
    record = run(value, lookup=_community(mapping, fields))
    assert (record["outcome"], record["reason"]) == ("rejected", "invalid_claims")
    assert compile_regex(".*")("a\udc80b") is False
    assert _map(run, {"extra_values": {"v": "a\u00e9b"}}, mapping, fields=fields)["custom_fields"] == {
        "any": "a\u00e9b"
    }


@settings(max_examples=300, deadline=None)
@given(
    pattern=st.sampled_from(
        ["C[0-9]{6}", "gold|silver", ".*", "a.b", "[^x]+", "\\w+@\\w+", "(?i)straße", "é?", "", "\\d{2,4}"]
    ),
    value=st.text(max_size=12) | st.sampled_from(["C123456", "gold", "a\u00e9b", "STRASSE", "straße", "12"]),
)
def test_m4_whole_match_agrees_with_re2_fullmatch(pattern: str, value: str) -> None:
    """The direct RE2 call of `WholeMatch` is the same answer as google-re2's `fullmatch`."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        assert compile_regex(pattern)(value) is False
        return
    assert compile_regex(pattern)(value) is (re2.compile(pattern).fullmatch(value) is not None)


@pytest.mark.parametrize("regex", ["(", "[a-", "(a)\\1", "(?=a)b", "a{1001}b{1001}" * 20])
def test_m4_regexes_are_checked_when_configured(regex: str) -> None:
    text = (
        "communities:\n  - id: c\n    custom_fields:\n"
        f"      - key: f\n        label: F\n        regex: {regex!r}\n"
    ).replace("'", '"')
    with pytest.raises(ConfigError) as info:
        parse_yaml(text)
    assert all("\n" not in p for p in info.value.problems)
    assert "custom_fields[0].regex" in str(info.value)


def test_m5_scalar_fields_are_overwritten(run: Any) -> None:
    mapping = [
        {"from": "extra_values.plan", "to": "identity_group.firstname"},
        {"from": "extra_values.plan", "to": "identity_group.gender"},
    ]
    group = _map(run, IDENTITY, mapping)["identity_group"]
    assert group["firstname"] == "pro" and group["gender"] == "pro"


def test_m5_list_fields_append_without_duplicates(run: Any) -> None:
    mapping = [
        {"from": "extra_values.alt_email", "to": "identity_group.emails"},
        {"from": "extra_values.dup", "to": "identity_group.emails"},
        {"from": "extra_values.alt_email", "to": "identity_group.emails"},
        {"from": "extra_values.phone", "to": "identity_group.home_phones"},
    ]
    identity = {**IDENTITY, "extra_values": {**IDENTITY["extra_values"], "dup": "ada@example.org"}}  # type: ignore[dict-item]
    group = _map(run, identity, mapping)["identity_group"]
    assert group["emails"] == ["ada@example.org", "a@b.c"]
    assert group["home_phones"] == ["+336"]


def test_m6_skips_are_listed_and_never_reject(run: Any) -> None:
    mapping = [
        {"from": "extra_values.customer_id", "to": "custom_fields.customer_id"},
        {"from": "extra_values.nothing", "to": "identity_group.notes"},
        {"from": "extra_values.plan", "to": "custom_fields.plan"},
    ]
    record = _map(run, {"uuid": "v", "extra_values": {"customer_id": "bad", "plan": "pro"}}, mapping)
    assert record["custom_fields"] == {"plan": "pro"}
    assert [s["reason"] for s in record["mapping_skipped"]] == ["regex_mismatch", "source_missing"]


def test_mappings_apply_to_signed_identities_too(run: Any) -> None:
    from tests.support.core import make_token

    record = run(event(make_token()))
    assert record["custom_fields"] == {"customer_id": "C123456"}
    assert record["identity_group"]["notes"] == "v-42"
    assert record["identity_group"]["mobile_phones"] == ["+33600000000"]
