"""In the pure core: V9 `expiry_too_far` (max_validity_seconds), the L3 tombstone in an
`unknown_kid` detail, and the key each verdict names for usage counts (L1)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.core import (
    HS_KID,
    NOW,
    RECEIVED_AT,
    SECRET,
    T0,
    Runner,
    acme_config,
    acme_lookup,
    acme_with_tombstone,
    event,
    good_claims,
    make_token,
    validate_output,
)
from worker.core.config import ConfigError
from worker.core.pipeline import process_event
from worker.core.reasons import Reason
from worker.core.tokencache import TokenCache
from worker.store.yaml_io import parse_yaml

# received_at = NOW = T0; leeway 10 s; min validity 0 so only the cap decides.
CAP = 86400


def _capped(**overrides: Any) -> Any:
    return acme_lookup(min_validity_seconds=0, max_validity_seconds=CAP, **overrides)


def _verdict(exp: int, lookup: Any, *, received_at: str = "2026-11-24T10:00:00Z") -> str:
    output = process_event(
        event(make_token(good_claims(exp=exp)), received_at=received_at), lookup=lookup, now=NOW
    )
    record = validate_output(output)
    return "accepted" if record["outcome"] == "enriched" else record["reason"]


# ---------------------------------------------------------------- V9 expiry_too_far


def test_v9_expiry_exactly_at_the_cap_is_accepted() -> None:
    assert _verdict(T0 + CAP, _capped(leeway_seconds=0)) == "accepted"


def test_v9_expiry_one_second_past_the_cap_is_too_far() -> None:
    assert _verdict(T0 + CAP + 1, _capped(leeway_seconds=0)) == "expiry_too_far"


def test_v9_the_leeway_applies_to_the_cap() -> None:
    lookup = _capped()  # leeway 10: exp - 10 > received_at + cap
    assert _verdict(T0 + CAP + 10, lookup) == "accepted"  # inside the leeway
    assert _verdict(T0 + CAP + 11, lookup) == "expiry_too_far"  # outside it


def test_v9_the_cap_counts_from_received_at_not_now() -> None:
    lookup = _capped(leeway_seconds=0)
    earlier = "2026-11-24T09:43:20Z"  # T0 - 1000
    assert _verdict(T0 - 1000 + CAP, lookup, received_at=earlier) == "accepted"
    assert _verdict(T0 - 1000 + CAP + 1, lookup, received_at=earlier) == "expiry_too_far"


def test_v9_no_cap_by_default() -> None:
    lookup = acme_lookup()
    assert _verdict(T0 + 10 * 366 * 86400, lookup) == "accepted"


def test_v9_too_far_detail_and_action() -> None:
    output = process_event(
        event(make_token(good_claims(exp=T0 + CAP + 100))), lookup=_capped(leeway_seconds=0), now=NOW
    )
    record = validate_output(output)
    assert record["reason"] == "expiry_too_far" and record["action"] == "block"
    assert record["detail"] == f"exp is {CAP + 100} s after received_at; at most {CAP} s allowed (leeway 0 s)"


def test_v9_too_soon_and_expired_come_before_too_far() -> None:
    lookup = acme_lookup(max_validity_seconds=3600)  # min validity 3600 too
    assert _verdict(T0 + 100, lookup) == "expiry_too_soon"
    assert _verdict(T0 - 100, lookup) == "token_expired"


def test_v9_the_cap_runs_on_cached_tokens_too() -> None:
    """C4: a cached verification never skips the time rules."""
    lookup = _capped(leeway_seconds=0)
    token = make_token(good_claims(exp=T0 + CAP + 1))
    cache = TokenCache()
    reasons = [
        process_event(event(token), lookup=lookup, now=NOW, token_cache=cache).reason for _ in range(3)
    ]
    assert reasons == [Reason.EXPIRY_TOO_FAR] * 3


def test_token_verify_explains_too_far_like_the_pipeline(tmp_path: Any) -> None:
    import subprocess
    import sys

    import yaml

    config = tmp_path / "capped.yaml"
    config.write_text(
        yaml.safe_dump({"communities": [acme_config(max_validity_seconds=CAP, leeway_seconds=0)]})
    )
    command = ["token", "verify", "--config", str(config), "--community", "acme", "--now", RECEIVED_AT]
    token = make_token(good_claims(exp=T0 + CAP + 1))
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli.main", *command, token],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1 and done.stdout.splitlines()[-1] == "rejected: expiry_too_far"
    assert f"exp is {CAP + 1} s after received_at; at most {CAP} s allowed" in done.stdout


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"max_validity_seconds": 0}, "max_validity_seconds: Input should be greater than or equal to 1"),
        ({"max_validity_seconds": 10 * 366 * 86400 + 1}, "max_validity_seconds: Input should be less"),
        ({"max_validity_seconds": "3600"}, "max_validity_seconds: Input should be a valid integer"),
        (
            {"max_validity_seconds": 60, "min_validity_seconds": 3600},
            "max_validity_seconds (60) must be at least min_validity_seconds (3600)",
        ),
        ({"retirement_window_seconds": -1}, "retirement_window_seconds: Input should be greater"),
        ({"retirement_window_seconds": 30 * 86400 + 1}, "retirement_window_seconds: Input should be less"),
    ],
)
def test_yaml_refuses_bad_lifecycle_settings(settings: dict[str, Any], problem: str) -> None:
    import yaml

    with pytest.raises(ConfigError) as caught:
        parse_yaml(
            yaml.safe_dump({"communities": [{"id": "acme", "signed_identities": "reject", **settings}]})
        )
    assert any(problem in line for line in caught.value.problems), caught.value.problems


def test_yaml_reads_the_lifecycle_settings() -> None:
    communities = _capped(retirement_window_seconds=3600)
    assert communities["acme"].max_validity_seconds == CAP


# ---------------------------------------------------------------- L3 tombstones in V6


def test_unknown_kid_of_a_removed_key_says_when_it_was_removed(run: Runner) -> None:
    record = run(event(make_token(kid="acme_2025")), lookup={"acme": acme_with_tombstone()})
    assert record["reason"] == "unknown_kid"
    assert record["detail"] == "key 'acme_2025' was removed on 2026-11-21T10:00:00Z from community acme"


def test_unknown_kid_never_removed_keeps_its_detail(run: Runner) -> None:
    record = run(event(make_token(kid="acme_2019")), lookup={"acme": acme_with_tombstone()})
    assert record["detail"] == "community acme has no key 'acme_2019'"


# ---------------------------------------------------------------- L1: the key each verdict names


def test_outputs_name_the_key_whose_signature_check_ran() -> None:
    lookup = acme_lookup(max_validity_seconds=86400)
    cache = TokenCache()
    good = make_token()

    def kid_of(token: str) -> tuple[str | None, Reason | None]:
        output = process_event(event(token), lookup=lookup, now=NOW, token_cache=cache)
        return output.kid, output.reason

    assert kid_of(good) == (HS_KID, None)
    assert kid_of(good) == (HS_KID, None)  # admitted to the cache on its second sighting
    assert kid_of(good) == (HS_KID, None)  # a C4 hit names its key too
    assert kid_of(make_token(key=b"x" * 24)) == (HS_KID, Reason.INVALID_SIGNATURE)
    assert kid_of(make_token(good_claims(exp=T0 - 100))) == (HS_KID, Reason.TOKEN_EXPIRED)
    assert kid_of(make_token(good_claims(exp=T0 + 99999))) == (HS_KID, Reason.EXPIRY_TOO_FAR)
    assert kid_of(make_token(good_claims(exp="soon"))) == (HS_KID, Reason.INVALID_EXP)  # after V7
    assert kid_of(make_token(kid="nope")) == (None, Reason.UNKNOWN_KID)  # no key: nothing to count
    unsigned = process_event(event(identity={"uuid": "v"}, community_id="acme"), lookup=lookup, now=NOW)
    assert unsigned.kid is None
    assert SECRET not in repr(cache)
