"""C4: the verified-token cache skips V4–V8 work only; V3, V9 and V10 still run on every event,
and a change to the community's keys invalidates its entries. While tokens are seldom seen
again, a token gets an entry on its second good verification (admission on the second
sighting), so its third event is the first hit; while they come back, on its first."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support.core import (
    HS_KID,
    NOW,
    OTHER_SECRET,
    T0,
    Runner,
    acme_config,
    acme_lookup,
    build,
    event,
    good_claims,
    make_token,
)
from worker.core.pipeline import process_event
from worker.core.tokencache import ADMISSION_WINDOW, TokenCache

Admitted = Callable[[bytes, Any, TokenCache], dict[str, Any]]


@pytest.fixture
def admitted(run: Runner) -> Admitted:
    """`admitted(value, lookup, cache)`: two events of the same token; the second verification
    makes its entry (asserted). Returns the second record."""

    def _admitted(value: bytes, lookup: Any, cache: TokenCache) -> dict[str, Any]:
        entries = len(cache)
        run(value, lookup=lookup, token_cache=cache)
        record = run(value, lookup=lookup, token_cache=cache)
        assert len(cache) == entries + 1
        return record

    return _admitted


def test_c4_a_token_seen_once_gets_no_entry_the_second_sighting_makes_it(run: Runner) -> None:
    lookup, cache = acme_lookup(), TokenCache()
    token = make_token()
    first = run(event(token), lookup=lookup, token_cache=cache)
    assert len(cache) == 0 and cache.misses == 1  # one-time tokens cost the cache nothing
    second = run(event(token), lookup=lookup, token_cache=cache)
    assert len(cache) == 1 and cache.hits == 0 and first == second


def test_c4_third_event_with_the_same_token_is_a_hit_and_gives_the_same_record(
    run: Runner, admitted: Admitted
) -> None:
    lookup, cache = acme_lookup(), TokenCache()
    token = make_token()
    first = admitted(event(token), lookup, cache)
    third = run(event(token), lookup=lookup, token_cache=cache)
    assert cache.hits == 1 and first == third and first["outcome"] == "enriched"


def test_c4_a_hit_gives_byte_for_byte_the_output_of_a_full_verification(admitted: Admitted) -> None:
    lookup, cache = acme_lookup(), TokenCache()
    token = make_token()
    uncached = process_event(event(token), lookup=lookup, now=NOW).to_json()
    admitted(event(token), lookup, cache)
    hit = process_event(event(token), lookup=lookup, now=NOW, token_cache=cache)
    assert cache.hits == 1 and hit.to_json() == uncached


def test_c4_the_verification_that_makes_an_entry_keeps_its_derived_part(
    run: Runner, admitted: Admitted, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The entry's memo (mapping result, output fragment) is the one its own verification made:
    a hit derives nothing, not even the first one."""
    import worker.core.pipeline as pipeline

    derived: list[object] = []
    real = pipeline._derive
    monkeypatch.setattr(pipeline, "_derive", lambda *args: derived.append(args) or real(*args))
    lookup, cache = acme_lookup(), TokenCache()
    token = make_token()
    admitted(event(token), lookup, cache)
    assert len(derived) == 2  # noted, then the entry
    for _ in range(3):
        run(event(token), lookup=lookup, token_cache=cache)
    assert cache.hits == 3 and len(derived) == 2


def test_c4_the_notes_of_one_time_tokens_are_bounded(run: Runner) -> None:
    """Admission notes are digests, at most `max_entries` of them: old notes go, so a token
    seen again long after is noted again rather than admitted."""
    lookup, cache = acme_lookup(), TokenCache(max_entries=4)
    first = event(make_token(good_claims(uuid="v-first")))
    run(first, lookup=lookup, token_cache=cache)
    for i in range(6):
        run(event(make_token(good_claims(uuid=f"v-{i}"))), lookup=lookup, token_cache=cache)
    run(first, lookup=lookup, token_cache=cache)
    assert len(cache) == 0


def test_c4_admission_follows_the_hit_share_of_the_last_window(run: Runner) -> None:
    """Tokens that come back: the first good verification makes the entry (no second one);
    one-time tokens again: only a note, as at the start."""
    lookup, cache = acme_lookup(), TokenCache()
    repeated = event(make_token(good_claims(uuid="v-repeated")))
    for _ in range(ADMISSION_WINDOW + 2):
        run(repeated, lookup=lookup, token_cache=cache)
    assert cache.hits == ADMISSION_WINDOW and not cache.admit_at_once
    # a miss closes the window
    run(event(make_token(good_claims(uuid="v-new"))), lookup=lookup, token_cache=cache)
    assert cache.admit_at_once and len(cache) == 2  # made on its first sighting
    for i in range(ADMISSION_WINDOW):
        run(event(make_token(good_claims(uuid=f"v-once-{i}"))), lookup=lookup, token_cache=cache)
    assert not cache.admit_at_once
    entries = len(cache)
    run(event(make_token(good_claims(uuid="v-last"))), lookup=lookup, token_cache=cache)
    assert len(cache) == entries  # noted only


