"""`token verify`'s explanation (DESIGN §7): the very verdict `process` and `run` give for the
same token text, from the same code path.

The token text, exactly as given (no trimming), is put in a raw event (DESIGN §2.1) and decided
by `process_event` with a trace: the steps are what that code path ran, in the order it ran
them, up to the rule that decided. Nothing here knows the rule order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from worker.core.community import CommunityLookup, ConfigUnavailable
from worker.core.pipeline import DEFAULT_LIMITS, Limits, process_event
from worker.core.reasons import Outcome
from worker.core.records import Output, dead_letter
from worker.core.times import format_time
from worker.core.verdict import Step, Trace

#: The event_id of the raw event a token is explained in.
EXPLAINED_EVENT_ID = "token-verify"


def token_event(token: str, community_id: str, received_at: float) -> bytes:
    """The raw event (DESIGN §2.1) a gateway would send for this token text, as `process` reads it."""
    return json.dumps(
        {
            "event_id": EXPLAINED_EVENT_ID,
            "community_id": community_id,
            "received_at": format_time(received_at),
            "signed_identity": token,
        }
    ).encode("ascii")


@dataclass(slots=True)
class Explanation:
    """The pipeline's output for the token, the steps that decided it and, after them, notes:
    further diagnostics a caller appends (they never change the verdict)."""

    output: Output
    steps: list[Step]
    notes: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.output.outcome is Outcome.ENRICHED

    @property
    def verdict(self) -> str:
        """`accepted`, the rejection's reason, or `dead_letter` (a bug)."""
        if self.output.reason is not None:
            return self.output.reason.value
        return "accepted" if self.accepted else self.output.outcome.value


def explain_token(
    token: str,
    community_id: str,
    lookup: CommunityLookup,
    *,
    received_at: float,
    now: float,
    limits: Limits = DEFAULT_LIMITS,
) -> Explanation:
    """Decide `token` for `community_id` as `process` does, recording the steps taken.

    `received_at` and `now` are epoch seconds. ConfigUnavailable propagates (not a verdict)."""
    trace = Trace()
    value = token_event(token, community_id, received_at)
    try:
        output = process_event(value, lookup=lookup, now=now, limits=limits, trace=trace)
    except ConfigUnavailable:
        raise
    except Exception as exc:  # a bug: the same dead letter `process` would write (DESIGN §2.4)
        output = dead_letter(value, exc, now=now, source=None, attempts=1)
    return Explanation(output, trace.steps)
