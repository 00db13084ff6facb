"""C4: the verified-token cache skips V4–V8 work only; V3, V9 and V10 still run on every event,
and a change to the community's keys invalidates its entries. While tokens are seldom seen
again, a token gets an entry on its second good verification (admission on the second
sighting), so its third event is the first hit; while they come back, on its first."""

from __future__ import annotations

from typing import Any

from tests.support.core import (
    NOW,
    OTHER_SECRET,
    T0,
    acme_config,
    build,
    event,
    good_claims,
    make_token,
    validate_output,
)
from worker.core.pipeline import process_event
from worker.core.tokencache import ADMISSION_WINDOW, TokenCache


def _run(value: bytes, lookup: Any, cache: TokenCache, now: float = NOW) -> dict[str, Any]:
    return validate_output(process_event(value, lookup=lookup, now=now, token_cache=cache))


def _admitted(value: bytes, lookup: Any, cache: TokenCache) -> dict[str, Any]:
    """Two events of the same token: the second verification makes its entry (asserted)."""
    entries = len(cache)
    _run(value, lookup, cache)
    record = _run(value, lookup, cache)
    assert len(cache) == entries + 1
    return record


def test_c4_a_token_seen_once_gets_no_entry_the_second_sighting_makes_it() -> None:
    lookup, cache = build({"communities": [acme_config()]}), TokenCache()
    token = make_token()
    first = _run(event(token), lookup, cache)
    assert len(cache) == 0 and cache.misses == 1  # one-time tokens cost the cache nothing
    second = _run(event(token), lookup, cache)
    assert len(cache) == 1 and cache.hits == 0 and first == second


def test_c4_third_event_with_the_same_token_is_a_hit_and_gives_the_same_record() -> None:
    lookup, cache = build({"communities": [acme_config()]}), TokenCache()
    token = make_token()
    first = _admitted(event(token), lookup, cache)
    third = _run(event(token), lookup, cache)
    assert cache.hits == 1 and first == third and first["outcome"] == "enriched"


def test_c4_a_hit_gives_byte_for_byte_the_output_of_a_full_verification() -> None:
    lookup, cache = build({"communities": [acme_config()]}), TokenCache()
    token = make_token()
    uncached = process_event(event(token), lookup=lookup, now=NOW).to_json()
    _admitted(event(token), lookup, cache)
    hit = process_event(event(token), lookup=lookup, now=NOW, token_cache=cache)
    assert cache.hits == 1 and hit.to_json() == uncached


def test_c4_the_notes_of_one_time_tokens_are_bounded() -> None:
    """Admission notes are digests, at most `max_entries` of them: old notes go, so a token
    seen again long after is noted again rather than admitted."""
    lookup, cache = build({"communities": [acme_config()]}), TokenCache(max_entries=4)
    first = event(make_token(good_claims(uuid="v-first")))
    _run(first, lookup, cache)
    for i in range(6):
        _run(event(make_token(good_claims(uuid=f"v-{i}"))), lookup, cache)
    _run(first, lookup, cache)
    assert len(cache) == 0


def test_c4_admission_follows_the_hit_share_of_the_last_window() -> None:
    """Tokens that come back: the first good verification makes the entry (no second one);
    one-time tokens again: only a note, as at the start."""
    lookup, cache = build({"communities": [acme_config()]}), TokenCache()
    repeated = event(make_token(good_claims(uuid="v-repeated")))
    for _ in range(ADMISSION_WINDOW + 2):
        _run(repeated, lookup, cache)
    assert cache.hits == ADMISSION_WINDOW and not cache.admit_at_once
    _run(event(make_token(good_claims(uuid="v-new"))), lookup, cache)  # a miss closes the window
    assert cache.admit_at_once and len(cache) == 2  # made on its first sighting
    for i in range(ADMISSION_WINDOW):
        _run(event(make_token(good_claims(uuid=f"v-once-{i}"))), lookup, cache)
    assert not cache.admit_at_once
    entries = len(cache)
    _run(event(make_token(good_claims(uuid="v-last"))), lookup, cache)
    assert len(cache) == entries  # noted only