def test_c4_a_mapping_change_applies_to_a_cached_token_at_once(run: Runner, admitted: Admitted) -> None:
    """The keys are unchanged (the entry stays), but the reloaded configuration is what maps."""
    cache = TokenCache()
    token = make_token()
    before = admitted(event(token), acme_lookup(), cache)
    assert before["identity_group"]["notes"] is not None and "customer_id" in before["custom_fields"]
    remapped = acme_lookup(mappings=[{"from": "extra_values.customer_id", "to": "identity_group.company"}])
    after = run(event(token), lookup=remapped, token_cache=cache)
    assert cache.hits == 1
    assert after["identity_group"]["notes"] is None and after["custom_fields"] == {}
    assert after["identity_group"]["company"] == before["custom_fields"]["customer_id"]


def test_c4_time_rules_are_checked_on_a_hit(run: Runner, admitted: Admitted) -> None:
    lookup, cache = acme_lookup(), TokenCache()
    token = make_token(good_claims(exp=T0 + 7200, nbf=T0 - 100))
    assert admitted(event(token), lookup, cache)["outcome"] == "enriched"
    later = run(event(token), lookup=lookup, token_cache=cache, now=NOW + 7210)
    assert later["reason"] == "token_expired"
    # received later: min validity counted from received_at on the cached token too
    assert (
        run(event(token, received_at="2026-11-24T11:00:11Z"), lookup=lookup, token_cache=cache)["reason"]
        == "expiry_too_soon"
    )
    assert (
        run(event(token), lookup=lookup, token_cache=cache, now=NOW - 200)["reason"] == "token_not_yet_valid"
    )


def test_c4_mode_is_checked_on_a_hit(run: Runner, admitted: Admitted) -> None:
    cache = TokenCache()
    token = make_token()
    assert admitted(event(token), acme_lookup(), cache)["outcome"] == "enriched"
    rejecting = acme_lookup(signed_identities="reject")
    record = run(event(token), lookup=rejecting, token_cache=cache)
    assert record["reason"] == "signed_identity_rejected" and record["action"] == "anonymous"


#: The example community's keys: the HMAC key HS_KID (the tokens' key here) and an RSA key.
ACME_KEYS = acme_config()["jwt_keys"]


@pytest.mark.parametrize(
    ("keys", "reason"),
    [
        pytest.param([k for k in ACME_KEYS if k["kid"] != HS_KID], "unknown_kid", id="key-removed"),
        pytest.param(
            [{**k, "hmac_secret": OTHER_SECRET} if k["kid"] == HS_KID else k for k in ACME_KEYS],
            "invalid_signature",
            id="secret-replaced-under-the-same-kid",
        ),
    ],
)
def test_c4_a_change_of_the_keys_takes_effect_despite_the_cache(
    run: Runner, admitted: Admitted, keys: list[dict[str, str]], reason: str
) -> None:
    cache = TokenCache()
    token = make_token()
    assert admitted(event(token), acme_lookup(), cache)["outcome"] == "enriched"
    assert run(event(token), lookup=acme_lookup(jwt_keys=keys), token_cache=cache)["reason"] == reason


def test_c4_entries_are_per_community(run: Runner, admitted: Admitted) -> None:
    cache = TokenCache()
    token = make_token()
    other = acme_config(id="acme2")
    lookup = build({"communities": [acme_config(), other]})
    assert admitted(event(token), lookup, cache)["outcome"] == "enriched"
    # acme's entry is not acme2's: verified in full there, and admitted (the digest was noted)
    assert run(event(token, community_id="acme2"), lookup=lookup, token_cache=cache)["outcome"] == "enriched"
    assert cache.hits == 0 and len(cache) == 2


def test_c4_rejections_are_not_cached(run: Runner) -> None:
    lookup, cache = acme_lookup(), TokenCache()
    bad = make_token(key=OTHER_SECRET.encode())
    for _ in range(2):
        assert run(event(bad), lookup=lookup, token_cache=cache)["reason"] == "invalid_signature"
    assert len(cache) == 0


def test_c4_cache_is_bounded(run: Runner) -> None:
    lookup, cache = acme_lookup(), TokenCache(max_entries=3)
    for i in range(10):
        value = event(make_token(good_claims(uuid=f"v-{i}")))
        run(value, lookup=lookup, token_cache=cache)
        run(value, lookup=lookup, token_cache=cache)
    assert len(cache) == 3
