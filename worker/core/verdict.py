"""A verdict as values: the rejection (the first rule that failed) and, for `token verify`,
the steps the verdict's own code path ran (DESIGN §3, §7).

The pipeline and `verify` write steps only when given a trace: `token verify` passes one,
`run` and `process` pass None, so the explanation is the record of the very code path that
decided, never a second copy of the rule order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from worker.core.reasons import Reason


def short(value: object, limit: int = 40) -> str:
    """A bounded repr for details: attacker-sized values must not flood a rejection.

    `repr` escapes what is not printable, a lone surrogate included (J2): no detail carries one."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def seconds(value: float) -> str:
    """A duration for details: `1800`, `0.25` (seconds, at most three decimals)."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


@dataclass(slots=True)  # not frozen: one per rejected event, and a frozen __init__ costs 0.6 µs more
class Rejected:
    """A verdict: the first rule that failed and a detail for humans (never a secret).
    Read-only by convention."""

    reason: Reason
    detail: str
    kid: str | None = None  # the key whose signature check ran (V7 on), for usage counts (L1)


#: What each step of a verdict is called in `token verify`'s explanation (DESIGN §7).
RULE_TITLES: Final = {
    "V1": "event",
    "V2": "community",
    "V3": "mode",
    "V4": "structure",
    "V5": "header",
    "V6": "key",
    "V7": "signature",
    "V8": "exp claim",
    "V9-V10": "time",
    "V11-V12": "identity claims",
    "V12": "identity claims",  # an unsigned identity: V11 is for signed payloads only
}


@dataclass(frozen=True, slots=True)
class Step:
    """One rule as the verdict's own code path ran it: passed, or the verdict's reason and detail."""

    rule: str  # a key of RULE_TITLES
    passed: bool
    detail: str

    @property
    def title(self) -> str:
        return RULE_TITLES[self.rule]


class Trace:
    """The steps one decision ran, in the order it ran them, written by the verdict's own code
    path (`token verify`, L4: the same verdict, not a second copy of the rule order).

    `NO_TRACE`, the default on the hot path, records nothing: its methods return at once, and a
    passed step's detail is only made when it is recorded (`describe(*values)`, or
    `describe.format(*values)` for a template), so tracing costs no formatting when off.
    """

    __slots__ = ("steps",)

    def __init__(self) -> None:
        self.steps: list[Step] = []

    def passed(self, rule: str, describe: str | Callable[..., str], *values: object) -> None:
        """`rule` passed; its detail is `describe` applied to `values`."""
        detail = describe.format(*values) if isinstance(describe, str) else describe(*values)
        self.steps.append(Step(rule, True, detail))

    def failed(self, rule: str, verdict: Rejected) -> Rejected:
        """Return `verdict`, written down as `rule`'s failure."""
        self.steps.append(Step(rule, False, f"{verdict.reason}: {verdict.detail}"))
        return verdict


class _NoTrace(Trace):
    __slots__ = ()

    def passed(self, rule: str, describe: str | Callable[..., str], *values: object) -> None:
        return None

    def failed(self, rule: str, verdict: Rejected) -> Rejected:
        return verdict


#: The trace of a decision nobody explains (every event of the worker): records nothing.
NO_TRACE: Final[Trace] = _NoTrace()