def test_c4_a_mapping_change_applies_to_a_cached_token_at_once() -> None:
    """The keys are unchanged (the entry stays), but the reloaded configuration is what maps."""
    cache = TokenCache()
    token = make_token()
    before = _admitted(event(token), build({"communities": [acme_config()]}), cache)
    assert before["identity_group"]["notes"] is not None and "customer_id" in before["custom_fields"]
    remapped = build(
        {
            "communities": [
                acme_config(mappings=[{"from": "extra_values.customer_id", "to": "identity_group.company"}])
            ]
        }
    )
    after = _run(event(token), remapped, cache)
    assert cache.hits == 1
    assert after["identity_group"]["notes"] is None and after["custom_fields"] == {}
    assert after["identity_group"]["company"] == before["custom_fields"]["customer_id"]


def test_c4_time_rules_are_checked_on_a_hit() -> None:
    lookup, cache = build({"communities": [acme_config()]}), TokenCache()
    token = make_token(good_claims(exp=T0 + 7200, nbf=T0 - 100))
    assert _admitted(event(token), lookup, cache)["outcome"] == "enriched"
    later = _run(event(token), lookup, cache, now=NOW + 7210)
    assert later["reason"] == "token_expired"
    # received later: min validity counted from received_at on the cached token too
    assert (
        _run(event(token, received_at="2026-11-24T11:00:11Z"), lookup, cache)["reason"] == "expiry_too_soon"
    )
    assert _run(event(token), lookup, cache, now=NOW - 200)["reason"] == "token_not_yet_valid"


def test_c4_mode_is_checked_on_a_hit() -> None:
    cache = TokenCache()
    token = make_token()
    assert _admitted(event(token), build({"communities": [acme_config()]}), cache)["outcome"] == "enriched"
    rejecting = build({"communities": [acme_config(signed_identities="reject")]})
    record = _run(event(token), rejecting, cache)
    assert record["reason"] == "signed_identity_rejected" and record["action"] == "anonymous"


def test_c4_removing_the_key_takes_effect_despite_the_cache() -> None:
    cache = TokenCache()
    token = make_token()
    assert _admitted(event(token), build({"communities": [acme_config()]}), cache)["outcome"] == "enriched"
    without = acme_config()
    without["jwt_keys"] = [k for k in without["jwt_keys"] if k["kid"] != "acme_2026"]
    assert _run(event(token), build({"communities": [without]}), cache)["reason"] == "unknown_kid"


def test_c4_replacing_the_secret_under_the_same_kid_takes_effect() -> None:
    cache = TokenCache()
    token = make_token()
    assert _admitted(event(token), build({"communities": [acme_config()]}), cache)["outcome"] == "enriched"
    rotated = acme_config()
    rotated["jwt_keys"][0] = {"kid": "acme_2026", "hmac_secret": OTHER_SECRET}
    assert _run(event(token), build({"communities": [rotated]}), cache)["reason"] == "invalid_signature"


def test_c4_entries_are_per_community() -> None:
    cache = TokenCache()
    token = make_token()
    other = acme_config(id="acme2")
    lookup = build({"communities": [acme_config(), other]})
    assert _admitted(event(token), lookup, cache)["outcome"] == "enriched"
    # acme's entry is not acme2's: verified in full there, and admitted (the digest was noted)
    assert _run(event(token, community_id="acme2"), lookup, cache)["outcome"] == "enriched"
    assert cache.hits == 0 and len(cache) == 2


def test_c4_rejections_are_not_cached() -> None:
    lookup, cache = build({"communities": [acme_config()]}), TokenCache()
    bad = make_token(key=OTHER_SECRET.encode())
    for _ in range(2):
        assert _run(event(bad), lookup, cache)["reason"] == "invalid_signature"
    assert len(cache) == 0


def test_c4_cache_is_bounded() -> None:
    lookup, cache = build({"communities": [acme_config()]}), TokenCache(max_entries=3)
    for i in range(10):
        value = event(make_token(good_claims(uuid=f"v-{i}")))
        _run(value, lookup, cache)
        _run(value, lookup, cache)
    assert len(cache) == 3
