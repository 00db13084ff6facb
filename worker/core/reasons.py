"""The closed sets of DESIGN §2.3 and §3 that every record and counter names: the rejection
reasons with the rule that yields each and its action per mode, the modes (V3), the outcomes
and the mapping skip reasons (M3, M4). Values, not models: `worker.core.contracts` types its
fields with them, and metrics, usage and the console enumerate them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Action(StrEnum):
    """What the chat does with a rejected identity (DESIGN §2.3)."""

    BLOCK = "block"
    ANONYMOUS = "anonymous"


class Mode(StrEnum):
    """A community's `signed_identities` setting (V3)."""

    REQUIRE = "require"
    REJECT = "reject"


#: V3: "in require mode every later rejection is block; in reject mode anonymous" (require, reject).
FOLLOWS_MODE: Final = (Action.BLOCK, Action.ANONYMOUS)
ALWAYS_BLOCK: Final = (Action.BLOCK, Action.BLOCK)  # V1, V2: before the mode is known


class Reason(StrEnum):
    """Every rejection reason of DESIGN §2.3, one member each; the rule that yields it."""

    rules: tuple[str, ...]  # the DESIGN §3 rules that yield it
    #: Its rejection's `action` (§2.3) as the record writes it, by the community's mode (None:
    #: V1, V2, before a community is read, as in `require` mode).
    actions: dict[Mode | None, str]

    def __new__(cls, value: str, rules: str, in_require: Action, in_reject: Action) -> Reason:
        member = str.__new__(cls, value)
        member._value_ = value
        member.rules = tuple(rules.split(", "))
        member.actions = {
            None: in_require.value,
            Mode.REQUIRE: in_require.value,
            Mode.REJECT: in_reject.value,
        }
        return member

    def action(self, mode: Mode | None) -> Action:
        """DESIGN §2.3 `action`: by the community's mode (None: V1, V2, no community read)."""
        return Action(self.actions[mode])

    # The table: value, rule(s), action in require and in reject mode.
    MALFORMED_EVENT = "malformed_event", "V1", *ALWAYS_BLOCK
    UNKNOWN_COMMUNITY = "unknown_community", "V2", *ALWAYS_BLOCK
    SIGNATURE_REQUIRED = "signature_required", "V3", *ALWAYS_BLOCK  # require mode only
    SIGNED_IDENTITY_REJECTED = (
        "signed_identity_rejected",
        "V3",
        Action.ANONYMOUS,
        Action.ANONYMOUS,
    )  # reject only
    MALFORMED_TOKEN = "malformed_token", "V4", *FOLLOWS_MODE
    INVALID_HEADER = "invalid_header", "V5", *FOLLOWS_MODE
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm", "V5", *FOLLOWS_MODE
    MISSING_KID = "missing_kid", "V5", *FOLLOWS_MODE
    UNKNOWN_KID = "unknown_kid", "V6", *FOLLOWS_MODE
    ALGORITHM_KEY_MISMATCH = "algorithm_key_mismatch", "V6", *FOLLOWS_MODE
    INVALID_SIGNATURE = "invalid_signature", "V7", *FOLLOWS_MODE
    MISSING_EXP = "missing_exp", "V8", *FOLLOWS_MODE
    INVALID_EXP = "invalid_exp", "V8", *FOLLOWS_MODE
    TOKEN_EXPIRED = "token_expired", "V9", *FOLLOWS_MODE
    EXPIRY_TOO_SOON = "expiry_too_soon", "V9", *FOLLOWS_MODE
    EXPIRY_TOO_FAR = "expiry_too_far", "V9", *FOLLOWS_MODE  # max_validity_seconds
    TOKEN_NOT_YET_VALID = "token_not_yet_valid", "V10", *FOLLOWS_MODE
    MISSING_UUID = "missing_uuid", "V11", *FOLLOWS_MODE
    INVALID_CLAIMS = "invalid_claims", "V10, V12", *FOLLOWS_MODE  # V10: iat


class Outcome(StrEnum):
    ENRICHED = "enriched"
    REJECTED = "rejected"
    DEAD_LETTER = "dead_letter"


class SkipReason(StrEnum):
    SOURCE_MISSING = "source_missing"  # M3
    REGEX_MISMATCH = "regex_mismatch"  # M4
